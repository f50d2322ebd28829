"""A team: two desk processes on one run and one PostgreSQL store (``serve --store URL``).

Real ``bigramlm serve`` processes, a throwaway server (``tests/pg_cluster.py``), bounded load:
- 16 clients between two desks, a few hundred accepts and dismissals: every acknowledged
  case is stored exactly once, and each desk sees the other's within 1 s;
- SIGKILL of one desk in the middle of writes: nothing acknowledged is lost, the other answers;
- the PostgreSQL server restarted under load: clear 503s while it is down, nothing
  acknowledged is lost, and the desks recover by themselves.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from typing import Iterator

import httpx
import psycopg
import pytest

from desk_helpers import NGINX, free_port, nginx, train_support_run, wait_healthy

pytestmark = [pytest.mark.postgres, pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")]

MESSAGES = ["I want to cancel my order {n}", "where is my parcel {n}?", "how do I get a refund for {n}",
            "I need to change my delivery address {n}"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return train_support_run(tmp_path_factory.mktemp("team"))


def start_desk(run, store: str, port: int) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("BIGRAMLM_TOKEN", None)
    return subprocess.Popen(
        [sys.executable, "-m", "bigramlm", "serve", str(run), "--port", str(port), "--store", store,
         "--log-level", "warning", "--threads", "1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)


@contextmanager
def desks(run, store: str, count: int = 2) -> Iterator[list[tuple[str, subprocess.Popen]]]:
    started = []
    try:
        for _ in range(count):
            port = free_port()
            started.append((f"http://127.0.0.1:{port}", start_desk(run, store, port)))
        for base, proc in started:
            wait_healthy(base, timeout=120, proc=proc)
        yield started
    finally:
        for _, proc in started:
            if proc.poll() is None:
                proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()


def stored_cases(url: str) -> dict[int, tuple[str, str, str | None]]:
    with psycopg.connect(url) as conn:
        return {r[0]: (r[1], r[2], r[3]) for r in conn.execute("SELECT id, message, reply, suggestion_id FROM cases")}


class Acks:
    """What the desks acknowledged, from many client threads."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.cases: dict[int, tuple[str, str, str | None]] = {}
        self.dismissed: set[str] = set()
        self.statuses: dict[int, int] = {}

    def saw(self, status: int) -> None:
        with self.lock:
            self.statuses[status] = self.statuses.get(status, 0) + 1


def client_loop(base: str, who: int, rounds: int, acks: Acks, stop: threading.Event) -> None:
    """Ask for suggestions, then accept one or dismiss one, ``rounds`` times (or until stopped)."""
    with httpx.Client(base_url=base, timeout=20) as client:
        for n in range(rounds):
            if stop.is_set():
                return
            message = MESSAGES[n % len(MESSAGES)].format(n=f"{who}-{n}")
            try:
                r = client.post("/api/suggest", json={"message": message, "n": 2, "max_new_tokens": 24, "seed": n})
                acks.saw(r.status_code)
                if r.status_code != 200:
                    time.sleep(0.05)
                    continue
                first = r.json()["suggestions"][0]["id"]
                if n % 3 == 2:
                    d = client.post("/api/feedback", json={"suggestion_id": first, "action": "dismiss"})
                    acks.saw(d.status_code)
                    if d.status_code == 201:
                        with acks.lock:
                            acks.dismissed.add(first)
                    continue
                reply = f"Reply {who}/{n}: we are on it."
                c = client.post("/api/cases", json={"message": message, "reply": reply, "suggestion_id": first})
                acks.saw(c.status_code)
                if c.status_code == 201:
                    with acks.lock:
                        acks.cases[c.json()["id"]] = (message, reply, first)
            except httpx.HTTPError:
                acks.saw(0)  # the desk went away: nothing was acknowledged
                time.sleep(0.05)


def run_clients(bases: list[str], clients: int, rounds: int, acks: Acks, stop: threading.Event) -> list[threading.Thread]:
    threads = [threading.Thread(target=client_loop, args=(bases[i % len(bases)], i, rounds, acks, stop)) for i in range(clients)]
    for t in threads:
        t.start()
    return threads


@contextmanager
def under_load(bases: list[str], clients: int, first_cases: int) -> Iterator[tuple[Acks, list[threading.Thread]]]:
    """``clients`` clients on the desks until the block ends (bounded: 5,000 rounds each), the
    block entered once they have ``first_cases`` acknowledged cases; stopped and joined on exit."""
    acks, stop = Acks(), threading.Event()
    threads = run_clients(bases, clients, 5000, acks, stop)
    try:
        deadline = time.monotonic() + 60
        while len(acks.cases) < first_cases:
            assert time.monotonic() < deadline, f"no {first_cases} cases in 60 s: {acks.statuses}"
            time.sleep(0.02)
        yield acks, threads
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=60)


def seen_within(base: str, message: str, reply: str, limit_s: float) -> float:
    """Seconds until ``base`` shows the case (message, reply) among its similar cases."""
    started = time.monotonic()
    while True:
        shown = httpx.post(f"{base}/api/suggest", json={"message": message, "n": 1, "max_new_tokens": 4}, timeout=20).json()
        if any(c["reply"] == reply for c in shown["similar_cases"]):
            return time.monotonic() - started
        if time.monotonic() - started > limit_s:
            return float("inf")
        time.sleep(0.05)


def test_two_desks_sixteen_clients_every_acknowledged_case_once_and_seen_by_the_other(run_dir, pg_url):
    with desks(run_dir, pg_url) as started:
        bases = [b for b, _ in started]
        acks, stop = Acks(), threading.Event()
        for t in run_clients(bases, 16, 24, acks, stop):
            t.join(timeout=300)
        stored = stored_cases(pg_url)
        assert len(acks.cases) + len(acks.dismissed) >= 300, acks.statuses  # a few hundred actions
        assert {k: v for k, v in stored.items() if k in acks.cases} == acks.cases  # every acknowledged case, as sent
        assert len(stored) == len(acks.cases)  # and exactly once
        assert not {s for _, _, s in stored.values()} & acks.dismissed
        assert set(acks.statuses) <= {200, 201}, acks.statuses
        # The team's figures, the same on both desks.
        one, two = (httpx.get(f"{b}/api/stats", timeout=10).json() for b in bases)
        assert one["accepted"] == two["accepted"] == len(acks.cases) and one["dismissed"] == len(acks.dismissed)
        # A case accepted on one desk is among the other's similar cases within 1 s, both ways.
        for k, (src, dst) in enumerate(((bases[0], bases[1]), (bases[1], bases[0]))):
            message = f"my parcel number {k}7731 is stuck in customs at the border, what now?"
            shown = httpx.post(f"{src}/api/suggest", json={"message": message, "n": 1, "max_new_tokens": 8}, timeout=20).json()
            reply = f"Customs holds on parcel {k}7731 are released within 3 days; we have asked them."
            saved = httpx.post(f"{src}/api/cases", timeout=20, json={
                "message": message, "reply": reply, "suggestion_id": shown["suggestions"][0]["id"]})
            assert saved.status_code == 201
            assert seen_within(dst, message, reply, 5.0) <= 1.0
        # A team edit rule switched on one desk is switched on the other.
        rules = httpx.get(f"{bases[0]}/api/rules", timeout=10).json()["rules"]
        if rules:
            rule = rules[0]["id"]
            assert httpx.post(f"{bases[0]}/api/rules/{rule}/disable", timeout=10).status_code == 200
            other = {r["id"]: r for r in httpx.get(f"{bases[1]}/api/rules", timeout=10).json()["rules"]}
            assert other[rule]["enabled"] is False


def test_sigkill_of_one_desk_mid_writes_loses_nothing_and_the_other_answers(run_dir, pg_url):
    with desks(run_dir, pg_url) as started:
        (base_a, proc_a), (base_b, _) = started
        with under_load([base_a, base_b], 8, 40) as (acks, _):
            os.kill(proc_a.pid, signal.SIGKILL)  # mid-stream: its clients are still posting
            proc_a.wait(timeout=10)
            before = len(acks.cases)
            deadline = time.monotonic() + 30
            while len(acks.cases) <= before and time.monotonic() < deadline:
                time.sleep(0.05)
            assert len(acks.cases) > before  # the other desk kept answering (and acknowledging)
        assert httpx.get(f"{base_b}/healthz", timeout=10).status_code == 200
        stored = stored_cases(pg_url)
        assert {k: stored.get(k) for k in acks.cases} == acks.cases  # nothing acknowledged is lost
        assert len({s for _, _, s in stored.values()}) == len(stored)  # and nothing is stored twice


def test_postgresql_restarted_under_load_is_a_clear_503_then_the_desks_recover(run_dir, pg_cluster, pg_url):
    with desks(run_dir, pg_url) as started:
        bases = [b for b, _ in started]
        with under_load(bases, 6, 20) as (acks, _):
            pg_cluster.stop("fast")  # open transactions are rolled back: none of them was acknowledged
            deadline = time.monotonic() + 30  # until each desk has found its store gone
            while any(httpx.get(f"{b}/healthz", timeout=20).json()["store_ok"] for b in bases) and time.monotonic() < deadline:
                time.sleep(0.05)
            down = [httpx.post(f"{b}/api/cases", json={"message": "m", "reply": "r"}, timeout=20) for b in bases]
            health = [httpx.get(f"{b}/healthz", timeout=20) for b in bases]
            pg_cluster.start()
            acked_at_restart = len(acks.cases)
            deadline = time.monotonic() + 30
            while len(acks.cases) < acked_at_restart + 20 and time.monotonic() < deadline:
                time.sleep(0.05)
        assert [r.status_code for r in down] == [503, 503]
        assert all("the case store cannot be used now" in r.json()["detail"] for r in down)
        assert [h.status_code for h in health] == [503, 503] and health[0].json()["store_ok"] is False
        assert len(acks.cases) >= acked_at_restart + 20, acks.statuses  # the desks recovered by themselves
        assert acks.statuses.get(503, 0) > 0 and set(acks.statuses) <= {0, 200, 201, 503}, acks.statuses
        assert all(httpx.get(f"{b}/healthz", timeout=10).status_code == 200 for b in bases)
        stored = stored_cases(pg_url)
        assert {k: stored.get(k) for k in acks.cases} == acks.cases  # nothing acknowledged is lost


def test_a_team_desk_takes_only_active_agents_tokens_from_the_shared_store(run_dir, pg_url, capsys):
    """Agents added on the team's store (from any machine) guard every desk on it, SSE included."""
    from fastapi.testclient import TestClient

    from bigramlm.cli import main
    from bigramlm.serve.app import create_app
    from bigramlm.serve.network import check_exposure
    from bigramlm.support.store import run_has_agents
    from test_server_agents import ROUTES

    tokens = {}
    for name in ("ben", "gus"):
        assert main(["agents", "add", name, str(run_dir), "--store", pg_url]) == 0
        tokens[name] = capsys.readouterr().out.strip()
    assert main(["agents", "remove", "gus", str(run_dir), "--store", pg_url]) == 0
    assert run_has_agents(run_dir, pg_url) and not run_has_agents(run_dir)  # the run's own SQLite store has none
    check_exposure("0.0.0.0", None, run_has_agents(run_dir, pg_url))  # off loopback: the agents' tokens guard it
    with TestClient(create_app(run_dir, store=pg_url)) as c:
        for method, path, body in ROUTES:
            for header in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Bearer {tokens['gus']}"}):
                assert c.request(method, path, json=body, headers=header).status_code == 401, (path, header)
        ben = {"Authorization": f"Bearer {tokens['ben']}"}
        assert c.get("/api/me", headers=ben).json() == {"agent": "ben"}
        with c.stream("POST", "/api/suggest/stream", json=ROUTES[5][2], headers=ben) as r:
            assert r.status_code == 200 and "event: done" in "".join(r.iter_text())
        assert c.get("/api/stats", params={"agent": "ben"}, headers=ben).json()["suggestions_shown"] >= 1


def test_a_learn_reaches_every_desk_without_a_failed_request_and_its_undo_too(run_dir, pg_url, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    with desks(run, pg_url) as started:
        bases = [b for b, _ in started]
        with under_load(bases, 4, 10) as (acks, _):
            for argv, reloads in ((["--steps", "2"], 1), (["--undo"], 2)):
                done = subprocess.run([sys.executable, "-m", "bigramlm", "learn", str(run), "--store", pg_url, *argv],
                                      capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
                assert done.returncode == 0, done.stderr
                deadline = time.monotonic() + 30
                while time.monotonic() < deadline and any(
                        httpx.get(f"{b}/healthz", timeout=10).json()["reloads"] < reloads for b in bases):
                    time.sleep(0.1)
                assert all(httpx.get(f"{b}/healthz", timeout=10).json()["reloads"] >= reloads for b in bases)
    assert set(acks.statuses) <= {200, 201}, acks.statuses  # no request failed across both reloads
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT COUNT(*) FROM learns WHERE undone_at IS NOT NULL").fetchone() == (1,)


UPSTREAMS = """
  upstream desks {{
    server 127.0.0.1:{one} max_fails=1 fail_timeout=30s;
    server 127.0.0.1:{two} max_fails=1 fail_timeout=30s;
  }}
  server {{
    listen 127.0.0.1:{port};
    server_name desk.example.test;
    location / {{
      proxy_pass http://desks;
      proxy_set_header Host $host;
      proxy_http_version 1.1;
      proxy_buffering off;
      proxy_read_timeout 60s;
      add_header X-Upstream $upstream_addr always;
    }}
  }}
"""


@pytest.mark.skipif(NGINX is None, reason="nginx is not installed")
def test_the_readme_team_deployment_two_desks_behind_nginx(run_dir, pg_url, tmp_path, capsys):
    """The team section of docs/deployment.md: nginx balancing two desks on one store, agents' tokens on
    it; a desk killed, the other takes its agents."""
    from bigramlm.cli import main

    assert main(["agents", "add", "ana", str(run_dir), "--store", pg_url]) == 0
    auth = {"Authorization": f"Bearer {capsys.readouterr().out.strip()}", "Host": "desk.example.test"}
    ports, port = [free_port(), free_port()], free_port()
    env = {k: v for k, v in os.environ.items() if k != "BIGRAMLM_TOKEN"}
    procs = [subprocess.Popen([sys.executable, "-m", "bigramlm", "serve", str(run_dir), "--port", str(p), "--store", pg_url,
                               "--allowed-host", "desk.example.test", "--log-level", "warning", "--threads", "1"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env) for p in ports]
    try:
        for p, proc in zip(ports, procs):
            wait_healthy(f"http://127.0.0.1:{p}", timeout=120, proc=proc)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=auth, timeout=30) as client, \
                nginx(tmp_path, UPSTREAMS.format(port=port, one=ports[0], two=ports[1]), client, "/healthz"):
            upstreams, ids = set(), []
            for n in range(6):
                message = f"please cancel order 55{n}1"
                shown = client.post("/api/suggest", json={"message": message, "n": 1, "max_new_tokens": 8})
                saved = client.post("/api/cases", json={"message": message, "reply": f"Cancelled order 55{n}1.",
                                                        "suggestion_id": shown.json()["suggestions"][0]["id"]})
                assert shown.status_code == 200 and saved.status_code == 201
                upstreams |= {shown.headers["x-upstream"], saved.headers["x-upstream"]}
                ids.append(saved.json()["id"])
            assert len(upstreams) == 2  # both desks took requests
            assert client.get("/api/stats", params={"agent": "ana"}).json()["accepted"] == 6  # the team's figures
            assert client.get("/api/stats", headers={"Authorization": "Bearer wrong"}).status_code == 401
            procs[0].send_signal(signal.SIGKILL)
            procs[0].wait(timeout=10)
            for n in range(4):  # the other desk answers everything, the killed one's share too
                assert client.post("/api/suggest", json={"message": "where is my parcel", "n": 1,
                                                         "max_new_tokens": 8}).status_code == 200
                assert client.get("/healthz").status_code == 200
        assert set(ids) <= set(stored_cases(pg_url))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.terminate()
                proc.wait(timeout=15)

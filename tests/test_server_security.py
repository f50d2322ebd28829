"""The desk's HTTP side against an attacker (issue 27).

- It fails closed: beyond loopback without a token, no active agent means no request passes
  (finding 2), and an agent's token is rotated without a moment with no agent. The
  end-to-end test serves a real desk on a non-loopback address inside a network namespace
  of its own (``unshare -n``): nothing it listens on or sends leaves that namespace.
- A body nested deeper than ``max_json_depth`` is a 400 in the route's error shape on every
  JSON route, never a 500 or a reset connection (finding 8).
- Every connection the desk accepts has Nagle's algorithm off (``TCP_NODELAY``): without it a
  kept-alive connection waited about 40 ms a request for the client's delayed ACK (finding 9).
"""

from __future__ import annotations

import contextlib
import fcntl
import io
import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from bigramlm.cli import main
from bigramlm.serve.app import create_app
from bigramlm.serve.limits import ServerLimits
from bigramlm.serve.middleware import json_too_deep
from desk_helpers import ROUTES, ThreadServer, train_support_run, wait_healthy

#: An address beyond loopback, given to an interface of the test's own network namespace only.
ADDRESS = "10.9.9.9"
#: linux/sockios.h and linux/if.h: an interface's flags (read, set), its address; "up".
_SIOCGIFFLAGS, _SIOCSIFFLAGS, _SIOCSIFADDR, _IFF_UP = 0x8913, 0x8914, 0x8916, 0x1


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return train_support_run(tmp_path_factory.mktemp("security"))


def agents(*argv: str) -> str:
    """``bigramlm agents ARGV``'s output (a token for add and rotate); fails on a non-zero exit."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["agents", *argv]) == 0
    return out.getvalue().strip()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_a_closed_desk_without_agents_refuses_every_guarded_route(run):
    with TestClient(create_app(run, closed=True)) as c:
        for method, path, body in ROUTES:
            r = c.request(method, path, json=body)
            assert r.status_code == 401, (path, r.status_code)
            assert "bigramlm agents add" in r.text and r.headers["www-authenticate"] == "Bearer"
        assert c.get("/healthz").status_code == 200 and c.get("/").status_code == 200  # the page still loads
        ana = agents("add", "ana", str(run))
        assert c.get("/api/me", headers=bearer(ana)).json() == {"agent": "ana"}
        assert c.get("/api/me").status_code == 401
        agents("remove", "ana", str(run))
        for header in ({}, bearer(ana), bearer("anything")):  # the last agent gone: locked, old token included
            assert c.post("/api/cases", json={"message": "m", "reply": "r"}, headers=header).status_code == 401
    with TestClient(create_app(run, token="tok", closed=True)) as c:  # a desk with --token keeps using it
        assert c.get("/api/me", headers=bearer("tok")).status_code == 200 and c.get("/api/me").status_code == 401
    with TestClient(create_app(run)) as c:  # on loopback (not closed) a desk without agents is open, as before
        assert c.get("/api/me").json() == {"agent": None}


def test_rotate_gives_a_new_token_and_refuses_the_old_one(run, capsys):
    old = agents("add", "rui", str(run))
    assert main(["agents", "add", "rui", str(run)]) == 2
    assert "bigramlm agents rotate rui RUN" in capsys.readouterr().err  # not "remove it first"
    with TestClient(create_app(run, closed=True)) as c:
        assert c.get("/api/me", headers=bearer(old)).json() == {"agent": "rui"}
        new = agents("rotate", "rui", str(run))
        assert new.startswith("bla_") and new != old
        assert c.get("/api/me", headers=bearer(old)).status_code == 401
        assert c.get("/api/me", headers=bearer(new)).json() == {"agent": "rui"}
    assert main(["agents", "rotate", "nobody", str(run)]) == 2
    assert "no active agent 'nobody'" in capsys.readouterr().err
    agents("remove", "rui", str(run))
    assert main(["agents", "rotate", "rui", str(run)]) == 2  # a removed agent comes back with add, not rotate
    capsys.readouterr()


# --- end to end, off loopback, in a network namespace ----------------------------------------------


def namespace_scenario(run_dir: str) -> dict:
    """Run in a new network namespace (``python THIS_FILE RUN``): give an interface ``ADDRESS``,
    serve the desk there with an agent and no token, and record what each step answers."""
    _address_in_namespace()
    seen: dict = {}
    ana = agents("add", "ana", run_dir)
    server = subprocess.Popen([sys.executable, "-m", "bigramlm", "serve", run_dir, "--host", ADDRESS, "--port", "8000",
                               "--log-level", "warning"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = f"http://{ADDRESS}:8000"
    try:
        wait_healthy(base, timeout=90, proc=server)
        with httpx.Client(base_url=base, timeout=30) as c:
            seen["no_token"] = c.get("/api/cases").status_code
            seen["ana"] = c.get("/api/cases", headers=bearer(ana)).status_code
            sent, passed, new = _rotating(c, run_dir, "ana")
            seen["sent_during_rotation"], seen["passed_unauthenticated_during_rotation"] = sent, passed
            seen["old_after_rotate"] = c.get("/api/me", headers=bearer(ana)).status_code
            seen["new_after_rotate"] = c.get("/api/me", headers=bearer(new)).json()
            agents("remove", "ana", run_dir)
            case = {"message": "where is my package", "reply": "It is on its way."}
            seen["post_after_last_removed"] = c.post("/api/cases", json=case).status_code
            seen["post_with_removed_token"] = c.post("/api/cases", json=case, headers=bearer(new)).status_code
            seen["stream_after_last_removed"] = c.post("/api/suggest/stream", json={"message": "hi"}).status_code
            seen["healthz"] = c.get("/healthz").status_code
    finally:
        server.terminate()
        server.wait(timeout=20)
    return seen


def _address_in_namespace() -> None:
    """Loopback's interface up in this (new, empty) namespace, with ``ADDRESS`` beside 127.0.0.1:
    an address that is not a loopback one. Set with the kernel's ioctls, so that the test needs
    no ``ip`` command (iproute2 is not on every fresh machine)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        flags = struct.unpack("16sH", fcntl.ioctl(s, _SIOCGIFFLAGS, struct.pack("16sH14x", b"lo", 0))[:18])[1]
        fcntl.ioctl(s, _SIOCSIFFLAGS, struct.pack("16sH14x", b"lo", flags | _IFF_UP))
        # "lo:1", an alias: a second address, 127.0.0.1 stays.
        fcntl.ioctl(s, _SIOCSIFADDR, struct.pack("16sHH4s8x", b"lo:1", socket.AF_INET, 0, socket.inet_aton(ADDRESS)))


def _rotating(c: httpx.Client, run_dir: str, name: str) -> tuple[int, list[int], str]:
    """Rotate ``name``'s token while another client keeps posting without a token; how many
    it posted, the statuses of those that were not refused, and the new token."""
    passed: list[int] = []
    sent = [0]
    stop = threading.Event()
    answered = threading.Semaphore(0)

    def hammer() -> None:
        with httpx.Client(base_url=str(c.base_url), timeout=30) as other:
            while not stop.is_set():
                status = other.post("/api/cases", json={"message": "m", "reply": "r"}).status_code
                sent[0] += 1
                answered.release()
                if status != 401:
                    passed.append(status)

    def requests_answered(count: int) -> bool:
        return all(answered.acquire(timeout=30) for _ in range(count))

    thread = threading.Thread(target=hammer)
    thread.start()
    try:
        assert requests_answered(5), "the other client got no answer"  # it posts before the rotation...
        new = agents("rotate", name, run_dir)
        assert requests_answered(5), "the other client got no answer"  # ...and after it
    finally:
        stop.set()
        thread.join(timeout=30)
    return sent[0], passed, new


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("unshare"),
                    reason="needs root and unshare (util-linux) for a network namespace")  # CI runs as root
def test_off_loopback_the_desk_stays_locked_once_the_last_agent_is_removed(tmp_path):
    run_dir = train_support_run(tmp_path)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[1] / "src"),
                                                       os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run(["unshare", "-n", sys.executable, __file__, str(run_dir)], capture_output=True, text=True,
                          timeout=240, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    seen = json.loads(proc.stdout.strip().splitlines()[-1])
    assert seen["no_token"] == 401 and seen["ana"] == 200
    assert seen["sent_during_rotation"] > 0 and seen["passed_unauthenticated_during_rotation"] == []
    assert seen["old_after_rotate"] == 401 and seen["new_after_rotate"] == {"agent": "ana"}
    # Before the fix these were 201: every request passed once the last agent was removed.
    assert seen["post_after_last_removed"] == 401 and seen["post_with_removed_token"] == 401
    assert seen["stream_after_last_removed"] == 401 and seen["healthz"] == 200


# --- deeply nested JSON ------------------------------------------------------------------------------

#: Every route that takes a JSON body.
JSON_ROUTES = ["/api/suggest", "/api/suggest/stream", "/api/cases", "/api/feedback", "/v1/completions",
               "/v1/chat/completions", "/api/rules/no-such-rule/disable"]


def nested(kind: str, depth: int) -> str:
    return "[" * depth + "]" * depth if kind == "array" else '{"a":' * depth + "1" + "}" * depth


def test_json_too_deep_counts_brackets_outside_strings_only():
    assert not json_too_deep(b'{"a": [1, {"b": "[[[[[[{{{{"}]}', 3)
    assert json_too_deep(b'{"a": [1, {"b": "[[[["}]}', 2)
    assert json_too_deep(b'{"a": [1, {"b": [[]]}]}', 4) and not json_too_deep(b'{"a": [1, {"b": [[]]}]}', 5)
    # An escaped quote does not end a string, an escaped backslash before a quote does.
    assert not json_too_deep(b'{"a": "x\\"[[[[", "b": "\\\\"}', 1)
    assert not json_too_deep(b'{"a": "x\\\\", "b": "[[[["}', 1)
    assert json_too_deep(b'[]' * 100 + b'[[[', 2) and not json_too_deep(b'[]' * 100, 1)  # depth, not count


@pytest.fixture(scope="module")
def desk(run):
    with ThreadServer(create_app(run)) as server:
        yield server


@pytest.mark.parametrize("kind", ["array", "object"])
def test_deeply_nested_json_is_a_400_in_each_routes_shape(desk, kind):
    limit = ServerLimits().max_json_depth
    with httpx.Client(base_url=desk.base, timeout=30) as c:
        for depth in (limit + 1, 100, 500, 900, 1000, 5000):
            for path in JSON_ROUTES:
                # Before the bound: 500 (a RecursionError) at 500 and 900 deep.
                r = c.post(path, content='{"message": %s}' % nested(kind, depth), headers={"Content-Type": "application/json"})
                assert r.status_code == 400, (path, depth, r.status_code, r.text[:200])
                if path.startswith("/v1/"):
                    assert r.json()["error"]["type"] == "invalid_request_error"
                    assert f"deeper than {limit}" in r.json()["error"]["message"]
                else:
                    assert r.json()["bound"] == "max_json_depth" and f"deeper than {limit}" in r.json()["detail"]
        # At the bound itself each route still answers with its own validation error.
        for path in JSON_ROUTES:
            r = c.post(path, content='{"message": %s}' % nested(kind, limit), headers={"Content-Type": "application/json"})
            assert r.status_code in (400, 404, 422), (path, r.status_code)
        # Brackets inside a string are text: a message of them is answered.
        r = c.post("/api/suggest", json={"message": "[{" * 300, "max_new_tokens": 5})
        assert r.status_code == 200, r.text


# --- kept-alive connections ---------------------------------------------------------------------------


def test_accepted_connections_send_at_once(desk):
    """On the listener ``serve`` binds (``ThreadServer`` binds it the same way), asyncio leaves
    Nagle's algorithm on; the desk turns it off on each connection it accepts. Before: 0, and
    every request after the first on a kept-alive connection took about 44 ms instead of 2."""
    with httpx.Client(base_url=desk.base, timeout=30) as one, httpx.Client(base_url=desk.base, timeout=30) as two:
        for client in (one, two, one, two):  # two connections, each kept alive for a second request
            assert client.get("/healthz").status_code == 200
        # Those of earlier tests may still be closing: only the open ones can be asked.
        connections = [p for p in desk.server.server_state.connections if not p.transport.is_closing()]
        assert len(connections) >= 2
        for protocol in connections:
            sock = protocol.transport.get_extra_info("socket")
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1


if __name__ == "__main__":  # the namespace's side of the test above
    print(json.dumps(namespace_scenario(sys.argv[1])))

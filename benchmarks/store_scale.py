"""A year of a team's cases: what a desk costs as the store grows (issue 30).

For each store size N (``--sizes``, by default 0, 100k, 300k and 1M) and each back-end
(``--backends``: the run's SQLite file, a throwaway PostgreSQL server from
``tests/pg_cluster.py``), it fills a fresh store with N synthetic resolved cases (the run's
train rows, each with a reference number appended, as a year of accepts repeats the
same intents), then starts a real ``bigramlm serve`` on it and measures:

- ``fill_s``: writing the N cases (one transaction per 10,000; the store's search index
  is kept by the database as it goes);
- ``ready_s``: from the process's start to ``/healthz`` answering 200 (the desk listens
  only once it has read what it needs of the store);
- ``first_suggest_s``: the first ``POST /api/suggest`` after that;
- ``store_texts_read_s``: from the start to ``/healthz`` saying the store's texts (the words
  drafts are checked against, read behind the serving desk) are read; meanwhile suggestions
  are asked back to back: ``suggests_while_reading`` of them, the slowest ``while_reading_max_s``;
- ``rss_mib``: the desk's resident memory after the warm requests (``VmRSS``);
- warm ``p50``/``p95`` of ``/api/suggest`` (n = 3), one agent;
- ``propagation``: from a case acknowledged by one desk to its being among another desk's
  similar cases (a second desk on the same store; ``visibility_lags``).

While the desk starts, ``/healthz`` is asked every 100 ms: ``start_probes`` says what it
answered (0: the connection refused, as it is until the desk listens, once it can answer; a
desk before this one answered 503 "starting" meanwhile) and ``start_probe_max_s`` the slowest
answer.

The reference, measured in the same run on the SQLite store: the same figures of the code
before issue 30 (``--before-src``: the ``src/`` of an older checkout, e.g. ``git archive
f1ca513 src``), whose desk holds every store case in one TF-IDF matrix in memory, read on the
first request. Ratios new/reference are printed per size.

With size 0 and a larger one, ``side_by_side`` then asks the empty store's desk and the
largest's in turn (``--paired-requests`` each), on each back-end: the warm p50 ratio of the two.

Then ``--clients`` agents on one desk (closed loop, ``--duration`` s) on the largest store of
the first back-end, this code's, and the reference's on SQLite: p50, p95, errors.

    python benchmarks/store_scale.py --run RUN --sizes 0,100000 --before-src ../before/src --json
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator

import httpx

from _common import parser, report
from bench_server_load import MESSAGES, drive, free_port, percentile, team_store, visibility_lags

FILL_BATCH = 10_000


def synthetic_rows(run_dir: str, n: int) -> Iterator[dict[str, Any]]:
    """N store rows: the run's train rows in turn, each message with a reference number appended."""
    from bigramlm.data.cases import DESK, Case
    from bigramlm.data.run_files import InstructionRunFiles
    from bigramlm.support.store import StoredCase
    from bigramlm.support.store.cases import row_values

    files = InstructionRunFiles.load(run_dir)
    if files is None or not files.train_rows:
        raise SystemExit(f"{run_dir} has no saved train rows (train it with --recipe support)")
    rows, now = files.train_rows, time.time()
    for i in range(n):
        row = rows[i % len(rows)]
        case = Case(f"{row.message} (ref {100000 + i})", row.reply, row.intent, row.category, DESK)
        yield row_values(StoredCase(case), now)


def fill(run_dir: str, target: str, n: int) -> float:
    """Write ``n`` synthetic cases to the store at ``target``; seconds it took."""
    from sqlalchemy import text

    from bigramlm.support.store import CaseStore
    from bigramlm.support.store.cases import _INSERT

    start = time.perf_counter()
    with CaseStore(target) as store:
        batch: list[dict[str, Any]] = []
        for values in synthetic_rows(run_dir, n):
            batch.append(values)
            if len(batch) == FILL_BATCH:
                with store.db.write() as conn:
                    conn.execute(text(_INSERT), batch)
                batch = []
        if batch:
            with store.db.write() as conn:
                conn.execute(text(_INSERT), batch)
    return time.perf_counter() - start


def start_desk(run_dir: str, env: dict[str, str], store: str | None = None,
               deadline_s: float = 300.0) -> tuple[str, subprocess.Popen, dict[str, Any]]:
    """``bigramlm serve`` on a free port; its ``/healthz`` asked every 100 ms until it answers
    200: the seconds that took, and every probe's status and time."""
    port = free_port()
    cmd = [sys.executable, "-m", "bigramlm", "serve", run_dir, "--host", "127.0.0.1", "--port", str(port),
           "--max-concurrent", "16", "--timeout", "120", "--log-level", "warning", *(["--store", store] if store else [])]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, **env})
    base, probes = f"http://127.0.0.1:{port}", []
    while time.perf_counter() - start < deadline_s:
        if proc.poll() is not None:
            raise SystemExit(f"{run_dir}: the desk exited with {proc.returncode}")
        asked = time.perf_counter()
        try:
            status = httpx.get(f"{base}/healthz", timeout=10).status_code
        except httpx.HTTPError:
            status = 0  # not listening yet
        probes.append((status, time.perf_counter() - asked))
        if status == 200:
            ready = time.perf_counter() - start
            answered = [t for code, t in probes if code]
            return base, proc, {"ready_s": round(ready, 2), "start_probes": sorted({code for code, _ in probes}),
                                "start_probe_max_s": round(max(answered), 3) if answered else None,
                                "started": start}
        time.sleep(0.1)
    proc.kill()
    raise SystemExit(f"{run_dir}: the desk was not ready in {deadline_s} s")


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


def rss_mib(pid: int) -> float | None:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return None


def suggest_s(client: httpx.Client, message: str) -> float:
    start = time.perf_counter()
    client.post("/api/suggest", json={"message": message, "n": 3, "seed": 0}).raise_for_status()
    return time.perf_counter() - start


def measure_desk(run_dir: str, env: dict[str, str], requests: int, store: str | None = None,
                 second_desk: bool = True) -> dict[str, Any]:
    """One desk's start, first and warm suggestions, memory; and the propagation to a second."""
    base, proc, out = start_desk(run_dir, env, store)
    try:
        with httpx.Client(base_url=base, timeout=300) as client:
            out["first_suggest_s"] = round(suggest_s(client, MESSAGES[0]), 3)
            out.update(while_reading(client, out.pop("started")))
            warm = [suggest_s(client, MESSAGES[i % len(MESSAGES)]) for i in range(requests)]
        out.update(warm_p50_s=round(percentile(warm, 0.5), 3), warm_p95_s=round(percentile(warm, 0.95), 3),
                   rss_mib=rss_mib(proc.pid))
        if second_desk:
            other, proc_b, _ = start_desk(run_dir, env, store)
            try:
                httpx.post(f"{other}/api/suggest", json={"message": MESSAGES[1], "n": 1}, timeout=300)
                out["propagation_s"] = visibility_lags([base, other], timeout=60, probes=4)
            finally:
                stop(proc_b)
    finally:
        stop(proc)
    return out


def while_reading(client: httpx.Client, started: float, deadline_s: float = 300.0) -> dict[str, Any]:
    """Suggestions asked back to back while ``/healthz`` says the desk still reads the store's
    texts (behind a serving desk): how many, the slowest, and when the read was done, from
    the process's start (the code before has no such field: nothing is timed)."""
    times: list[float] = []
    while time.perf_counter() - started < deadline_s:
        if client.get("/healthz").json().get("store_texts") != "reading":
            break
        times.append(suggest_s(client, MESSAGES[len(times) % len(MESSAGES)]))
    return {"store_texts_read_s": round(time.perf_counter() - started, 2), "suggests_while_reading": len(times),
            "while_reading_max_s": round(max(times), 3) if times else None}


def side_by_side(empty_desk: tuple[str, str | None], full_desk: tuple[str, str | None], requests: int) -> dict[str, Any]:
    """Warm suggestions asked of two desks in turn, the empty store's and the largest's, once the
    largest has read its store's texts: the machine's other load then falls on both alike,
    where the p50s of ``measure_desk``, taken minutes apart, each carry whatever else the
    shared machine did meanwhile. Each one's p50 and p95, and the ratio largest/empty.
    Each desk: a run directory and its store (None: the run's SQLite file)."""
    base_e, proc_e, _ = start_desk(empty_desk[0], {}, empty_desk[1])
    base_f, proc_f, out = start_desk(full_desk[0], {}, full_desk[1])
    try:
        with httpx.Client(base_url=base_e, timeout=300) as empty, httpx.Client(base_url=base_f, timeout=300) as full:
            for client in (empty, full):
                suggest_s(client, MESSAGES[0])
            while_reading(full, out["started"])  # until its texts are read
            times: dict[str, list[float]] = {"empty": [], "full": []}
            for i in range(requests):
                pair = [("empty", empty), ("full", full)][:: 1 if i % 2 else -1]  # each goes first half the time
                for name, client in pair:
                    times[name].append(suggest_s(client, MESSAGES[i % len(MESSAGES)]))
    finally:
        stop(proc_e)
        stop(proc_f)
    p50 = {name: percentile(t, 0.5) for name, t in times.items()}
    return {"requests": requests, "empty_p50_s": round(p50["empty"], 3), "full_p50_s": round(p50["full"], 3),
            "empty_p95_s": round(percentile(times["empty"], 0.95), 3), "full_p95_s": round(percentile(times["full"], 0.95), 3),
            "p50_ratio": round(p50["full"] / p50["empty"], 3)}


def fresh_run(run_dir: str, into: Path) -> str:
    """A copy of the run without its store (every size starts from an empty one)."""
    shutil.copytree(run_dir, into, ignore=shutil.ignore_patterns("cases.sqlite*"))
    return str(into)


def fill_in(src: str | None, run_dir: str, target: str, n: int) -> float:
    """``fill`` run by the code at ``src`` (None: this checkout), in its own process."""
    env = {**os.environ, **({"PYTHONPATH": src} if src else {})}
    done = subprocess.run([sys.executable, __file__, "--fill", run_dir, target, str(n)], env=env,
                          capture_output=True, text=True, check=True)
    return float(done.stdout.strip().splitlines()[-1])


def one_size(args: Any, work: Path, backend: str, n: int, new_database: Any) -> dict[str, Any]:
    """Fill a fresh store of ``n`` cases on ``backend``; this desk's figures, and on SQLite the reference's."""
    row: dict[str, Any] = {"backend": backend, "cases": n}
    run = fresh_run(args.run, work / f"{backend}-{n}")
    target = new_database() if backend == "postgresql" else str(Path(run) / "cases.sqlite")
    row["fill_s"] = round(fill_in(None, run, target, n), 2)
    row["desk"] = (run, target if backend == "postgresql" else None)
    row["new"] = measure_desk(run, {}, args.requests, row["desk"][1])
    if backend == "sqlite" and args.before_src:
        before = fresh_run(args.run, work / f"before-{n}")
        row["before_fill_s"] = round(fill_in(args.before_src, before, str(Path(before) / "cases.sqlite"), n), 2)
        row["before"] = measure_desk(before, {"PYTHONPATH": args.before_src}, args.requests)
        row["ratio"] = {key: round(row["new"][key] / row["before"][key], 3)
                        for key in ("ready_s", "first_suggest_s", "rss_mib", "warm_p50_s", "warm_p95_s")
                        if row["new"].get(key) and row["before"].get(key)}
    return row


def agents(args: Any, desk: tuple[str, str | None], env: dict[str, str]) -> dict[str, Any]:
    """``--clients`` agents on one desk of ``desk`` (a run directory and its store), once the
    desk has read its store's texts: the desk a team works with all day (the read, minutes
    under load at 1,000,000 cases, is what ``while_reading`` measures)."""
    base, proc, out = start_desk(desk[0], env, desk[1])
    try:
        httpx.post(f"{base}/api/suggest", json={"message": MESSAGES[0], "n": 3}, timeout=300)
        while time.perf_counter() - out["started"] < 600 and \
                httpx.get(f"{base}/healthz", timeout=10).json().get("store_texts") == "reading":
            time.sleep(0.5)
        body = {"message": MESSAGES[2], "n": 3}
        return asyncio.run(drive([base], args.clients, args.duration, args.max_requests, body, 300))
    finally:
        stop(proc)


def main(argv: list[str] | None = None) -> int:
    p = parser("A desk's cost as the team's store grows, on SQLite and PostgreSQL, against the code before (issue 30).")
    p.add_argument("--run", required=True, help="support run directory (copied; its store is not touched)")
    p.add_argument("--sizes", default="0,100000,300000,1000000", help="store sizes, comma-separated")
    p.add_argument("--backends", default="sqlite,postgresql", help="sqlite, postgresql (a throwaway server), or both")
    p.add_argument("--before-src", default=None, help="the src/ of the code before, measured beside this one on SQLite")
    p.add_argument("--requests", type=int, default=20, help="warm suggestions per desk (default 20)")
    p.add_argument("--paired-requests", type=int, default=60,
                   help="warm suggestions per desk when the empty and the largest desks are asked in turn (default 60)")
    p.add_argument("--clients", type=int, default=8, help="agents at once on one desk (default 8; 0 skips it)")
    p.add_argument("--duration", type=float, default=30.0, help="seconds of the agents' phase (default 30)")
    p.add_argument("--max-requests", type=int, default=120, help="requests at most in the agents' phase (default 120)")
    args = p.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    backends = args.backends.split(",")
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="store-scale-") as tmp, \
            (team_store("throwaway") if "postgresql" in backends else contextlib.nullcontext(None)) as new_database:
        work = Path(tmp)
        for backend in backends:
            for n in sizes:
                rows.append(one_size(args, work, backend, n, new_database))
        paired: dict[str, Any] = {}
        desks = {(r["backend"], r["cases"]): r.pop("desk") for r in rows}
        if 0 in sizes and max(sizes) > 0:
            for backend in backends:
                paired[backend] = side_by_side(desks[backend, 0], desks[backend, max(sizes)], args.paired_requests)
        load: dict[str, Any] = {}
        if args.clients:
            load["new"] = agents(args, desks[backends[0], max(sizes)], {})
            if args.before_src and "sqlite" in backends:
                load["before"] = agents(args, (str(work / f"before-{max(sizes)}"), None), {"PYTHONPATH": args.before_src})
    lines = [f"{r['backend']:>10} {r['cases']:>8} cases: fill {r['fill_s']} s; " + _line(r["new"]) +
             (f"\n{'before':>10} {r['cases']:>8} cases: " + _line(r["before"]) + f"\n{'ratio':>25}: {r['ratio']}"
              if "before" in r else "") for r in rows]
    for backend, pair in paired.items():
        lines.append(f"{backend} side by side, asked in turn: warm p50 {pair['full_p50_s']} s with {max(sizes)} cases "
                     f"against {pair['empty_p50_s']} s empty ({pair['p50_ratio']}x; p95 {pair['full_p95_s']} against "
                     f"{pair['empty_p95_s']} s; {pair['requests']} each)")
    for name, figures in load.items():
        lines.append(f"{args.clients} agents on one desk ({name}): p50 {figures['p50_ms']} ms, p95 {figures['p95_ms']} ms, "
                     f"{figures['ok']} answered, {figures['busy_503']} busy, {figures['other_errors']} errors")
    report("store_scale", {"sizes": rows, "side_by_side": paired, "agents": load, "clients": args.clients}, args.json, lines)
    return 0


def _line(f: dict[str, Any]) -> str:
    lag = f.get("propagation_s") or {}
    return (f"ready {f['ready_s']} s (probes {f['start_probes']}, slowest {f['start_probe_max_s']} s), first suggest "
            f"{f['first_suggest_s']} s, store texts read at {f.get('store_texts_read_s')} s ({f.get('suggests_while_reading')} "
            f"suggests meanwhile, slowest {f.get('while_reading_max_s')} s), warm p50/p95 {f['warm_p50_s']}/{f['warm_p95_s']} s, RSS {f['rss_mib']} MiB, "
            f"propagation p50/max {lag.get('p50')}/{lag.get('max')} s")


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--fill":  # fill_in's worker, run by the code being measured
        print(fill(sys.argv[2], sys.argv[3], int(sys.argv[4])))
        raise SystemExit(0)
    raise SystemExit(main())

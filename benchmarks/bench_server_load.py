"""Load benchmark of the agent desk: concurrent clients on ``POST /api/suggest``.

Each phase starts ``bigramlm serve RUN_DIR`` on a free loopback port, warms it up, then
runs ``--clients`` closed-loop clients for ``--duration`` seconds (and at most
``--max-requests`` requests in all), and stops the server. It reports requests per
second and p50/p95/p99 latency of the answered suggestions, the 503 answers (the
intended back-pressure of the generation cap), every other error, and the server's
peak resident memory (``VmHWM`` from ``/proc``, the kernel's own high-water mark).

A client that gets 503 waits a random 50-150 ms before its next request, rather than
the full ``Retry-After``, so that the server stays saturated: the benchmark measures the
server, not idle clients.

    python benchmarks/bench_server_load.py --run runs/support-bigram --clients 16 --duration 60 \\
        --gpt-run runs/support-gpt --gpt-clients 8

With ``--team``, each run also gets the team's phases, measured in the same run against
the one desk on its SQLite file: one desk, then two desks (each ``--threads`` half the
cores), on one PostgreSQL store, the same clients split between the desks. ``--team
throwaway`` starts a throwaway PostgreSQL server for it (``tests/pg_cluster.py``, from the
installed server's binaries); ``--team postgresql://...`` uses that (empty) database.

    python benchmarks/bench_server_load.py --run runs/support-bigram --clients 16 --duration 30 \
        --gpt-run runs/support-gpt --gpt-clients 8 --team throwaway

Only loopback; bounded in time and requests.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import httpx

MESSAGES = [
    "I want to cancel my order, it has not shipped yet",
    "where is my package? it was due yesterday",
    "how do I get a refund for a broken item",
    "can I change the delivery address of order 4411",
    "I need to talk to a real person please",
    "what payment methods do you accept",
    "I forgot my password and cannot log in",
    "please send me the invoice for my last purchase",
    "is there a fee if I cancel now?",
    "I would like to leave a review about your service",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def peak_rss_mib(pid: int) -> float | None:
    """The kernel's record of the process's highest resident set size."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


async def client_loop(client: httpx.AsyncClient, stop_at: float, budget: list[int], body: dict[str, Any], results: dict[str, Any], rng: random.Random) -> None:
    while time.monotonic() < stop_at and budget[0] > 0:
        budget[0] -= 1
        payload = {**body, "message": rng.choice(MESSAGES)}
        start = time.perf_counter()
        try:
            r = await client.post("/api/suggest", json=payload)
        except httpx.HTTPError as exc:
            results["errors"].append(type(exc).__name__)
            continue
        elapsed = time.perf_counter() - start
        if r.status_code == 200:
            results["latencies"].append(elapsed)
        elif r.status_code == 503 and "retry-after" in r.headers:
            results["busy"] += 1
            await asyncio.sleep(rng.uniform(0.05, 0.15))
        else:
            results["errors"].append(f"HTTP {r.status_code}: {r.text[:120]}")


async def drive(bases: list[str], clients: int, duration: float, max_requests: int, body: dict[str, Any],
                timeout: float) -> dict[str, Any]:
    """``clients`` closed-loop clients, dealt round-robin to the desks at ``bases``; each keeps
    its one connection alive from request to request, as an agent's browser does."""
    results: dict[str, Any] = {"latencies": [], "busy": 0, "errors": []}
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    async with contextlib.AsyncExitStack() as stack:
        http = [await stack.enter_async_context(httpx.AsyncClient(base_url=bases[i % len(bases)], timeout=timeout,
                                                                  limits=limits)) for i in range(clients)]
        budget = [max_requests]
        start = time.monotonic()
        stop_at = start + duration
        await asyncio.gather(*(client_loop(http[i], stop_at, budget, body, results, random.Random(i))
                               for i in range(clients)))
        wall = time.monotonic() - start
    lat = results["latencies"]
    return {
        "clients": clients,
        "wall_s": round(wall, 2),
        "ok": len(lat),
        "req_per_s": round(len(lat) / wall, 2),
        "p50_ms": round(1000 * percentile(lat, 0.50), 1),
        "p95_ms": round(1000 * percentile(lat, 0.95), 1),
        "p99_ms": round(1000 * percentile(lat, 0.99), 1),
        "mean_ms": round(1000 * statistics.fmean(lat), 1) if lat else None,
        "busy_503": results["busy"],
        "other_errors": len(results["errors"]),
        "error_samples": sorted(set(results["errors"]))[:5],
    }


@contextlib.contextmanager
def serving(run_dir: str, max_concurrent: int, timeout: float, extra: tuple[str, ...] = (),
            env: dict[str, str] | None = None) -> Iterator[tuple[str, subprocess.Popen]]:
    """A real ``bigramlm serve RUN_DIR`` (with ``extra`` flags, and ``env`` added to its
    environment) on a free loopback port, up and healthy; stopped on exit."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    cmd = [sys.executable, "-m", "bigramlm", "serve", run_dir, "--host", "127.0.0.1", "--port", str(port),
           "--max-concurrent", str(max_concurrent), "--timeout", str(timeout), "--log-level", "warning", *extra]
    environ = {**{k: v for k, v in os.environ.items() if k != "BIGRAMLM_TOKEN"}, **(env or {})}
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=environ)
    stderr_lines: list[str] = []
    threading.Thread(target=lambda: stderr_lines.extend(l.decode(errors="replace") for l in proc.stderr), daemon=True).start()
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                raise SystemExit(f"server exited with {proc.returncode}: {''.join(stderr_lines[-5:])}")
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit("server did not start in 120 s")
            time.sleep(0.2)
        yield base, proc
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def run_phase(run_dir: str, clients: int, duration: float, max_requests: int, body: dict[str, Any], max_concurrent: int,
              timeout: float, label: str, store: str | None = None, desks: int = 1) -> dict[str, Any]:
    """One phase: ``desks`` servers on ``run_dir`` (and on ``store``, when given), driven together."""
    extra = ("--store", store) if store else ()
    if desks > 1:  # the cores shared between the desks, as one machine would
        extra += ("--threads", str(max(1, (os.cpu_count() or 2) // desks)))
    with contextlib.ExitStack() as stack:
        started = [stack.enter_context(serving(run_dir, max_concurrent, timeout, extra)) for _ in range(desks)]
        for base, _ in started:
            warm = httpx.post(f"{base}/api/suggest", json={**body, "message": MESSAGES[0]}, timeout=timeout + 5)
            if warm.status_code != 200:
                raise SystemExit(f"warm-up request failed: {warm.status_code} {warm.text[:200]}")
        result = asyncio.run(drive([b for b, _ in started], clients, duration, max_requests, body, timeout + 5))
        if desks > 1:
            result["seen_by_other_desk_s"] = visibility_lags([b for b, _ in started], timeout)
        result["peak_rss_mib"] = round(max(peak_rss_mib(p.pid) or float("nan") for _, p in started), 1)
        result["cases_stats"] = httpx.get(f"{started[0][0]}/api/stats", timeout=5).json().get("suggestion_requests")
    result.update({"phase": label, "run": run_dir, "max_concurrent": max_concurrent, "duration_s": duration, "request": body,
                   "desks": desks, "store": "postgresql" if store else "sqlite"})
    return result


def visibility_lags(bases: list[str], timeout: float, probes: int = 10) -> dict[str, float]:
    """Seconds from a case acknowledged on one desk to its being among another desk's similar
    cases (asked for again every 50 ms), over ``probes`` cases alternating between the desks."""
    lags = []
    for k in range(probes):
        src, dst = bases[k % len(bases)], bases[(k + 1) % len(bases)]
        message = f"my parcel {k}4471 is stuck in customs at the border, what now?"
        reply = f"Customs holds on parcel {k}4471 are released within 3 days; we have asked them."
        saved = httpx.post(f"{src}/api/cases", json={"message": message, "reply": reply}, timeout=timeout)
        acknowledged = time.perf_counter()
        if saved.status_code != 201:
            raise SystemExit(f"visibility probe: {saved.status_code} {saved.text[:200]}")
        while time.perf_counter() - acknowledged < 10:
            shown = httpx.post(f"{dst}/api/suggest", json={"message": message, "n": 1, "max_new_tokens": 1},
                               timeout=timeout).json()
            if any(c["reply"] == reply for c in shown.get("similar_cases", [])):
                break
            time.sleep(0.05)
        lags.append(time.perf_counter() - acknowledged)
    return {"p50": round(percentile(lags, 0.5), 3), "max": round(max(lags), 3), "probes": probes}


@contextlib.contextmanager
def team_store(spec: str) -> Iterator[Any]:
    """A factory of empty PostgreSQL databases: a throwaway server's, or the one ``spec`` names."""
    if spec != "throwaway":
        yield lambda: spec
        return
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from pg_cluster import Cluster, server_bindir

    bindir = server_bindir()
    if bindir is None:
        raise SystemExit("--team throwaway needs PostgreSQL's server binaries (apt-get install postgresql)")
    cluster = Cluster(bindir)
    cluster.start()
    try:
        yield cluster.create_database
    finally:
        cluster.remove()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--run", required=True, help="bigram support run directory")
    p.add_argument("--clients", type=int, default=16)
    p.add_argument("--gpt-run", default=None, help="small GPT support run directory (optional second phase)")
    p.add_argument("--gpt-clients", type=int, default=8)
    p.add_argument("--duration", type=float, default=60.0, help="seconds per phase (default 60)")
    p.add_argument("--max-requests", type=int, default=200_000, help="hard cap on requests per phase")
    p.add_argument("--max-concurrent", type=int, default=4, help="the server's --max-concurrent (default 4, its default)")
    p.add_argument("--gpt-max-concurrent", type=int, default=2,
                   help="--max-concurrent for the GPT phase (default 2: one GPT generation per core here)")
    p.add_argument("--timeout", type=float, default=30.0, help="the server's --timeout and the clients' (default 30)")
    p.add_argument("--n", type=int, default=3, help="suggestions per request (default 3)")
    p.add_argument("--max-new-tokens", type=int, default=None,
                   help="reply length limit (default: the assistant's, as the desk page sends none)")
    p.add_argument("--team", default=None, metavar="throwaway|URL",
                   help="also measure one and two desks on one PostgreSQL store (a throwaway server, or this database)")
    p.add_argument("--json-out", default=None, help="also write the results here")
    args = p.parse_args(argv)
    if not 0 < args.duration <= 600 or args.clients < 1 or args.gpt_clients < 1:
        p.error("duration must be in (0, 600] s and client counts at least 1")
    body = {"n": args.n, "max_new_tokens": args.max_new_tokens}
    body = {k: v for k, v in body.items() if v is not None}
    phases = [(args.run, args.clients, args.max_concurrent, "bigram")]
    if args.gpt_run:
        phases.append((args.gpt_run, args.gpt_clients, args.gpt_max_concurrent, "gpt"))
    results = []
    with team_store(args.team) if args.team else contextlib.nullcontext(None) as new_database:
        for run_dir, clients, cap, label in phases:
            setups = [(None, 1)] + ([(new_database, 1), (new_database, 2)] if new_database else [])
            for make_store, desks in setups:
                store = make_store() if make_store else None
                print(f"[{label}] {clients} clients x {args.duration:g} s on {desks} desk(s), "
                      f"{'PostgreSQL' if store else 'SQLite'} ...", file=sys.stderr, flush=True)
                r = run_phase(run_dir, clients, args.duration, args.max_requests, body, cap, args.timeout, label, store, desks)
                print(json.dumps(r), flush=True)
                results.append(r)
    print_table(results)
    for r in results:
        if "seen_by_other_desk_s" in r:
            lag = r["seen_by_other_desk_s"]
            print(f"{r['phase']}, two desks: a case acknowledged on one is among the other's similar cases after "
                  f"{lag['p50']:.3f} s (p50), {lag['max']:.3f} s at most, over {lag['probes']} cases")
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(results, indent=2))
    return 1 if any(r["other_errors"] for r in results) else 0


def print_table(results: list[dict[str, Any]]) -> None:
    """The phases as a table; team phases with their throughput against the SQLite desk of the same run."""
    print("\n| phase | desks | store | clients | cap | answered | req/s | vs one SQLite desk | p50 ms | p95 ms | p99 ms "
          "| 503 (intended) | other errors | peak RSS MiB |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        one = next(x for x in results if x["phase"] == r["phase"] and x["store"] == "sqlite")
        ratio = f"{r['req_per_s'] / one['req_per_s']:.2f}x" if one["req_per_s"] else "n/a"
        print(f"| {r['phase']} | {r['desks']} | {r['store']} | {r['clients']} | {r['max_concurrent']} | {r['ok']} | "
              f"{r['req_per_s']} | {ratio} | {r['p50_ms']} | {r['p95_ms']} | {r['p99_ms']} | {r['busy_503']} | "
              f"{r['other_errors']} | {r['peak_rss_mib']} |")


if __name__ == "__main__":
    sys.exit(main())

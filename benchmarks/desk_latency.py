"""Latency of the agent desk for one agent: a warm ``POST /api/suggest`` and the stream's start.

Starts a real ``bigramlm serve RUN_DIR`` on a loopback port, warms it with one request,
then, one request at a time over the benchmark's customer messages (``--requests`` in
all, for each measurement), on one kept-alive connection as an agent's browser uses
(figures before issue 27's fix also held a ~40 ms wait of each later request, Nagle's
algorithm meeting the client's delayed ACK; ``benchmarks/keepalive.py``):

- ``suggest``: the whole answer of ``POST /api/suggest`` with ``n`` suggestions at the
  desk's defaults (400-token limit, the assistant's stop at the next header);
- ``stream``: on ``POST /api/suggest/stream``, the time to the ``understanding`` event
  (intent, confidence and the similar-cases panel) and to the first ``token`` event (the
  suggestions start to appear).

Each is measured twice in the same run: on a desk with speculative decoding (the default)
and on one started with ``--no-speculate`` (the plain decoder, one token per pass); the
ratio of their p50s is the speed-up. The understanding event alone (sentence embedding,
classifier, retrieval) says how much of a request is not the model.

Then ``--clients`` agents at once (closed loop, ``--duration`` seconds, at most
``--max-requests``, the cap at ``--clients`` so that none is refused): on the default
desk, whose concurrent requests share their decode (``generation.batcher``) and, while
it is busy, write only their greedy draft; on the same desk with every request asking
for its ``n`` drafts (``all drafts``); and on one started with ``--no-batch`` (each
request decoded in its own thread, all its drafts); p50/p95, requests per second and
errors of each.

    python benchmarks/desk_latency.py --run runs/support --json
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from typing import Any

import httpx

from _common import parser
from bench_server_load import MESSAGES, drive, percentile, serving


def time_suggest(client: httpx.Client, message: str, n: int) -> float:
    start = time.perf_counter()
    r = client.post("/api/suggest", json={"message": message, "n": n, "seed": 0})
    r.raise_for_status()
    return time.perf_counter() - start


def time_stream(client: httpx.Client, message: str, n: int) -> tuple[float, float]:
    """Seconds to the ``understanding`` event and to the first ``token`` event."""
    start = time.perf_counter()
    understood = first_token = None
    with client.stream("POST", "/api/suggest/stream", json={"message": message, "n": n, "seed": 0}) as r:
        r.raise_for_status()
        for line in r.iter_lines():
            if line == "event: understanding" and understood is None:
                understood = time.perf_counter() - start
            elif line == "event: token" and first_token is None:
                first_token = time.perf_counter() - start
    if understood is None or first_token is None:
        raise SystemExit("the stream ended without an understanding or a token event")
    return understood, first_token


def summary(values: list[float]) -> dict[str, float]:
    return {"p50_ms": round(1000 * statistics.median(values), 1), "p95_ms": round(1000 * percentile(values, 0.95), 1),
            "mean_ms": round(1000 * statistics.fmean(values), 1)}


def measure(run: str, n: int, messages: list[str], extra: tuple[str, ...]) -> dict[str, Any]:
    """One server's figures: warm ``/api/suggest``, and the stream's first events."""
    with serving(run, max_concurrent=1, timeout=60.0, extra=extra) as (base, _):
        with httpx.Client(base_url=base, timeout=65.0) as client:
            time_suggest(client, MESSAGES[0], n)  # warm: first-call allocations, caches
            suggest = [time_suggest(client, m, n) for m in messages]
            streams = [time_stream(client, m, n) for m in messages]
    understanding = [u for u, _ in streams]
    return {"suggest": summary(suggest), "stream_understanding": summary(understanding),
            "stream_first_token": summary([t for _, t in streams]),
            "suggest_vs_understanding": round(statistics.median(suggest) / statistics.median(understanding), 2)}


def measure_load(run: str, n: int, clients: int, duration: float, max_requests: int,
                 extra: tuple[str, ...], body: dict[str, Any] | None = None) -> dict[str, Any]:
    """``clients`` closed-loop agents on ``/api/suggest`` of one server (the cap at ``clients``),
    each request ``{"n": n, "seed": 0}`` and ``body``."""
    with serving(run, max_concurrent=clients, timeout=60.0, extra=extra) as (base, _):
        with httpx.Client(base_url=base, timeout=65.0) as client:
            time_suggest(client, MESSAGES[0], n)  # warm
        return asyncio.run(drive([base], clients, duration, max_requests, {"n": n, "seed": 0, **(body or {})}, 65.0))


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--run", required=True, help="support run directory (e.g. from train --recipe support)")
    p.add_argument("--n", type=int, default=3, help="suggestions per request (default 3)")
    p.add_argument("--requests", type=int, default=30, help="requests per measurement (default 30)")
    p.add_argument("--clients", type=int, default=8, help="agents at once in the load phase (default 8; 0 skips it)")
    p.add_argument("--duration", type=float, default=30.0, help="seconds of the load phase, each desk (default 30)")
    p.add_argument("--max-requests", type=int, default=120, help="requests at most in the load phase, each desk (default 120)")
    args = p.parse_args()
    messages = [MESSAGES[i % len(MESSAGES)] for i in range(args.requests)]
    report: dict[str, Any] = {"run": args.run, "n": args.n, "requests": args.requests,
                              "speculative": measure(args.run, args.n, messages, ()),
                              "plain": measure(args.run, args.n, messages, ("--no-speculate",))}
    fast, plain = report["speculative"]["suggest"], report["plain"]["suggest"]
    report["plain_vs_speculative_p50"] = round(plain["p50_ms"] / fast["p50_ms"], 2)
    if args.clients > 0:
        load = (args.run, args.n, args.clients, args.duration, args.max_requests)
        # "all drafts": the shared decode, each request asking for its n drafts (a busy desk
        # otherwise writes only the greedy one of a request that does not say).
        report["load"] = {"batched": measure_load(*load, ()), "batched_all_drafts": measure_load(*load, (), {"drafts": args.n}),
                          "unbatched": measure_load(*load, ("--no-batch",))}
        report["unbatched_vs_batched_p50"] = round(report["load"]["unbatched"]["p50_ms"] / report["load"]["batched"]["p50_ms"], 2)
    if args.json:
        print(json.dumps(report))
        return
    for name in ("speculative", "plain"):
        r = report[name]
        print(f"{name:11s} warm POST /api/suggest n={args.n}: p50 {r['suggest']['p50_ms']} ms, p95 {r['suggest']['p95_ms']} ms; "
              f"stream: understanding after {r['stream_understanding']['p50_ms']} ms, first token after "
              f"{r['stream_first_token']['p50_ms']} ms (p50)")
    print(f"speculative decoding answers {report['plain_vs_speculative_p50']}x as fast as the plain decoder (p50)")
    for name, r in report.get("load", {}).items():
        print(f"{args.clients} agents, {name:18s}: p50 {r['p50_ms']} ms, p95 {r['p95_ms']} ms, {r['req_per_s']} req/s, "
              f"{r['ok']} answered, {r['busy_503']} refused (503), {r['other_errors']} errors")
    if "load" in report:
        print(f"with {args.clients} agents, shared decodes answer {report['unbatched_vs_batched_p50']}x as fast (p50)")


if __name__ == "__main__":
    main()

"""Kept-alive connections: the latency of a request on a connection already open, against the first.

Starts a real ``bigramlm serve RUN_DIR`` on a loopback port. Then, ``--connections`` times,
opens one connection as a browser does (one ``httpx.Client``) and sends ``--requests``
requests on it to each route: ``GET /healthz``, ``GET /api/stats`` and ``POST /api/suggest``
(one suggestion of 8 tokens, so that the model's share stays small). It prints, for each
route, the p50 of the first request of a connection (its TCP connect included) and of the
later ones, and their ratio: a later request should cost at most the first. Before the desk
turned Nagle's algorithm off on its connections (``serve.server.no_delay``), every later
request waited about 40 ms for the client's delayed ACK: 44-48 ms against 2-15 ms first.

    python benchmarks/keepalive.py --run runs/support-demo --json

Only loopback; bounded in requests.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import httpx

from _common import parser, report
from bench_server_load import MESSAGES, serving

ROUTES: list[tuple[str, str, dict[str, Any] | None]] = [
    ("GET", "/healthz", None), ("GET", "/api/stats", None),
    ("POST", "/api/suggest", {"message": MESSAGES[1], "n": 1, "max_new_tokens": 8, "seed": 0}),
]


def one_connection(base: str, method: str, path: str, body: dict[str, Any] | None, requests: int) -> list[float]:
    """Seconds of each of ``requests`` requests on one kept-alive connection."""
    times = []
    with httpx.Client(base_url=base, timeout=60.0) as client:
        for _ in range(requests):
            start = time.perf_counter()
            client.request(method, path, json=body).raise_for_status()
            times.append(time.perf_counter() - start)
        if client.get("/healthz").headers.get("connection", "keep-alive").lower() == "close":
            raise SystemExit("the server closed the connection: nothing was kept alive")
    return times


def measure(base: str, connections: int, requests: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for method, path, body in ROUTES:
        one_connection(base, method, path, body, 2)  # warm: first-call allocations, caches
        firsts, laters = [], []
        for _ in range(connections):
            first, *later = one_connection(base, method, path, body, requests)
            firsts.append(first)
            laters.extend(later)
        p50_first, p50_later = statistics.median(firsts), statistics.median(laters)
        out[f"{method} {path}"] = {"first_p50_ms": round(1000 * p50_first, 2), "later_p50_ms": round(1000 * p50_later, 2),
                                   "later_max_ms": round(1000 * max(laters), 2),
                                   "later_vs_first": round(p50_later / p50_first, 2)}
    return out


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--run", required=True, help="run directory (a support run answers /api/suggest with the assistant)")
    p.add_argument("--connections", type=int, default=10, help="connections per route (default 10)")
    p.add_argument("--requests", type=int, default=10, help="requests per connection (default 10)")
    args = p.parse_args()
    with serving(args.run, max_concurrent=2, timeout=60.0) as (base, _):
        routes = measure(base, args.connections, args.requests)
    lines = [f"{route:18s} first request p50 {r['first_p50_ms']} ms, later requests p50 {r['later_p50_ms']} ms "
             f"(max {r['later_max_ms']}): later/first {r['later_vs_first']}x" for route, r in routes.items()]
    report("keepalive", {"run": args.run, "connections": args.connections, "requests": args.requests, "routes": routes},
           args.json, lines)


if __name__ == "__main__":
    main()

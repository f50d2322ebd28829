"""Soak benchmark of the agent desk: does its memory level off under steady load, and where?

A probe saw a desk's resident memory grow from 743 to 1,490 MB in a 480 s soak with 6
clients, the rise slowing. This runs a real ``bigramlm serve RUN_DIR`` (the load
benchmark's ``serving``) with ``--clients`` closed-loop clients on kept-alive connections
for ``--duration`` seconds, every ``--accept-every``-th answer accepted as a case (so the
store and the retrieval index grow as on a desk in use), and samples the server's
resident set (``VmRSS``) every ``--sample-every`` seconds.

It prints the curve and, as the reference measured in the same run, the growth of each
quarter of the soak per 100 answered requests: memory that levels off shows a last
quarter's growth near zero against the first quarter's. ``--env NAME=VALUE`` runs a
second soak of the same length with that variable set on the server (for example
``MALLOC_ARENA_MAX=2``, glibc's cap on its per-thread heaps), and prints both.

    python benchmarks/desk_soak.py --run runs/support-demo --clients 6 --duration 1200

Only loopback; bounded in time and requests.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_server_load import MESSAGES, serving  # noqa: E402


@dataclass
class Soak:
    label: str
    #: (seconds since the load started, answered requests so far, VmRSS MiB)
    samples: list[tuple[float, int, float]] = field(default_factory=list)
    answered: int = 0
    accepted: int = 0
    errors: int = 0

    def quarter_growth(self) -> list[float | None]:
        """MiB grown in each quarter of the soak, per 100 requests answered in it."""
        if len(self.samples) < 5:
            return []
        end = self.samples[-1][0]
        out: list[float | None] = []
        for q in range(4):
            lo = min(self.samples, key=lambda s: abs(s[0] - end * q / 4))
            hi = min(self.samples, key=lambda s: abs(s[0] - end * (q + 1) / 4))
            done = hi[1] - lo[1]
            out.append(round(100 * (hi[2] - lo[2]) / done, 2) if done > 0 else None)
        return out


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def client(base: str, stop_at: float, soak: Soak, lock: threading.Lock, args: argparse.Namespace, seed: int) -> None:
    """One agent: a kept-alive connection, a suggestion at a time, every k-th answer accepted."""
    rng = random.Random(seed)
    with httpx.Client(base_url=base, timeout=args.timeout + 5) as http:
        while time.monotonic() < stop_at:
            with lock:
                if soak.answered + soak.errors >= args.max_requests:
                    return
            message = f"{rng.choice(MESSAGES)} (ref {rng.randrange(10**6)})"
            try:
                r = http.post("/api/suggest", json={"message": message, "n": args.n})
            except httpx.HTTPError:
                r = None
            if r is None or r.status_code != 200:
                with lock:
                    soak.errors += r is None or r.status_code != 503
                time.sleep(0.1)
                continue
            with lock:
                soak.answered += 1
                accept = soak.answered % args.accept_every == 0
            if accept and r.json().get("suggestions"):
                s = r.json()["suggestions"][0]
                done = http.post("/api/cases", json={"message": message, "reply": s["filled_text"] + " Thanks!",
                                                     "suggestion_id": s["id"], "edited": True})
                with lock:
                    soak.accepted += done.status_code in (200, 201)


def soak_once(args: argparse.Namespace, label: str, env: dict[str, str]) -> Soak:
    soak, lock = Soak(label), threading.Lock()
    with serving(args.run, args.max_concurrent, args.timeout, env=env) as (base, proc):
        httpx.post(f"{base}/api/suggest", json={"message": MESSAGES[0], "n": args.n}, timeout=args.timeout + 5)
        start = time.monotonic()
        stop_at = start + args.duration
        threads = [threading.Thread(target=client, args=(base, stop_at, soak, lock, args, i)) for i in range(args.clients)]
        for t in threads:
            t.start()
        while any(t.is_alive() for t in threads):
            with lock:
                soak.samples.append((round(time.monotonic() - start, 1), soak.answered, round(rss_mib(proc.pid), 1)))
            print(f"[{label}] t={soak.samples[-1][0]:7.1f}s answered={soak.samples[-1][1]:6d} "
                  f"rss={soak.samples[-1][2]:8.1f} MiB", file=sys.stderr, flush=True)
            time.sleep(args.sample_every)
        soak.samples.append((round(time.monotonic() - start, 1), soak.answered, round(rss_mib(proc.pid), 1)))
    return soak


def report(soaks: list[Soak]) -> None:
    print("\n| soak | answered | accepted | errors | RSS after warm-up MiB | RSS at end MiB | end / start "
          "| growth per 100 requests, quarters 1-4 (MiB) |")
    print("|---|---|---|---|---|---|---|---|")
    for s in soaks:
        first, last = s.samples[0][2], s.samples[-1][2]
        print(f"| {s.label} | {s.answered} | {s.accepted} | {s.errors} | {first} | {last} | {last / first:.2f}x | "
              f"{' / '.join('n/a' if g is None else f'{g:+.2f}' for g in s.quarter_growth())} |")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--run", required=True, help="support run directory (a copy: the soak adds cases to its store)")
    p.add_argument("--clients", type=int, default=6)
    p.add_argument("--duration", type=float, default=1200.0, help="seconds of load per soak (default 1200)")
    p.add_argument("--max-requests", type=int, default=100_000, help="hard cap on requests per soak")
    p.add_argument("--max-concurrent", type=int, default=4, help="the server's --max-concurrent (default 4)")
    p.add_argument("--timeout", type=float, default=30.0)
    p.add_argument("--n", type=int, default=3, help="suggestions per request (default 3, as the desk asks)")
    p.add_argument("--accept-every", type=int, default=5, help="accept every k-th answer as a case (default 5)")
    p.add_argument("--sample-every", type=float, default=10.0, help="seconds between memory samples (default 10)")
    p.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                   help="also soak once with this variable set on the server (repeatable: all set together)")
    p.add_argument("--json-out", default=None, help="also write the curves here")
    args = p.parse_args(argv)
    if not 0 < args.duration <= 7200 or args.clients < 1 or args.accept_every < 1:
        p.error("--duration must be in (0, 7200] s, --clients and --accept-every at least 1")
    extra = dict(item.split("=", 1) for item in args.env)
    soaks = [soak_once(args, "as shipped", {})]
    if extra:
        soaks.append(soak_once(args, " ".join(args.env), extra))
    report(soaks)
    if args.json_out:
        Path(args.json_out).write_text(json.dumps([asdict(s) for s in soaks], indent=2))
    return 1 if any(s.errors for s in soaks) else 0


if __name__ == "__main__":
    sys.exit(main())

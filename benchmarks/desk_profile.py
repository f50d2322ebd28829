"""Where a warm desk request's time goes: one ``suggest`` (n = 3) profiled, by part.

Each source tree (this checkout, and with ``--before-src`` an older one, e.g. a
``git worktree`` of the commit before a change) runs in its own process on the same run:
it loads the assistant, answers one message to warm up, then answers the benchmark's
customer messages under cProfile. Every function's own time is put in one part of the
request by the file it lives in (torch's kernels, the model's Python, sampling, drafting,
detokenizing, understanding, ranking), so the parts add up to the profiled total.

    python benchmarks/desk_profile.py --run runs/support --before-src ../before/src [--json]

With ``--agents N``, N threads ask one assistant at once, as a desk's agents do (its decodes
shared, ``share_decodes``, its store attached), and each request's wall time is split by
stage instead: ``read`` (normalise, understanding, retrieval with the store's search),
``decode`` (waiting for and running the shared decode), ``answer`` (draft checks, choosing,
dismissals and rules from the store, the brand), ``refresh`` (reading new store cases).
What the HTTP p50 adds on top (``desk_latency.py``) is the server: the event loop, the
thread pool, serialising.

    python benchmarks/desk_profile.py --run runs/support --agents 8 --requests 40
"""

from __future__ import annotations

import cProfile
import json
import os
import pstats
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from _common import parser
from bench_server_load import MESSAGES

#: (part, substrings of the file a function lives in), first match wins.
PARTS = [
    ("model: Python around the kernels", ("models/gpt.py", "generation/decoding.py")),
    ("sampling: filters and draws", ("generation/filters.py",)),
    ("decode loop: bookkeeping, batching", ("generation/engine.py", "generation/batch.py", "generation/batcher.py")),
    ("speculation: drafts", ("generation/speculation.py",)),
    ("detokenizing, stop strings", ("generation/text.py", "tokenization/")),
    ("understanding: encoder, classifier, retrieval", ("support/encoder.py", "support/understanding.py",
                                                        "support/retrieval.py", "sklearn/", "scipy/")),
    ("choosing: readability, chrF, ranking, edits, brand", ("support/choice.py", "support/chrf.py", "support/ranking.py",
                                                             "support/readability.py", "support/edits.py",
                                                             "support/brand.py", "support/message_values.py")),
    ("the assistant's own code", ("support/assistant.py", "support/results.py")),
]
KERNELS = "torch kernels (matmuls, attention, sampling ops)"
OTHER = "other (Python built-ins, numpy, the store)"


def part_of(filename: str, function: str) -> str:
    if filename == "~":  # a built-in: torch's ops are the model's arithmetic
        return KERNELS if "torch" in function or "Tensor" in function else OTHER
    for part, needles in PARTS:
        if any(n in filename for n in needles):
            return part
    return OTHER


def worker(run: str, threads: int, messages: list[str]) -> dict[str, Any]:
    import torch

    from bigramlm.support.assistant import Assistant
    from bigramlm.support.settings import SuggestSettings

    torch.set_num_threads(threads)
    assistant = Assistant.load(run, use_store=False)
    assistant.suggest(MESSAGES[0], SuggestSettings(n=3, seed=0))  # warm: first-call allocations, caches
    profile = cProfile.Profile()
    start = time.perf_counter()
    profile.enable()
    for i, message in enumerate(messages):
        assistant.suggest(message, SuggestSettings(n=3, seed=i))
    profile.disable()
    wall = time.perf_counter() - start
    parts: dict[str, float] = {}
    for (filename, _, function), (_, _, own, _, _) in pstats.Stats(profile).stats.items():  # type: ignore[attr-defined]
        part = part_of(filename, function)
        parts[part] = parts.get(part, 0.0) + own
    per_request = {k: round(1000 * v / len(messages), 1) for k, v in sorted(parts.items(), key=lambda kv: -kv[1])}
    return {"requests": len(messages), "wall_ms_per_request": round(1000 * wall / len(messages), 1),
            "profiled_ms_per_request": round(sum(per_request.values()), 1), "parts_ms_per_request": per_request}


def stages(run: str, threads: int, agents: int, messages: list[str]) -> dict[str, Any]:
    """``agents`` threads through ``messages``; per request, the wall time of each stage."""
    import statistics
    import threading
    from concurrent.futures import ThreadPoolExecutor

    import torch

    from bigramlm.support.assistant import Assistant
    from bigramlm.support.settings import SuggestSettings

    torch.set_num_threads(threads)
    assistant = Assistant.load(run, share_decodes=True)
    assistant.suggest(MESSAGES[0], SuggestSettings(n=3, seed=0))
    spent: dict[str, list[float]] = {}
    lock = threading.Lock()

    def timed(name: str, fn: Any) -> Any:
        def wrapper(*a: Any, **k: Any) -> Any:
            start = time.perf_counter()
            try:
                out = fn(*a, **k)
                return list(out) if name == "decode" else out  # a stream: time its whole consumption
            finally:
                with lock:
                    spent.setdefault(name, []).append(time.perf_counter() - start)
        return wrapper

    assistant.reader.read = timed("read", assistant.reader.read)  # type: ignore[method-assign]
    assistant.decodes.generate = timed("decode", assistant.decodes.generate)  # type: ignore[method-assign]
    assistant._answer = timed("answer", assistant._answer)  # type: ignore[method-assign]
    assistant.refresh_cases = timed("refresh", assistant.refresh_cases)  # type: ignore[method-assign]
    totals: list[float] = []

    def one(i: int) -> None:
        start = time.perf_counter()
        assistant.suggest(messages[i], SuggestSettings(n=3, seed=i))
        with lock:
            totals.append(time.perf_counter() - start)

    start = time.perf_counter()
    with ThreadPoolExecutor(agents) as pool:
        list(pool.map(one, range(len(messages))))
    wall = time.perf_counter() - start
    return {"agents": agents, "requests": len(messages), "req_per_s": round(len(messages) / wall, 2),
            "p50_ms": round(1000 * statistics.median(totals), 1),
            "stages_ms_per_request": {k: round(1000 * sum(v) / len(messages), 1) for k, v in spent.items()}}


def profile_tree(src: str | None, run: str, threads: int, requests: int) -> dict[str, Any]:
    """Run the worker in a fresh process with ``src`` first on the path (None: this checkout)."""
    env = dict(os.environ)
    if src is not None:
        env["PYTHONPATH"] = str(Path(src).resolve()) + os.pathsep + env.get("PYTHONPATH", "")
    cmd = [sys.executable, __file__, "--worker", "--run", run, "--threads", str(threads), "--requests", str(requests)]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=Path(__file__).parent)
    if out.returncode != 0:
        raise SystemExit(f"the profile of {src or 'this checkout'} failed: {out.stderr.strip().splitlines()[-1:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--run", required=True, help="support run directory")
    p.add_argument("--before-src", default=None, help="the src/ folder of an older checkout, profiled beside this one")
    p.add_argument("--threads", type=int, default=2, help="torch intra-op threads in both (default 2)")
    p.add_argument("--requests", type=int, default=10, help="profiled requests (default 10)")
    p.add_argument("--agents", type=int, default=0, help="time each stage of requests from this many agents at once")
    p.add_argument("--worker", action="store_true", help=argparse_hidden())
    args = p.parse_args()
    messages = [MESSAGES[i % len(MESSAGES)] for i in range(args.requests)]
    if args.agents:
        found = stages(args.run, args.threads, args.agents, messages)
        print(json.dumps(found) if args.json else
              f"{args.agents} agents, {args.requests} requests: p50 {found['p50_ms']} ms, {found['req_per_s']} req/s; "
              f"ms per request by stage: {found['stages_ms_per_request']}")
        return
    if args.worker:
        print(json.dumps(worker(args.run, args.threads, messages)))
        return
    report: dict[str, Any] = {"run": args.run, "threads": args.threads, "after": profile_tree(None, args.run, args.threads,
                                                                                             args.requests)}
    if args.before_src:
        report["before"] = profile_tree(args.before_src, args.run, args.threads, args.requests)
    if args.json:
        print(json.dumps(report))
        return
    names = list(report["after"]["parts_ms_per_request"])
    if "before" in report:
        names += [n for n in report["before"]["parts_ms_per_request"] if n not in names]
    columns = [c for c in ("before", "after") if c in report]
    print(f"one warm suggest (n=3), ms per request, {args.requests} requests, {args.threads} threads")
    print(f"{'part':52s}" + "".join(f"{c:>10s}" for c in columns))
    for name in names:
        print(f"{name:52s}" + "".join(f"{report[c]['parts_ms_per_request'].get(name, 0.0):10.1f}" for c in columns))
    print(f"{'profiled total':52s}" + "".join(f"{report[c]['profiled_ms_per_request']:10.1f}" for c in columns))
    print(f"{'wall, under the profiler':52s}" + "".join(f"{report[c]['wall_ms_per_request']:10.1f}" for c in columns))


def argparse_hidden() -> str:
    import argparse

    return argparse.SUPPRESS


if __name__ == "__main__":
    main()

"""Where a warm desk request's time goes: one ``suggest`` (n = 3) profiled, by part.

Each source tree (this checkout, and with ``--before-src`` an older one, e.g. a
``git worktree`` of the commit before a change) runs in its own process on the same run:
it loads the assistant, answers one message to warm up, then answers the benchmark's
customer messages under cProfile. Every function's own time is put in one part of the
request by the file it lives in (torch's kernels, the model's Python, sampling, drafting,
detokenizing, understanding, ranking), so the parts add up to the profiled total.

    python benchmarks/desk_profile.py --run runs/support --before-src ../before/src [--json]
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
    p.add_argument("--worker", action="store_true", help=argparse_hidden())
    args = p.parse_args()
    messages = [MESSAGES[i % len(MESSAGES)] for i in range(args.requests)]
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

"""Shared helpers for the benchmarks: corpus lookup, timing, and reporting.

Every benchmark measures its reference in the same run (same machine, same load) and
prints the ratio; ``--json`` prints one object instead, for scripts and docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA_DIR = ROOT.parent / "shared" / "data"


def shakespeare_path() -> Path:
    """Tiny Shakespeare through the project's own resolver (offline copy, cache, download)."""
    os.environ.setdefault("BIGRAMLM_DATA_DIR", str(DEFAULT_DATA_DIR))
    from bigramlm.data.registry import REGISTRY
    from bigramlm.data.sources import ensure_corpus

    return ensure_corpus(REGISTRY["tinyshakespeare"])


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--repeats", type=int, default=5, help="timed repetitions (the median is reported)")
    return p


def best_of(fn: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    """Median wall time of ``fn`` over ``repeats`` calls, and the last result.

    The median, not the minimum: the machine is shared, and the median is what a user
    sees; both sides of every ratio are timed the same way, interleaved.
    """
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def environment() -> dict[str, Any]:
    import torch

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpus": os.cpu_count(),
        "load_average_1min": round(os.getloadavg()[0], 2),
    }


def report(name: str, result: dict[str, Any], as_json: bool, lines: list[str]) -> None:
    result = {"benchmark": name, **result, "environment": environment()}
    if as_json:
        print(json.dumps(result))
    else:
        print(f"== {name} ==")
        for line in lines:
            print(line)
        env = result["environment"]
        print(f"(python {env['python']}, torch {env['torch']}, {env['cpus']} cpus, load {env['load_average_1min']})")
    sys.stdout.flush()

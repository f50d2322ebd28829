"""Edit distance: the store's normalised Levenshtein (rapidfuzz) against the numpy recurrence it replaced.

Pairs: the Bitext sample's replies, each against the reply of the next row (real
lengths, 300-1,500 characters), ``--pairs`` of them. Both sides give the same figures
(checked to 1e-12); the ratio is their time per pair.

    .venv/bin/python benchmarks/edit_distance.py [--json] [--pairs 100]
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np

from _common import DEFAULT_DATA_DIR, best_of, parser, report
from bigramlm.support.store import normalized_edit_distance


def numpy_recurrence(a: str, b: str) -> float:
    """The hand-written version the store used before: one numpy pass per character of ``a``."""
    if a == b:
        return 0.0
    if not a or not b:
        return 1.0
    aa = np.frombuffer(a.encode("utf-32-le"), dtype=np.uint32)
    bb = np.frombuffer(b.encode("utf-32-le"), dtype=np.uint32)
    offsets = np.arange(len(b) + 1, dtype=np.int64)
    prev = offsets.copy()
    for i, code in enumerate(aa, start=1):
        cur = np.empty_like(prev)
        cur[0] = i
        cur[1:] = np.minimum(prev[:-1] + (bb != code), prev[1:] + 1)
        cur = np.minimum.accumulate(cur - offsets) + offsets
        prev = cur
    return float(prev[-1]) / max(len(a), len(b))


def replies(count: int) -> list[str]:
    root = Path(os.environ.get("BIGRAMLM_DATA_DIR", DEFAULT_DATA_DIR))
    with open(root / "bitext" / "bitext-sample.csv", newline="", encoding="utf-8") as f:
        rows = [row["response"] for _, row in zip(range(count + 1), csv.DictReader(f))]
    if len(rows) < count + 1:
        raise SystemExit(f"the sample has fewer than {count + 1} rows")
    return rows


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--pairs", type=int, default=100, help="reply pairs (default 100)")
    args = p.parse_args()
    texts = replies(args.pairs)
    pairs = list(zip(texts, texts[1:]))
    ours_s, ours = best_of(lambda: [normalized_edit_distance(a, b) for a, b in pairs], args.repeats)
    ref_s, ref = best_of(lambda: [numpy_recurrence(a, b) for a, b in pairs], max(1, min(args.repeats, 3)))
    worst = max(abs(x - y) for x, y in zip(ours, ref))
    if worst > 1e-12:
        raise SystemExit(f"the two disagree by {worst}")
    result = {"pairs": len(pairs), "mean_chars": round(float(np.mean([len(a) for a, _ in pairs])), 1),
              "rapidfuzz_s": round(ours_s, 5), "numpy_s": round(ref_s, 4), "speedup": round(ref_s / ours_s, 1),
              "max_difference": worst}
    report("edit_distance", result, args.json, [
        f"{len(pairs)} reply pairs ({result['mean_chars']} characters on average): rapidfuzz {1000 * ours_s:.2f} ms, "
        f"the numpy recurrence {1000 * ref_s:.0f} ms: {result['speedup']}x; largest difference {worst:.1e}",
    ])


if __name__ == "__main__":
    main()

"""Batching: bigramlm's one-gather get_batch against the notebook's Python loop + torch.stack.

Both draw the same random starts from the same generator seed, so they build the same
batch (checked). Figures are batches per second at the notebook's shape (32 x 8) and at
a GPT-sized one (64 x 256).

    .venv/bin/python benchmarks/batching.py [--json] [--batches 2000]
"""

from __future__ import annotations

import time

import torch

from _common import parser, report, shakespeare_path
from bigramlm.data.batching import get_batch
from bigramlm.tokenization import CharTokenizer


def notebook_batch(data: torch.Tensor, batch_size: int, block_size: int, generator: torch.Generator):
    # The notebook's method: a Python loop of slices per row, stacked twice.
    ix = torch.randint(len(data) - block_size, (batch_size,), generator=generator)
    x = torch.stack([data[i : i + block_size] for i in ix])
    y = torch.stack([data[i + 1 : i + 1 + block_size] for i in ix])
    return x, y


def rate(fn, data: torch.Tensor, batch_size: int, block_size: int, batches: int) -> float:
    g = torch.Generator().manual_seed(0)
    start = time.perf_counter()
    for _ in range(batches):
        fn(data, batch_size, block_size, g)
    return batches / (time.perf_counter() - start)


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--batches", type=int, default=2000, help="batches per timing (default 2000)")
    args = p.parse_args()
    torch.set_num_threads(1)  # both sides alike; tiny tensors gain nothing from threads
    text = shakespeare_path().read_text(encoding="utf-8")
    data = torch.from_numpy(CharTokenizer.from_text(text).encode(text))

    result: dict = {"shapes": []}
    lines = []
    for batch_size, block_size in [(32, 8), (64, 256)]:
        a = notebook_batch(data, batch_size, block_size, torch.Generator().manual_seed(5))
        b = get_batch(data, batch_size, block_size, torch.Generator().manual_seed(5))
        assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]), "the two batchers disagree"
        n = args.batches if block_size <= 8 else max(1, args.batches // 4)
        ref, ours = [], []
        for _ in range(max(1, args.repeats // 2)):  # interleaved, so load hits both alike
            ref.append(rate(notebook_batch, data, batch_size, block_size, n))
            ours.append(rate(get_batch, data, batch_size, block_size, n))
        ref_rate, our_rate = sorted(ref)[len(ref) // 2], sorted(ours)[len(ours) // 2]
        ratio = our_rate / ref_rate
        result["shapes"].append({
            "batch_size": batch_size, "block_size": block_size,
            "notebook_batches_per_s": round(ref_rate), "ours_batches_per_s": round(our_rate), "speedup": round(ratio, 2),
        })
        lines.append(f"batch {batch_size} x block {block_size}: notebook loop+stack {ref_rate:,.0f}/s, "
                     f"bigramlm one gather {our_rate:,.0f}/s -> {ratio:.1f}x")
    result["speedup"] = result["shapes"][0]["speedup"]
    report("batching", result, args.json, lines)


if __name__ == "__main__":
    main()

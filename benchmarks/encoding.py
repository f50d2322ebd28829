"""Encoding: the vectorised CharTokenizer against the notebook's list comprehension.

Corpus: Tiny Shakespeare repeated to about 5 MB. Both sides produce the same ids
(checked); the figure is characters per second and the ratio.

    .venv/bin/python benchmarks/encoding.py [--json] [--megabytes 5]
"""

from __future__ import annotations

import math

import torch

from _common import best_of, parser, report, shakespeare_path
from bigramlm.tokenization import CharTokenizer


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--megabytes", type=float, default=5.0, help="corpus size (default 5)")
    args = p.parse_args()
    base = shakespeare_path().read_text(encoding="utf-8")
    copies = max(1, math.ceil(args.megabytes * 1e6 / len(base)))
    text = base * copies

    # The notebook's way: a dict and a list comprehension, then torch.tensor.
    chars = sorted(set(text))
    stoi = {ch: i for i, ch in enumerate(chars)}

    def notebook() -> torch.Tensor:
        return torch.tensor([stoi[c] for c in text], dtype=torch.long)

    def notebook_list_only() -> list[int]:
        return [stoi[c] for c in text]

    tokenizer = CharTokenizer.from_text(text)

    def ours() -> torch.Tensor:
        return torch.from_numpy(tokenizer.encode(text))

    repeats = max(1, args.repeats)
    t_ref, ref_ids = best_of(notebook, max(1, repeats // 2))
    t_ours, our_ids = best_of(ours, repeats)
    t_list, _ = best_of(notebook_list_only, max(1, repeats // 2))
    assert torch.equal(ref_ids, our_ids), "the two encodings disagree"
    ratio = t_ref / t_ours
    result = {
        "characters": len(text),
        "notebook_seconds": round(t_ref, 4),
        "ours_seconds": round(t_ours, 4),
        "notebook_chars_per_s": round(len(text) / t_ref),
        "ours_chars_per_s": round(len(text) / t_ours),
        "speedup": round(ratio, 2),
        "notebook_list_only_seconds": round(t_list, 4),
        "speedup_vs_list_only": round(t_list / t_ours, 2),
        "goal": ">= 3x",
        "goal_met": ratio >= 3,
    }
    report("encoding", result, args.json, [
        f"corpus: Tiny Shakespeare x{copies} = {len(text):,} characters",
        f"notebook [stoi[c] for c in text] -> torch.tensor: {t_ref:.3f} s ({len(text) / t_ref / 1e6:.1f} M chars/s)",
        f"bigramlm CharTokenizer.encode (numpy):             {t_ours:.3f} s ({len(text) / t_ours / 1e6:.1f} M chars/s)",
        f"(the list comprehension alone, without torch.tensor: {t_list:.3f} s, {t_list / t_ours:.1f}x ours)",
        f"speedup: {ratio:.1f}x (goal >= 3x: {'met' if ratio >= 3 else 'NOT met'})",
    ])


if __name__ == "__main__":
    main()

"""Reply quality over a corpus: chrF and BLEU (sacrebleu) and ROUGE-L, computed here
bit-parallel. Sentence chrF for many pairs at once is ``support.chrf``."""

from __future__ import annotations

import re
from typing import Sequence

_WORD = re.compile(r"[a-z0-9]+")


def rouge_tokens(text: str) -> list[str]:
    """Lower-cased alphanumeric runs, as ROUGE's default tokenizer sees words."""
    return _WORD.findall(text.lower())


def lcs_length(a: Sequence[str], b: Sequence[str]) -> int:
    """Length of the longest common subsequence, bit-parallel over ``b``.

    Each distinct word of ``b`` gets a bit mask of its positions; one pass over ``a``
    updates a single big integer (Hyyro's bit-vector recurrence), so the cost is
    len(a) big-int operations instead of a len(a) x len(b) table.
    """
    if not a or not b:
        return 0
    masks: dict[str, int] = {}
    for j, word in enumerate(b):
        masks[word] = masks.get(word, 0) | (1 << j)
    full = (1 << len(b)) - 1
    v = full
    for word in a:
        m = masks.get(word)
        if m is None:
            continue
        u = v & m
        v = ((v + u) | (v - u)) & full
    return len(b) - bin(v).count("1")


def rouge_l(hypothesis: str, reference: str) -> float:
    """ROUGE-L F1 of one pair."""
    h, r = rouge_tokens(hypothesis), rouge_tokens(reference)
    lcs = lcs_length(h, r)
    if lcs == 0:
        return 0.0
    precision, recall = lcs / len(h), lcs / len(r)
    return 2 * precision * recall / (precision + recall)


def reply_metrics(hypotheses: list[str], references: list[str]) -> dict[str, float]:
    import sacrebleu

    return {
        "chrf": float(sacrebleu.corpus_chrf(hypotheses, [references]).score),
        "bleu": float(sacrebleu.corpus_bleu(hypotheses, [references]).score),
        "rouge_l": sum(rouge_l(h, r) for h, r in zip(hypotheses, references)) / max(len(references), 1),
    }

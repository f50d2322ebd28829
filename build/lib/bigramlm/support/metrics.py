"""Reply quality over a corpus: chrF and BLEU (sacrebleu) and ROUGE-L, computed here
bit-parallel. Sentence chrF for many pairs at once is ``support.chrf``."""

from __future__ import annotations

import re
from dataclasses import dataclass
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


@dataclass
class ReplyFigures:
    """One way of choosing a reply, scored against the references of a split.

    Micro figures pool every row (the five intents with ~1,000 rows each make 63% of the
    Bitext sample's test rows, so they dominate); macro figures are the mean over intents,
    each intent's own corpus figure, so that the long tail counts as much as the head.
    """

    chrf: float
    bleu: float
    rouge_l: float
    chrf_macro: float | None
    rouge_l_macro: float | None
    #: chrF of each intent's rows.
    per_intent: dict[str, float]


def reply_figures(hypotheses: list[str], references: list[str], intents: Sequence[str | None]) -> ReplyFigures:
    """Micro and macro (over ``intents``) chrF and ROUGE-L, and micro BLEU."""
    import sacrebleu

    overall = reply_metrics(hypotheses, references)
    per_chrf: dict[str, float] = {}
    per_rouge: list[float] = []
    if all(intents):
        for intent in sorted({str(i) for i in intents}):
            rows = [k for k, i in enumerate(intents) if i == intent]
            hyps, refs = [hypotheses[k] for k in rows], [references[k] for k in rows]
            per_chrf[intent] = round(float(sacrebleu.corpus_chrf(hyps, [refs]).score), 2)
            per_rouge.append(sum(rouge_l(h, r) for h, r in zip(hyps, refs)) / len(rows))
    return ReplyFigures(
        chrf=overall["chrf"], bleu=overall["bleu"], rouge_l=overall["rouge_l"],
        chrf_macro=sum(per_chrf.values()) / len(per_chrf) if per_chrf else None,
        rouge_l_macro=sum(per_rouge) / len(per_rouge) if per_rouge else None,
        per_intent=per_chrf,
    )

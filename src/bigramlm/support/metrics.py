"""Reply quality: chrF and BLEU (sacrebleu), ROUGE-L computed here bit-parallel, and the
pairwise chrF behind consensus (minimum Bayes risk) picks."""

from __future__ import annotations

import re
from typing import Sequence

import numpy as np


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


CHRF_ORDER = 6  # sacrebleu's defaults: character n-grams of 1..6, beta 2, whitespace removed
CHRF_BETA = 2.0


def _char_ngram_matrix(texts: Sequence[str], n: int) -> np.ndarray:
    """Counts (K, V) of the character n-grams of each text, over their joint vocabulary."""
    from collections import Counter

    counters = []
    for text in texts:
        s = "".join(text.split())
        counters.append(Counter(s[i : i + n] for i in range(len(s) - n + 1)))
    vocabulary = {g: j for j, g in enumerate(set().union(*counters))}
    matrix = np.zeros((len(texts), max(len(vocabulary), 1)), dtype=np.float64)
    for row, counter in enumerate(counters):
        for gram, count in counter.items():
            matrix[row, vocabulary[gram]] = count
    return matrix


def pairwise_chrf(texts: Sequence[str]) -> np.ndarray:
    """(K, K) sentence chrF of text i as a hypothesis against text j as the reference.

    The same figure as sacrebleu's ``CHRF().sentence_score`` (a test checks it), for all
    pairs at once: minimum-bayes-risk picks compare every candidate with every other,
    which at ~20 ms a pair through sacrebleu would take minutes per evaluation.
    """
    k = len(texts)
    precision, recall, orders = np.zeros((k, k)), np.zeros((k, k)), np.zeros((k, k))
    for n in range(1, CHRF_ORDER + 1):
        counts = _char_ngram_matrix(texts, n)
        totals = counts.sum(axis=1)
        matches = np.minimum(counts[:, None, :], counts[None, :, :]).sum(axis=2)
        both = (totals[:, None] > 0) & (totals[None, :] > 0)
        with np.errstate(divide="ignore", invalid="ignore"):
            precision += np.where(both, matches / totals[:, None], 0.0)
            recall += np.where(both, matches / totals[None, :], 0.0)
        orders += both
    with np.errstate(divide="ignore", invalid="ignore"):
        precision, recall = np.where(orders > 0, precision / orders, 0.0), np.where(orders > 0, recall / orders, 0.0)
        factor = CHRF_BETA**2
        score = (1 + factor) * precision * recall / (factor * precision + recall)
    return 100 * np.nan_to_num(score)


def consensus_order(texts: Sequence[str]) -> list[int]:
    """Indices of ``texts``, the one that agrees most with the others first.

    Minimum Bayes risk with chrF as the utility: each text is scored by its mean chrF
    against the others as references, which picks the centre of the candidates.
    """
    if len(texts) < 2:
        return list(range(len(texts)))
    scores = pairwise_chrf(texts)
    np.fill_diagonal(scores, 0.0)
    mean = scores.sum(axis=1) / (len(texts) - 1)
    return [int(i) for i in np.argsort(-mean, kind="stable")]

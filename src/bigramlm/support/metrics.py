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


def _ngram_keys(codes: np.ndarray, text_of: np.ndarray, ends: np.ndarray, n: int, bits: int) -> tuple[np.ndarray, np.ndarray]:
    """Every character n-gram of the concatenated texts as one integer, and its text.

    ``codes`` holds all texts' characters as small integers (``bits`` wide), character
    i belonging to text ``text_of[i]``, which ends at ``ends[text]``; an n-gram is kept
    only if it lies inside one text.
    """
    windows = len(codes) - n + 1
    if windows <= 0:
        return np.zeros(0, dtype=np.uint64), np.zeros(0, dtype=np.int64)
    keys = np.zeros(windows, dtype=np.uint64)
    for j in range(n):
        keys = (keys << np.uint64(bits)) | codes[j : j + windows]
    text = text_of[:windows]
    inside = np.arange(windows) + n <= ends[text]
    return keys[inside], text[inside]


def _ngram_keys_by_order(texts: Sequence[str]) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per order n = 1..6: the (n-gram key, text index) of every n-gram of every text, in text order."""
    points = [np.frombuffer("".join(t.split()).encode("utf-32-le"), dtype=np.uint32) for t in texts]
    lengths = np.array([len(p) for p in points], dtype=np.int64)
    flat = np.concatenate(points) if lengths.sum() else np.zeros(0, dtype=np.uint32)
    # Characters as dense small integers, through a lookup table (one linear pass, no sort).
    present = np.flatnonzero(np.bincount(flat)) if len(flat) else np.zeros(1, dtype=np.int64)
    table = np.zeros(int(present.max()) + 1, dtype=np.uint64)
    table[present] = np.arange(len(present), dtype=np.uint64)
    bits = max(1, int(len(present)).bit_length())
    if bits * CHRF_ORDER > 64:  # more than 1,024 distinct characters: n-grams would not pack
        raise ValueError("pairwise_chrf packs n-grams of at most 1,024 distinct characters")
    codes = table[flat]
    text_of = np.repeat(np.arange(len(texts)), lengths)
    ends = np.cumsum(lengths)
    return [_ngram_keys(codes, text_of, ends, n, bits) for n in range(1, CHRF_ORDER + 1)]


def _local_counts(keys: np.ndarray, text: np.ndarray, first: int, k: int) -> np.ndarray:
    """Dense (k, V) counts of the n-grams of texts first..first+k-1 over their own vocabulary."""
    lo, hi = np.searchsorted(text, [first, first + k])
    if hi == lo:
        return np.zeros((k, 1))
    _, column = np.unique(keys[lo:hi], return_inverse=True)
    width = int(column.max()) + 1
    flat = (text[lo:hi] - first) * width + column
    return np.bincount(flat, minlength=k * width).reshape(k, width).astype(np.float64)


def _min_sum(counts: np.ndarray) -> np.ndarray:
    """(K, K) sum over n-grams of min(count_i, count_j)."""
    return np.minimum(counts[:, None, :], counts[None, :, :]).sum(axis=2)


def pairwise_chrf(texts: Sequence[str]) -> np.ndarray:
    """(K, K) sentence chrF of text i as a hypothesis against text j as the reference.

    The same figure as sacrebleu's ``CHRF().sentence_score`` (a test checks it), for all
    pairs at once: minimum-bayes-risk picks compare every candidate with every other,
    which at ~20 ms a pair through sacrebleu would take minutes per evaluation.
    """
    return pairwise_chrf_groups([list(texts)])[0]


def pairwise_chrf_groups(groups: Sequence[Sequence[str]]) -> list[np.ndarray]:
    """``pairwise_chrf`` of many small groups (one per evaluated message), counted in one pass."""
    texts = [t for group in groups for t in group]
    if not texts:
        return [np.zeros((0, 0)) for _ in groups]
    by_order = _ngram_keys_by_order(texts)
    out, first = [], 0
    for group in groups:
        out.append(_group_chrf([_local_counts(keys, text, first, len(group)) for keys, text in by_order]))
        first += len(group)
    return out


def _group_chrf(counts: list[np.ndarray]) -> np.ndarray:
    k = counts[0].shape[0]
    precision, recall, orders = np.zeros((k, k)), np.zeros((k, k)), np.zeros((k, k))
    for dense in counts:
        totals = dense.sum(axis=1)
        matches = _min_sum(dense)
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

"""Negative feedback in ranking: candidates like a suggestion agents dismissed move down.

``dismissed_texts(store)`` reads the latest dismissed suggestions; ``feedback_penalty``
gives each candidate a penalty in [0, 1] from its highest similarity to any of them;
``penalized_scores`` folds the penalties into the ranker's own scores. The assistant
calls the three in its ranking (see ``penalized_scores``).

Similarity is sentence chrF (character 1..6-grams, whitespace removed, beta 2: the
figure of ``metrics.pairwise_chrf`` and sacrebleu), taken in both directions and the
larger kept, so a candidate that is a shortened or extended copy of a dismissed text
counts as close. ``pairwise_chrf`` compares every text with every other through a dense
(K, K, vocabulary) array, which for 10 candidates and 200 dismissed texts needs
gigabytes; here only candidates meet dismissed texts, through sparse count matrices
(the same figures: a test compares them), whose dismissed side is kept until the
dismissed texts change.

Measured on 1,500 random pairs of Bitext sample replies (``bitext-sample.csv``): chrF
of replies of different intents has median 0.34 and 99th percentile 0.49; of the same
intent, median 0.45 and 95th percentile 0.70; a reply against itself with 10 % of its
words replaced, median 0.89 (20 %: 0.78, 40 %: 0.61). Hence the penalty is 0 up to
``SIMILARITY_FLOOR`` = 0.5 (a reply of another intent is not touched), rises linearly,
and is 1 from ``SIMILARITY_FULL`` = 0.9 (a light rewording of the dismissed text).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Sequence

import numpy as np
from scipy.sparse import csr_matrix

from bigramlm.support.metrics import CHRF_BETA, CHRF_ORDER

#: How many of the latest dismissals count. Measured for 10 Bitext replies against 200
#: dismissed ones on 2 shared cores: 29 ms a call, 0.11 s when the dismissed texts changed
#: since the last call (their n-grams are counted again); 400: 29 ms and 0.18 s.
DISMISSED_LIMIT = 200
SIMILARITY_FLOOR = 0.5
SIMILARITY_FULL = 0.9
#: Elements of the largest dense (K, M, n-grams) comparison (16 MB of float64).
DENSE_BUDGET = 2_000_000


def dismissed_texts(store: Any, limit: int = DISMISSED_LIMIT) -> list[str]:
    """The texts of the latest ``limit`` dismissed suggestions of ``store`` (a ``CaseStore``
    or None), newest first; [] without a store."""
    return [] if store is None else store.dismissed_texts(limit)


def feedback_penalty(candidates: Sequence[str], dismissed: Sequence[str]) -> list[float]:
    """A penalty in [0, 1] per candidate: 0 when it is unlike every dismissed text, 1 when
    it is (nearly) one of them; linear in chrF between the two thresholds."""
    if not candidates or not dismissed:
        return [0.0] * len(candidates)
    similarity = max_similarity(candidates, dismissed)
    penalty = (similarity - SIMILARITY_FLOOR) / (SIMILARITY_FULL - SIMILARITY_FLOOR)
    return [float(p) for p in np.clip(penalty, 0.0, 1.0)]


def penalized_scores(scores: Sequence[float], penalties: Sequence[float]) -> list[float]:
    """Scores to rank by: each score lowered by its penalty times the spread of the scores.

    Scale-free, so it suits any score where higher is better (mean log-probability per
    character, a reranker's output): a candidate with penalty 1 ranks below every
    candidate without one, a penalty of 0.5 costs half the spread, and with no penalty
    the order is the scores' own.
    """
    if len(scores) != len(penalties):
        raise ValueError(f"{len(scores)} scores but {len(penalties)} penalties")
    if not scores:
        return []
    values = np.asarray(scores, dtype=np.float64)
    finite = values[np.isfinite(values)]
    # + 1e-6: a spread above 0, so that penalty 1 drops below the lowest score, even among equals
    spread = float(finite.max() - finite.min()) + 1e-6 if len(finite) else 1.0
    return [float(s - p * spread) for s, p in zip(values, penalties)]


def max_similarity(candidates: Sequence[str], dismissed: Sequence[str]) -> np.ndarray:
    """(K,) the highest chrF (0..1, either direction) of each candidate against the dismissed texts."""
    side = _dismissed_grams(tuple(dismissed))
    k, m = len(candidates), len(side.texts)
    precision, recall, orders = (np.zeros((k, m)) for _ in range(3))
    for n, (c, c_total) in enumerate(_candidate_counts(candidates, side)):
        d_total = side.totals[n]
        both = (c_total[:, None] > 0) & (d_total[None, :] > 0)
        matches = _clipped_matches(c, side.by_gram[n])
        precision += np.where(both, matches / np.maximum(c_total, 1)[:, None], 0.0)
        recall += np.where(both, matches / np.maximum(d_total, 1)[None, :], 0.0)
        orders += both
    with np.errstate(divide="ignore", invalid="ignore"):
        p = np.where(orders > 0, precision / orders, 0.0)
        r = np.where(orders > 0, recall / orders, 0.0)
        b2 = CHRF_BETA**2
        as_hypothesis = np.nan_to_num((1 + b2) * p * r / (b2 * p + r))
        as_reference = np.nan_to_num((1 + b2) * p * r / (b2 * r + p))
    return np.maximum(as_hypothesis, as_reference).max(axis=1)


def _clipped_matches(c: csr_matrix, d_by_gram: csr_matrix) -> np.ndarray:
    """(K, M) sum over n-grams of min(count in candidate i, count in dismissed text j);
    ``d_by_gram`` holds the dismissed counts as (V, M).

    Over few n-grams (1-grams: an alphabet of ~80 characters), directly on dense counts.
    Over many, as min(a, b) = [a >= 1][b >= 1] + max(min(a, b) - 1, 0): the first term is
    one sparse product of 0/1 matrices; the second lives on the n-grams that a candidate
    repeats, which beyond 2-grams are few.
    """
    used = np.unique(c.indices)  # n-grams no candidate has match nothing
    k, m = c.shape[0], d_by_gram.shape[1]
    c, d = c[:, used].tocsr(), d_by_gram[used].tocsr()
    if k * m * len(used) <= DENSE_BUDGET:
        return np.minimum(c.toarray()[:, :, None], d.toarray()[None, :, :]).sum(axis=1)
    total = (_ones(c) @ _ones(d)).toarray()
    for i in range(k):
        row = slice(c.indptr[i], c.indptr[i + 1])
        repeated = c.data[row] > 1
        if repeated.any():
            again = d[c.indices[row][repeated]].toarray() - 1
            total[i] += np.minimum(again, c.data[row][repeated][:, None] - 1).clip(min=0).sum(axis=0)
    return total


def _ones(counts: csr_matrix) -> csr_matrix:
    return csr_matrix((np.ones(counts.nnz), counts.indices, counts.indptr), shape=counts.shape)


@dataclass(frozen=True)
class _DismissedGrams:
    """The dismissed texts' character n-grams: per order, the sorted n-gram ids (the
    vocabulary), the counts as (V_n, M), and each text's number of n-grams."""

    texts: tuple[str, ...]
    alphabet: np.ndarray
    vocab: list[np.ndarray]
    by_gram: list[csr_matrix]
    totals: list[np.ndarray]


@lru_cache(maxsize=4)
def _dismissed_grams(texts: tuple[str, ...]) -> _DismissedGrams:
    """Cached: the desk asks with the same dismissed texts until an agent dismisses another."""
    chars, owner, offset, lengths = _characters(texts)
    alphabet = np.unique(chars)
    codes = np.searchsorted(alphabet, chars).astype(np.uint64)
    vocab, by_gram, totals = [], [], []
    for n in range(1, CHRF_ORDER + 1):
        starts = _window_starts(offset, lengths, owner, n)
        ids = _pack(codes, starts, n, len(alphabet))
        grams, column = np.unique(ids, return_inverse=True)
        vocab.append(grams)
        by_gram.append(_count_matrix(column.ravel(), owner[starts], len(grams), len(texts)).T.tocsr())
        totals.append(np.bincount(owner[starts], minlength=len(texts)).astype(np.float64))
    return _DismissedGrams(texts, alphabet, vocab, by_gram, totals)


def _candidate_counts(candidates: Sequence[str], side: _DismissedGrams) -> list[tuple[csr_matrix, np.ndarray]]:
    """Per order: the candidates' counts of the dismissed texts' n-grams (K, V_n), and how
    many n-grams each candidate has in all (those no dismissed text has count there only)."""
    chars, owner, offset, lengths = _characters(candidates)
    position = np.minimum(np.searchsorted(side.alphabet, chars), max(len(side.alphabet) - 1, 0))
    unknown = np.cumsum(np.concatenate([[0], side.alphabet[position] != chars if len(side.alphabet) else np.ones(len(chars), bool)]))
    codes = position.astype(np.uint64)
    result = []
    for n, grams in enumerate(side.vocab, start=1):
        starts = _window_starts(offset, lengths, owner, n)
        ids = _pack(codes, starts, n, len(side.alphabet))
        column = np.minimum(np.searchsorted(grams, ids), max(len(grams) - 1, 0))
        found = (unknown[starts + n] == unknown[starts]) & (grams[column] == ids) if len(grams) else np.zeros(len(ids), bool)
        counts = _count_matrix(column[found], owner[starts][found], len(grams), len(candidates))
        result.append((counts, np.bincount(owner[starts], minlength=len(candidates)).astype(np.float64)))
    return result


def _characters(texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The texts' characters, whitespace removed (as chrF), as one array of code points;
    which text each belongs to, its offset in that text, and the texts' lengths."""
    stripped = ["".join(t.split()) for t in texts]
    lengths = np.array([len(s) for s in stripped], dtype=np.int64)
    chars = np.frombuffer("".join(stripped).encode("utf-32-le"), dtype=np.uint32)
    owner = np.repeat(np.arange(len(texts)), lengths)
    offset = np.arange(len(chars)) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    return chars, owner, offset, lengths


def _window_starts(offset: np.ndarray, lengths: np.ndarray, owner: np.ndarray, n: int) -> np.ndarray:
    """Where an n-gram starts: every character with n - 1 more of its own text after it."""
    return np.flatnonzero(offset <= lengths[owner] - n)


def _pack(codes: np.ndarray, starts: np.ndarray, n: int, base: int) -> np.ndarray:
    """One uint64 per n-gram: its characters' alphabet positions as digits in ``base``.
    Exact while base**n < 2**64 (alphabets up to 1,625 characters for 6-grams); beyond, a
    polynomial hash modulo 2**64, whose collisions are vanishingly rare."""
    ids = np.zeros(len(starts), dtype=np.uint64)
    for j in range(n):
        ids = ids * np.uint64(max(base, 1)) + codes[starts + j]
    return ids


def _count_matrix(columns: np.ndarray, rows: np.ndarray, n_columns: int, n_rows: int) -> csr_matrix:
    """(n_rows, n_columns) counts of the (row, column) pairs."""
    return csr_matrix((np.ones(len(rows)), (rows, columns)), shape=(n_rows, max(n_columns, 1)))

"""Sentence chrF for many texts at once: the one engine behind every consensus pick and
the dismissal penalty (``support.ranking``).

chrF is sacrebleu's: character n-grams of orders 1..6 with whitespace removed, the
precision and recall of each order averaged over the orders both texts have, combined
as an F-score with beta 2 (a test compares every figure with ``CHRF().sentence_score``).
Through sacrebleu one pair costs ~20 ms, so a consensus over 790 messages' candidates
would take minutes; here every text's n-grams are counted once and the matches of all
pairs come from array operations:

- ``pairwise_chrf_groups``: every pair inside each of many small groups (the candidates
  and evidence of one message), dense counts per group;
- ``ChrfReferences``: many hypotheses against one fixed set of references (the dismissed
  suggestions), sparse counts, the reference side counted once and cached by the caller.

An n-gram is one 64-bit id, hashed from its characters (splitmix64, then a multiply and
shift per further character), so the ids of
one text do not depend on which other texts are counted with it: that is what lets a
reference set be counted once. Two different n-grams share an id with probability
about 2**-64 per pair.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy.sparse import csr_matrix

CHRF_ORDER = 6  # sacrebleu's defaults: character n-grams of 1..6, beta 2, whitespace removed
CHRF_BETA = 2.0
#: Elements of the largest dense (K, V, M) comparison of hypotheses with references (16 MB of float64).
DENSE_BUDGET = 2_000_000

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)


def _splitmix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: a bijection of 64-bit integers that scatters their bits."""
    z = x + _GOLDEN
    z = (z ^ (z >> np.uint64(30))) * _MIX1
    z = (z ^ (z >> np.uint64(27))) * _MIX2
    return z ^ (z >> np.uint64(31))


@dataclass(frozen=True)
class NgramIds:
    """Every character n-gram of some texts: per order, each n-gram's id and its text, in text order."""

    ids: list[np.ndarray]
    owner: list[np.ndarray]
    texts: int


def ngram_ids(texts: Sequence[str]) -> NgramIds:
    """The n-grams of ``texts``, whitespace removed as chrF does."""
    stripped = ["".join(t.split()) for t in texts]
    lengths = np.array([len(s) for s in stripped], dtype=np.int64)
    chars = np.frombuffer("".join(stripped).encode("utf-32-le", "surrogatepass"), dtype=np.uint32).astype(np.uint64)
    owner = np.repeat(np.arange(len(texts)), lengths)
    offset = np.arange(len(chars)) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    with np.errstate(over="ignore"):
        letters = _splitmix(chars)
        ids, all_ids, all_owner = letters, [], []
        for n in range(1, CHRF_ORDER + 1):
            if n > 1:  # extend every (n-1)-gram by the character after it, then scatter the bits again
                ids = ids[:-1] * _GOLDEN
                ids ^= letters[n - 1 :]
                ids *= _MIX1
                ids ^= ids >> np.uint64(31)
            starts = np.flatnonzero(offset[: len(ids)] <= lengths[owner[: len(ids)]] - n)
            all_ids.append(ids[starts])
            all_owner.append(owner[starts])
    return NgramIds(all_ids, all_owner, len(texts))


def _fscore(precision: np.ndarray, recall: np.ndarray, orders: np.ndarray) -> np.ndarray:
    """chrF (0-100) from per-order precision and recall summed over ``orders`` orders."""
    with np.errstate(divide="ignore", invalid="ignore"):
        p = np.where(orders > 0, precision / orders, 0.0)
        r = np.where(orders > 0, recall / orders, 0.0)
        factor = CHRF_BETA**2
        return 100 * np.nan_to_num((1 + factor) * p * r / (factor * p + r))


def _chrf_both_ways(matches: list[np.ndarray], hyp_totals: list[np.ndarray],
                    ref_totals: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(K, M) chrF of hypothesis i against reference j, and of reference j against hypothesis i."""
    k, m = matches[0].shape
    precision, recall, orders = np.zeros((k, m)), np.zeros((k, m)), np.zeros((k, m))
    for match, h_total, r_total in zip(matches, hyp_totals, ref_totals):
        both = (h_total[:, None] > 0) & (r_total[None, :] > 0)
        precision += np.where(both, match / np.maximum(h_total, 1)[:, None], 0.0)
        recall += np.where(both, match / np.maximum(r_total, 1)[None, :], 0.0)
        orders += both
    return _fscore(precision, recall, orders), _fscore(recall, precision, orders)


# --- every pair inside small groups ----------------------------------------------------------


def pairwise_chrf(texts: Sequence[str]) -> np.ndarray:
    """(K, K) sentence chrF of text i as the hypothesis against text j as the reference."""
    return pairwise_chrf_groups([list(texts)])[0]


def pairwise_chrf_groups(groups: Sequence[Sequence[str]]) -> list[np.ndarray]:
    """``pairwise_chrf`` of many small groups (one per message), counted in one pass."""
    texts = [t for group in groups for t in group]
    grams = ngram_ids(texts)
    out, first = [], 0
    for group in groups:
        k = len(group)
        counts = [_dense_counts(ids, owner, first, k) for ids, owner in zip(grams.ids, grams.owner)]
        matches = [np.minimum(c[:, None, :], c[None, :, :]).sum(axis=2) for c in counts]
        totals = [c.sum(axis=1) for c in counts]
        out.append(_chrf_both_ways(matches, totals, totals)[0] if k else np.zeros((0, 0)))
        first += k
    return out


def _dense_counts(ids: np.ndarray, owner: np.ndarray, first: int, k: int) -> np.ndarray:
    """(k, V) counts of the n-grams of texts first..first+k-1 over their own vocabulary."""
    lo, hi = np.searchsorted(owner, [first, first + k])
    if hi == lo:
        return np.zeros((k, 1))
    _, column = np.unique(ids[lo:hi], return_inverse=True)
    width = int(column.max()) + 1
    return np.bincount((owner[lo:hi] - first) * width + column, minlength=k * width).reshape(k, width).astype(np.float64)


# --- many hypotheses against one set of references ----------------------------------------------


class ChrfReferences:
    """A fixed set of references, counted once, that hypotheses are scored against.

    Per order it keeps the references' n-gram vocabulary (sorted ids), their counts as a
    sparse (V, M) matrix and each reference's total; a hypothesis's n-grams are looked up
    in that vocabulary (one it lacks matches nothing, but counts towards the totals).
    """

    def __init__(self, texts: Sequence[str]):
        self.texts = tuple(texts)
        grams = ngram_ids(self.texts)
        self.vocab, self.by_gram, self.totals = [], [], []
        for ids, owner in zip(grams.ids, grams.owner):
            vocab, column = np.unique(ids, return_inverse=True)
            self.vocab.append(vocab)
            self.by_gram.append(_count_matrix(owner, column.ravel(), len(self.texts), len(vocab)).T.tocsr())
            self.totals.append(np.bincount(owner, minlength=len(self.texts)).astype(np.float64))

    def __len__(self) -> int:
        return len(self.texts)

    def score(self, hypotheses: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """(K, M) chrF of each hypothesis against each reference, and with the roles swapped."""
        grams = ngram_ids(hypotheses)
        matches, totals = [], []
        for ids, owner, vocab, by_gram in zip(grams.ids, grams.owner, self.vocab, self.by_gram):
            column = np.minimum(np.searchsorted(vocab, ids), max(len(vocab) - 1, 0))
            found = vocab[column] == ids if len(vocab) else np.zeros(len(ids), dtype=bool)
            counts = _count_matrix(owner[found], column[found], len(hypotheses), len(vocab))
            matches.append(_clipped_matches(counts, by_gram))
            totals.append(np.bincount(owner, minlength=len(hypotheses)).astype(np.float64))
        return _chrf_both_ways(matches, totals, self.totals)


def _count_matrix(rows: np.ndarray, columns: np.ndarray, n_rows: int, n_columns: int) -> csr_matrix:
    """(n_rows, n_columns) counts of the (row, column) pairs."""
    return csr_matrix((np.ones(len(rows)), (rows, columns)), shape=(n_rows, max(n_columns, 1)))


def _clipped_matches(c: csr_matrix, d_by_gram: csr_matrix) -> np.ndarray:
    """(K, M) sum over n-grams of min(count in hypothesis i, count in reference j);
    ``d_by_gram`` holds the reference counts as (V, M).

    Over few n-grams, directly on dense counts. Over many, as min(a, b) = [a >= 1][b >= 1]
    + max(min(a, b) - 1, 0): the first term is one sparse product of 0/1 matrices; the
    second lives on the n-grams that a hypothesis repeats, which beyond 2-grams are few.
    """
    used = np.unique(c.indices)  # n-grams no hypothesis has match nothing
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

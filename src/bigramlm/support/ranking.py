"""Choosing among texts by agreement: the one consensus pick, the ranking of candidates,
the penalty for looking like a dismissed suggestion, and how distinct suggestions are.

Consensus is minimum Bayes risk with chrF as the utility (``support.chrf``): a text's
score is its mean chrF against the other texts of its group, so the text that agrees
most with the rest, the centre of the group, comes first. The same pick chooses a
row's central reply in the recipe (``recipe.central_replies``), the retrieval-consensus
baseline of ``eval --task support`` and the order of the suggestions.

Dismissals: a candidate like a suggestion agents dismissed moves down. Similarity is
sentence chrF taken in both directions and the larger kept, so a shortened or extended
copy of a dismissed text counts as close. Measured on 1,500 random pairs of Bitext sample
replies: chrF of replies of different intents has median 0.34 and 99th percentile 0.49;
of the same intent, median 0.45 and 95th percentile 0.70; a reply against itself with
10 % of its words replaced, median 0.89 (20 %: 0.78, 40 %: 0.61). Hence the penalty is 0
up to ``SIMILARITY_FLOOR`` = 0.5 (a reply of another intent is not touched), rises
linearly, and is 1 from ``SIMILARITY_FULL`` = 0.9 (a light rewording of the dismissed text).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Sequence

import numpy as np

from bigramlm.data.formats import strip_leading_markers
from bigramlm.support.chrf import ChrfReferences, pairwise_chrf, pairwise_chrf_groups

#: Resolved cases whose replies vote in the ranking.
EVIDENCE_CASES = 5
#: Two candidates whose chrF against each other is at least this are one suggestion.
SAME_SUGGESTION_CHRF = 95.0
#: How many of the latest dismissals count. Measured for 10 Bitext replies against 200
#: dismissed ones on 2 shared cores: 29 ms a call, 0.11 s when the dismissed texts changed
#: since the last call (their n-grams are counted again); 400: 29 ms and 0.18 s.
DISMISSED_LIMIT = 200
SIMILARITY_FLOOR = 0.5
SIMILARITY_FULL = 0.9


def consensus_scores(scores: np.ndarray, n: int | None = None) -> np.ndarray:
    """Of a group's (K, K) pairwise chrF, the mean of each of the first ``n`` texts (all by
    default) against every other text of the group; 0 for a group of one."""
    k = scores.shape[0]
    n = k if n is None else n
    if k < 2:
        return np.zeros(n)
    off_diagonal = scores[:n].copy()
    off_diagonal[np.arange(n), np.arange(n)] = 0.0
    return off_diagonal.sum(axis=1) / (k - 1)


def most_central(groups: Sequence[Sequence[str]]) -> list[int]:
    """Per group, the index of the text that agrees most with the others (the first on ties)."""
    return [int(np.argmax(consensus_scores(scores))) if len(scores) else 0
            for scores in pairwise_chrf_groups(groups)]


class Agreement:
    """Sentence chrF between every two of some texts (one message's drafts and evidence
    replies), computed once: the draft ranking and the choice read their pairs from it.
    A pair's chrF depends on its two texts only (``chrf.pairwise_chrf``), so a group's
    matrix read from here is the one ``pairwise_chrf`` gives that group."""

    def __init__(self, texts: Sequence[str]):
        self.rows = {text: row for row, text in enumerate(dict.fromkeys(texts))}
        self.scores = pairwise_chrf(list(self.rows))

    def among(self, texts: Sequence[str]) -> np.ndarray:
        """(K, K) chrF of ``texts`` (each one of this agreement's, repeats allowed), text i against text j."""
        rows = [self.rows[t] for t in texts]
        return self.scores[np.ix_(rows, rows)]


@dataclass
class RankedCandidate:
    index: int  # which generated candidate it is
    text: str
    score: float  # mean chrF (0-100) against the other candidates and the evidence


def distinct_candidates(candidates: Sequence[str]) -> list[tuple[int, str]]:
    """``(index, text)`` of each candidate with its leading markers stripped, the first of equal texts, none empty."""
    kept: list[tuple[int, str]] = []
    for index, candidate in enumerate(candidates):
        reply = strip_leading_markers(candidate)
        if reply and all(reply != text for _, text in kept):
            kept.append((index, reply))
    return kept


def rank_candidates(candidates: Sequence[str], evidence: Sequence[str] = (),
                    agreement: Agreement | None = None) -> list[RankedCandidate]:
    """Clean ``candidates`` (``distinct_candidates``) and rank them by consensus with each
    other and ``evidence``; ``agreement`` holds their chrF when the caller has it (it must
    hold every text). Near-duplicates stay: what is shown drops them (``choice``)."""
    kept = distinct_candidates(candidates)
    if not kept:
        return []
    texts = [text for _, text in kept] + [e for e in evidence if e]
    scores = (agreement or Agreement(texts)).among(texts)
    mean = consensus_scores(scores, len(kept))
    order = sorted(range(len(kept)), key=lambda i: -mean[i])
    return [RankedCandidate(kept[i][0], kept[i][1], float(mean[i])) for i in order]


def distinctness(suggestions: Sequence[str]) -> float | None:
    """1 - the mean chrF (both directions, 0-1) between the suggestions of one message:
    0 when they are the same text, near 1 when they share nothing. None for fewer than 2."""
    if len(suggestions) < 2:
        return None
    scores = pairwise_chrf(list(suggestions)) / 100.0
    upper = np.triu_indices(len(suggestions), k=1)
    return float(1.0 - np.mean((scores[upper] + scores.T[upper]) / 2))


# --- dismissals --------------------------------------------------------------------------------


@lru_cache(maxsize=4)
def _references(texts: tuple[str, ...]) -> ChrfReferences:
    """Cached: the desk asks with the same dismissed texts until an agent dismisses another."""
    return ChrfReferences(texts)


def max_similarity(candidates: Sequence[str], dismissed: Sequence[str]) -> np.ndarray:
    """(K,) the highest chrF (0..1, either direction) of each candidate against the dismissed texts."""
    as_hypothesis, as_reference = _references(tuple(dismissed)).score(candidates)
    return np.maximum(as_hypothesis, as_reference).max(axis=1) / 100.0


#: Dismissal reasons that blame the understanding, not the reply: a reply dismissed as the
#: wrong intent's may be right for its own, so it does not sink (``dismissal_penalty``).
NOT_THE_REPLY = ("wrong intent",)


def dismissal_penalty(candidates: Sequence[str], dismissed: Sequence[str]) -> list[float]:
    """A penalty in [0, 1] per candidate: 0 when it is unlike every dismissed text, 1 when
    it is (nearly) one of them; linear in chrF between the two thresholds."""
    if not candidates or not dismissed:
        return [0.0] * len(candidates)
    penalty = (max_similarity(candidates, dismissed) - SIMILARITY_FLOOR) / (SIMILARITY_FULL - SIMILARITY_FLOOR)
    return [float(p) for p in np.clip(penalty, 0.0, 1.0)]


def penalized_scores(scores: Sequence[float], penalties: Sequence[float]) -> list[float]:
    """Scores to rank by: each score lowered by its penalty times the spread of the scores.

    Scale-free, so it suits any score where higher is better: a candidate with penalty 1
    ranks below every candidate without one, a penalty of 0.5 costs half the spread, and
    with no penalty the order is the scores' own.
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

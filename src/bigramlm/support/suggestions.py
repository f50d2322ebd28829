"""Choosing the suggestions an agent sees among the model's candidates.

The model writes ``n`` candidates for a message: its greedy reply (its single best
guess) and ``n - 1`` samples. They are ranked by consensus (minimum Bayes risk with chrF
as the utility): a candidate's score is its mean chrF against the other candidates and
against the replies of the most similar resolved cases of the understood intent, the
evidence of what agents actually sent. The suggestions are always the model's own
text; the resolved cases only vote. Near-identical candidates are dropped, so the ``n``
suggestions shown differ from each other (``distinctness`` measures by how much).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from bigramlm.data.formats import strip_leading_markers
from bigramlm.support.metrics import pairwise_chrf

#: Resolved cases whose replies vote in the ranking.
EVIDENCE_CASES = 5
#: Two candidates whose chrF against each other is at least this are one suggestion.
SAME_SUGGESTION_CHRF = 95.0


@dataclass
class RankedCandidate:
    index: int  # which generated candidate it is
    text: str
    score: float  # mean chrF (0-100) against the other candidates and the evidence


def rank_candidates(candidates: Sequence[str], evidence: Sequence[str] = ()) -> list[RankedCandidate]:
    """Clean, deduplicate and rank ``candidates`` by consensus with each other and ``evidence``."""
    kept: list[tuple[int, str]] = []
    for index, candidate in enumerate(candidates):
        reply = strip_leading_markers(candidate)
        if reply and all(reply != text for _, text in kept):
            kept.append((index, reply))
    if not kept:
        return []
    texts = [text for _, text in kept] + [e for e in evidence if e]
    scores = pairwise_chrf(texts)
    np.fill_diagonal(scores, np.nan)
    others = len(texts) - 1
    mean = np.nansum(scores[: len(kept)], axis=1) / others if others else np.zeros(len(kept))
    order = sorted(range(len(kept)), key=lambda i: -mean[i])
    # Drop a candidate that is (nearly) a better-ranked one: the agent should see choices.
    chosen: list[int] = []
    for i in order:
        if all(min(scores[i, j], scores[j, i]) < SAME_SUGGESTION_CHRF for j in chosen):
            chosen.append(i)
    return [RankedCandidate(kept[i][0], kept[i][1], float(mean[i])) for i in chosen]


def distinctness(suggestions: Sequence[str]) -> float | None:
    """1 - the mean chrF (both directions, 0-1) between the suggestions of one message:
    0 when they are the same text, near 1 when they share nothing. None for fewer than 2."""
    if len(suggestions) < 2:
        return None
    scores = pairwise_chrf(list(suggestions)) / 100.0
    pairs = [(scores[i, j] + scores[j, i]) / 2 for i in range(len(suggestions)) for j in range(i + 1, len(suggestions))]
    return float(1.0 - np.mean(pairs))

"""Pairwise chrF (for consensus picks) is sacrebleu's sentence chrF, for all pairs at once."""

from __future__ import annotations

import numpy as np
from sacrebleu.metrics import CHRF

from bigramlm.support.metrics import consensus_order, pairwise_chrf

TEXTS = [
    "I understand you want to cancel order {{Order Number}}. Visit {{Website URL}} and choose Cancel.",
    "I see that you would like to cancel your order {{Order Number}}; go to {{Website URL}}.",
    "You can track order {{Order Number}} at {{Website URL}} under My Orders.",
    "Of course, I am connecting you with a human agent now.",
    "",
    "a",
    "naïve café — ünïcode ✓",
]


def test_pairwise_chrf_is_sacrebleus_sentence_chrf():
    got = pairwise_chrf(TEXTS)
    chrf = CHRF()
    want = np.array([[chrf.sentence_score(h, [r]).score for r in TEXTS] for h in TEXTS])
    assert np.allclose(got, want, atol=1e-9)


def test_consensus_puts_the_central_candidate_first():
    candidates = TEXTS[:4]
    order = consensus_order(candidates)
    assert sorted(order) == [0, 1, 2, 3]
    assert order[0] in (0, 1) and order[-1] == 3  # the two cancel replies agree; the agent reply is the outlier
    assert consensus_order(["only one"]) == [0]

"""Pairwise chrF (for consensus picks) is sacrebleu's sentence chrF, for all pairs at once."""

from __future__ import annotations

import numpy as np
from sacrebleu.metrics import CHRF

from bigramlm.support.chrf import ChrfReferences, pairwise_chrf, pairwise_chrf_groups
from bigramlm.support.ranking import most_central

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


def test_groups_and_references_give_the_same_figures():
    whole = pairwise_chrf(TEXTS)
    parts = pairwise_chrf_groups([TEXTS[:3], TEXTS[3:], []])
    assert np.array_equal(parts[0], whole[:3, :3]) and np.array_equal(parts[1], whole[3:, 3:]) and parts[2].shape == (0, 0)
    as_hypothesis, as_reference = ChrfReferences(TEXTS[4:]).score(TEXTS[:4])
    assert np.allclose(as_hypothesis, whole[:4, 4:], atol=1e-9) and np.allclose(as_reference, whole[4:, :4].T, atol=1e-9)


def test_consensus_picks_the_central_text():
    # the two cancel replies agree with each other; the track and agent replies are outliers
    assert most_central([TEXTS[:4], TEXTS[2:4][::-1] + TEXTS[:1], ["only one"], []]) == [0, 2, 0, 0]

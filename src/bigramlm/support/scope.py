"""Out of scope: whether any of the run's intents fits a message at all.

A classifier always names its likeliest intent, however foreign the message ("your app
keeps crashing" came out as registration_problems at 67%), and its calibrated probability
does not say "none fits": on the hand-written everyday messages against the packaged
out-of-scope ones (``resources/out_of_scope.jsonl``) the top probability separates them
with an AUROC of only 0.879. What does is how close the message lies to messages the run
knows, in the sentence encoder's space:

- ``inside``: the mean cosine of the message's ``NEIGHBOURS`` nearest known messages (the
  train rows, the hand-written phrasings of their intents, then every learned case: a case
  the team names teaches its intent's scope too). Alone: AUROC 0.975.
- minus ``CONTRAST`` times the same over the packaged out-of-scope messages: a message
  close to an app crash, a promo code or "thanks!" is pulled out. AUROC 0.978, with the
  out-of-scope messages scored against the other half of the set (2-fold); and at the
  threshold, 7.4% of them keep a confident intent, against 11.8% with the known ones alone.

Measured on the Bitext sample's recipe understanding (``benchmarks/understanding.py``).
A message whose score is below ``Scope.below`` is out of scope. The threshold is the
``LOSE_AT_MOST`` quantile of the scores of hand-written in-scope messages of the run's
intents (``resources/paraphrases.jsonl``, and the phrasings 2-fold): the everyday set stays
apart, for measuring.
A run whose intents fewer than ``MIN_CALIBRATION`` of them are of (a dataset of other
intents) cannot tell, and says nothing is out of scope: its validation rows are no
substitute, being the dataset's own phrasing (a threshold that loses 1% of the sample's
validation messages loses 54% of the everyday ones).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

#: How many nearest messages a similarity averages over: a few, so that no single near-copy decides.
NEIGHBOURS = 5
#: The weight of the out-of-scope messages' similarity. ``benchmarks/understanding.py``: with
#: 0.5 (2-fold), AUROC 0.978, 6.2% of everyday messages lost and 7.4% of out-of-scope ones
#: given a confident intent; with none (the known messages alone), 0.975, 7.7% and 11.8%.
CONTRAST = 0.5
#: The share of hand-written in-scope calibration messages the threshold may lose: the
#: paraphrases, and the phrasings each scored without its half of them. With the phrasings
#: among the known messages (``benchmarks/understanding.py``), the 0.00, 0.02, 0.03 and 0.05
#: quantiles lose 0.0%, 0.6%, 2.0% and 3.1% of the everyday messages and let 70.6%, 28.4%,
#: 21.1% and 10.8% of the out-of-scope ones through (2-fold); 0.05 is the first to keep
#: nine in ten out (with the first 467 phrasings; with all 1,079, 0.05 loses 2.0% of everyday
#: messages and lets 5.4% through). With the paraphrases alone as calibration (the lowest
#: one's score), 6.2% of everyday messages were lost.
LOSE_AT_MOST = 0.05
#: Fewer paraphrases of the run's intents than this, and the run cannot tell what is out of scope.
MIN_CALIBRATION = 20


@dataclass(frozen=True)
class Scope:
    """What "no intent fits" is measured against."""

    #: Embeddings (m, D) of the packaged out-of-scope messages.
    outside: np.ndarray
    #: A message whose ``scores`` is below this is out of scope.
    below: float

    def scores(self, embeddings: np.ndarray, inside: np.ndarray) -> np.ndarray:
        """(n,) how well the embedded messages fit the known ones (``inside``), higher is in scope."""
        return nearest_mean(embeddings, inside) - CONTRAST * nearest_mean(embeddings, self.outside)


def nearest_mean(embeddings: np.ndarray, reference: np.ndarray, k: int = NEIGHBOURS) -> np.ndarray:
    """(n,) the mean cosine of each unit vector's ``k`` nearest among ``reference``'s unit vectors."""
    embeddings = np.asarray(embeddings, dtype=np.float32)
    if len(reference) == 0 or len(embeddings) == 0:
        return np.zeros(len(embeddings), dtype=np.float32)
    sims = embeddings @ np.asarray(reference, dtype=np.float32).T
    k = min(k, sims.shape[1])
    return np.partition(sims, sims.shape[1] - k, axis=1)[:, -k:].mean(axis=1)


def calibrate(embed: Callable[[Sequence[str]], np.ndarray], inside: np.ndarray, intents: set[str],
              outside: np.ndarray | None = None, written: np.ndarray | None = None,
              lose_at_most: float = LOSE_AT_MOST) -> Scope | None:
    """The scope of a run whose known messages are embedded as ``inside``, of ``intents``;
    None where too few hand-written messages are of its intents to calibrate on.
    ``outside``: the out-of-scope reference (the packaged messages, embedded, by default).
    ``written``: which rows of ``inside`` are hand-written phrasings; each half of them is
    scored as a new message, against ``inside`` without that half, and joins the calibration
    (a phrasing scored against itself would say nothing). The threshold loses ``lose_at_most``
    of the calibration messages."""
    from bigramlm.support.paraphrases import load_out_of_scope, load_paraphrases

    calibration = [p["message"] for p in load_paraphrases() if p["intent"] in intents]
    if len(calibration) < MIN_CALIBRATION:
        return None
    if outside is None:
        outside = embed([m["message"] for m in load_out_of_scope()])
    scope = Scope(outside, 0.0)
    scores = [scope.scores(embed(calibration), inside)]
    rows = np.flatnonzero(written) if written is not None else np.zeros(0, dtype=int)
    for half in (rows[0::2], rows[1::2]):
        if len(half):
            scores.append(scope.scores(inside[half], np.delete(inside, half, axis=0)))
    return Scope(outside, float(np.quantile(np.concatenate(scores), lose_at_most)))

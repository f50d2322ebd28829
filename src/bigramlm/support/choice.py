"""What the agent is shown for one message: the model's drafts that read as text, the
resolved replies beside them, each saying where it comes from, with the team's edits made.

1. The model's drafts are ranked by consensus with each other and the evidence (the
   replies of the most similar resolved cases of the understood intent,
   ``ranking.rank_candidates``; their chrF, computed once, ``ranking.Agreement``); every draft is checked (``readability``): one with a word
   found nowhere in the run's text, that loops, or whose words run as no real reply's do
   (below the ``fluency`` floor), is never shown.
2. The evidence replies join the readable drafts as candidates, and the candidates are
   ranked by their agreement with the evidence and the readable drafts together: a draft
   shows first where it is as central as the best resolved reply or more, a resolved
   reply where the drafts wander. A candidate whose agreement falls far below the best
   one's is not shown. Near-duplicates are dropped; ``n`` are kept.
3. The team's edit rules for the intent (``edits``) are made on each candidate.

Every suggestion names its origin ("model draft", "resolved case #12", "training row
#345"), so that an agent never mistakes a copied reply for a generated one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from bigramlm.data.cases import Case, label_of
from bigramlm.support.edits import Rule, apply
from bigramlm.support.ranking import (
    EVIDENCE_CASES,
    SAME_SUGGESTION_CHRF,
    Agreement,
    consensus_scores,
    distinct_candidates,
    rank_candidates,
)
from bigramlm.support.readability import RunText
from bigramlm.support.results import MODEL, Draft

#: How many of the nearest same-intent cases' replies join the drafts. Measured on the 790
#: val rows with the support recipe's GPT (n = 3), top suggestion chrF micro / macro and
#: intents beating the consensus-of-10 baseline (56.41 / 53.00): drafts + 5 replies 56.23 /
#: 52.28, 11 of 27; + 10: 56.79 / 53.06, 15; + 20: 57.42 / 53.73, 17; + 40: 57.26 / 53.42,
#: 14; drafts alone 52.59 / 46.22, 2. The top draft, or the consensus where it is
#: unreadable: 54.80 / 49.73, 5.
POOL_CASES = 20
#: A candidate whose agreement is this far (chrF points) below the best candidate's is not
#: shown: a draft that wandered off, where the evidence agrees on an answer.
FAR_BELOW = 12.0


@dataclass
class Choice:
    """One candidate to show: its text before and after the team's edits, and where it comes from."""

    text: str
    base_text: str
    score: float
    source: str = MODEL
    index: int = -1  # which draft, for the model's
    case_id: int | None = None
    rules: list[Rule] = field(default_factory=list)

    @property
    def label(self) -> str:
        return "model draft" if self.source == MODEL else label_of(self.source, self.case_id)


def agreement_of(candidates: Sequence[str], evidence: Sequence[Case]) -> Agreement:
    """The chrF of one message's drafts and the evidence replies that rank them and join
    them (``EVIDENCE_CASES`` and ``POOL_CASES`` of them), computed once for both."""
    return Agreement([text for _, text in distinct_candidates(candidates)]
                     + [c.reply for c in evidence[:max(EVIDENCE_CASES, POOL_CASES)] if c.reply])


def check_drafts(candidates: Sequence[str], evidence: Sequence[Case], reading: RunText, message: str,
                 agreement: Agreement | None = None) -> list[Draft]:
    """Every distinct draft, best first by consensus with the others and the first
    ``EVIDENCE_CASES`` evidence replies, with what the checks found."""
    drafts = []
    replies = [c.reply for c in evidence[:EVIDENCE_CASES]]
    for ranked in rank_candidates(candidates, replies, agreement or agreement_of(candidates, evidence)):
        found = reading.check(ranked.text, message)
        drafts.append(Draft(ranked.index, ranked.text, ranked.score, list(found.non_words), found.loops,
                            fluency=found.fluency, disfluent=found.disfluent))
    return drafts


def choose(drafts: Sequence[Draft], evidence: Sequence[Case], n: int, rules: Sequence[Rule] = (),
           intent: str | None = None, agreement: Agreement | None = None) -> list[Choice]:
    """Up to ``n`` candidates to show, best first (see the module docstring); ``agreement``
    holds the candidates' chrF when the caller has it (``agreement_of``)."""
    pool: dict[str, Choice] = {}  # one candidate per text: a reply many cases share counts once
    for d in drafts:
        if d.readable:
            pool.setdefault(d.text, Choice(d.text, d.text, 0.0, MODEL, d.index))
    for c in evidence[:POOL_CASES]:
        if c.reply:
            pool.setdefault(c.reply, Choice(c.reply, c.reply, 0.0, c.source, -1, c.id))
    if not pool:
        return []
    texts = [c.text for c in pool.values()]
    return _ranked(list(pool.values()), (agreement or Agreement(texts)).among(texts), n, rules, intent, drafts)


def _ranked(pool: list[Choice], scores: np.ndarray, n: int, rules: Sequence[Rule], intent: str | None,
            drafts: Sequence[Draft]) -> list[Choice]:
    agreement = consensus_scores(scores)
    order = sorted(range(len(pool)), key=lambda i: -agreement[i])
    best = agreement[order[0]]
    shown: list[int] = []
    for i in order:
        if len(shown) == n or agreement[i] < best - FAR_BELOW:
            break
        if all(min(scores[i, j], scores[j, i]) < SAME_SUGGESTION_CHRF for j in shown):
            shown.append(i)
    out = []
    for i in shown:
        choice = pool[i]
        choice.score = float(agreement[i])
        choice.text, choice.rules, allowed = apply(choice.text, rules, intent)
        if allowed:
            out.append(choice)
    for d in drafts:
        d.shown = any(c.source == MODEL and c.index == d.index for c in out)
    return out


"""The team edit rules of a store now (``edits``), kept up to date as accepts come.

Working the rules out again from the store at each request cost time in proportion to
every accept ever stored: 0.04 s with none, 6.1 s after 1,500 (issue 27). A ``RuleBook``
reads each accept once instead:

- the first time, the latest ``HISTORY`` accepts of each intent the run knows (one query);
- after that, only the accepts stored after the newest case it has seen (a range of the
  primary key; case ids become visible in order on both back-ends, see ``database``);
- it keeps each intent's latest ``HISTORY`` accepts, with their edits worked out once, and
  makes again only the rules of the intents that got an accept.

So an accept costs its own diff, and a request with no new accept costs two indexed reads
(the newest case id, the rule switches), however many accepts the store holds
(``benchmarks/rules_cost.py``). ``HISTORY`` bounds what one rule-making step reads: the
latest 50 accepts of one intent, 5 times the ``RECENT`` 10 whose majority must carry an
edit, as before.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import replace
from typing import TYPE_CHECKING, Sequence

from bigramlm.support.edits import HISTORY, Accept, KnownToRun, Rule, every_intent, intent_rules

if TYPE_CHECKING:
    from bigramlm.data.run_files import InstructionRunFiles
    from bigramlm.support.store import CaseStore


def known_to_run(files: "InstructionRunFiles | None") -> KnownToRun:
    """The intents of a run's label set and the contacts of its training replies (nothing
    for a run without them: then no rule is learned)."""
    if files is None:
        return KnownToRun()
    return KnownToRun.of((intent for intent, _ in files.label_set), (row.reply for row in files.train_rows))


class RuleBook:
    """The learned rules of one store for one run, read incrementally (thread-safe)."""

    def __init__(self, known: KnownToRun):
        self.known = known
        self._windows: dict[str, deque[Accept]] = {}
        self._by_intent: dict[str, list[Rule]] = {}
        self._learned: list[Rule] = []
        #: The newest case id read; None until the first read.
        self._seen: int | None = None
        self._lock = threading.Lock()
        #: How many accepts the last ``learned`` read (what a test checks stays bounded).
        self.last_read = 0

    def learned(self, store: "CaseStore") -> list[Rule]:
        """The rules learned from the store's accepts, as of now."""
        with self._lock:
            replies, self._seen = store.accepted_replies(self.known.intents, HISTORY, self._seen or 0)
            self.last_read = len(replies)
            changed = set()
            for reply in replies:
                self._windows.setdefault(reply.intent, deque(maxlen=HISTORY)).append(Accept.of(reply))
                changed.add(reply.intent)
            for intent in changed:
                self._by_intent[intent] = intent_rules(intent, self._windows[intent], self.known)
            if changed:
                self._learned = every_intent(self._by_intent)
            return self._learned


def current_rules(store: "CaseStore | None", book: RuleBook, written: Sequence[Rule] = ()) -> list[Rule]:
    """Every rule now: learned from the store's accepts, then those the team wrote, each
    enabled or not as agents last switched it. A learned rule no agent has switched is
    unreviewed, and enabled unless it waits for review (``Rule.review``)."""
    if store is None:
        return list(written)
    learned = book.learned(store)
    states = store.rule_settings()
    return [*(replace(r, enabled=states.get(r.id, r.review is None), unreviewed=r.id not in states) for r in learned),
            *(replace(r, enabled=states.get(r.id, True)) for r in written)]


__all__ = ["RuleBook", "current_rules", "known_to_run"]

"""The one idea of a resolved case, from the dataset's rows to the store, the similar-cases
index and the desk: a customer's message and the reply that resolved it.

A row of an instruction table is a case (``source`` "dataset", ``id`` its row's position
in the file). A case an agent accepted on the desk ("desk") or that ``learn --cases``
read from a file ("learn") has the store's id. Everything that shows a case says which it
is, so that nobody mistakes a training row for a resolved case, or the reverse.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Where a case comes from.
DATASET, DESK, LEARN = "dataset", "desk", "learn"
SOURCES = (DATASET, DESK, LEARN)


@dataclass(frozen=True)
class Case:
    """A message and its reply (both stripped), their labels where known, and their provenance."""

    message: str
    reply: str
    intent: str | None = None
    category: str | None = None
    source: str = DATASET
    #: The row's position in its file (a dataset row), or the store's case id.
    id: int | None = None

    @property
    def resolved(self) -> bool:
        """A case resolved by the team (in the store), not a row of the training data."""
        return self.source != DATASET

    def label(self) -> str:
        """How the desk names it: ``resolved case #12`` or ``training row #345``."""
        return label_of(self.source, self.id)


def label_of(source: str, case_id: int | None) -> str:
    """How the desk names a case of ``source`` with ``case_id``."""
    return f"training row #{case_id}" if source == DATASET else f"resolved case #{case_id}"

"""The one idea of a resolved case, from the dataset's rows to the store, the similar-cases
index and the desk: a customer's message and the reply that resolved it.

A row of an instruction table is a case (``source`` "dataset", ``id`` its row's position
in the file). A case an agent accepted on the desk ("desk") or that ``learn --cases``
read from a file ("learn") has the store's id. Everything that shows a case says which it
is, so that nobody mistakes a training row for a resolved case, or the reverse.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from bigramlm.errors import BigramLMError

#: Where a case comes from.
DATASET, DESK, LEARN = "dataset", "desk", "learn"
#: The longest message and reply a case may hold (the desk's own bounds; a 50 MB message
#: once cost a desk 8 GB and every suggestion after it).
MAX_MESSAGE_CHARS = 2000
MAX_REPLY_CHARS = 8000
#: An intent or category name: letters, digits, ``_ . -`` and spaces, at most 100, no
#: newline, control character or ``#`` (a name is written into the training format's
#: header lines, ``### Intent: {intent}``, so it must never start one).
LABEL = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_ .-]{0,99}")


def check_case(case: "Case", what: str = "a case") -> None:
    """One-line errors for a case no store, index or prompt may take."""
    if not isinstance(case.message, str) or not isinstance(case.reply, str) or not case.message.strip() or not case.reply.strip():
        raise BigramLMError(f"{what} needs a message and a reply, both text", param="message")
    for field, text, most in (("message", case.message, MAX_MESSAGE_CHARS), ("reply", case.reply, MAX_REPLY_CHARS)):
        if len(text) > most:
            raise BigramLMError(f"{what}: the {field} has {len(text):,} characters; at most {most:,}", param=field)
        if any("\ud800" <= ch <= "\udfff" for ch in text):
            raise BigramLMError(f"{what}: the {field} holds a lone surrogate, which is not text", param=field)
    for field, label in (("intent", case.intent), ("category", case.category)):
        if label is not None and (not isinstance(label, str) or not LABEL.fullmatch(label)):
            raise BigramLMError(f"{what}: {field} {label!r} is not a name (letters, digits, _ . - and spaces, "
                                "at most 100)", param=field)


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

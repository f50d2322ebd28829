"""Hand-written customer messages for measuring understanding beyond the dataset's phrasing.

Four sets ship in ``bigramlm/resources``, all written for this project. Three are never
trained on: ``paraphrases.jsonl`` (two per intent, which also calibrate "no intent fits"),
``everyday.jsonl`` (a dozen or more per intent, as customers really type: typos, order
numbers, greetings, run-ons) and ``out_of_scope.jsonl`` (messages that belong to none of the
27 intents, for measuring whether the assistant knows when to abstain). The fourth,
``phrasings.jsonl``, is training data: the everyday ways customers say each request that the
dataset's templates never use ("charged twice", "unsubscribe me"). It was written without
sight of the other three, and none of its messages lies within cosine 0.9 of one of theirs
(``tests/test_support_message_sets.py``). All are JSON Lines read by one parser, so that a
malformed line is reported the same way whichever set it is in.
"""

from __future__ import annotations

import json
import os
from importlib import resources
from pathlib import Path

from bigramlm.errors import BigramLMError


def _read_messages(
    resource: str,
    path: str | os.PathLike[str] | None,
    required: tuple[str, ...],
    needs: str,
    optional: tuple[str, ...] = (),
) -> list[dict[str, str]]:
    """One JSON object a line from ``path``, or from the packaged ``resources/<resource>``.

    The ``required`` fields must be non-blank text and the ``optional`` ones text where given,
    since every caller compares them as strings; a line that is not so is one
    ``BigramLMError`` naming the file and the line (``needs`` says what a line must have),
    so a hand-edited set fails where it is wrong rather than later as a puzzling figure.
    Blank lines are skipped.
    """
    if path is None:
        text = resources.files("bigramlm").joinpath(f"resources/{resource}").read_text(encoding="utf-8")
        where = f"bigramlm/resources/{resource}"
    else:
        from bigramlm.data.sources import read_text_file

        text = read_text_file(Path(path))  # a regular UTF-8 file of bounded size, or one line
        where = str(path)
    items = []
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            try:
                item = json.loads(line)
            except json.JSONDecodeError as exc:
                raise BigramLMError(f"{where}: line {number}: {exc.msg}") from None
            if not isinstance(item, dict) or not all(
                    isinstance(item.get(field), str) and item[field].strip() for field in required):
                raise BigramLMError(f"{where}: line {number} {needs}")
            for field in optional:
                if field in item and not isinstance(item[field], str):
                    raise BigramLMError(f"{where}: line {number}: {field} must be text")
            items.append(item)
    return items


def load_paraphrases(path: str | os.PathLike[str] | None = None) -> list[dict[str, str]]:
    """The hand-written messages (``message``, ``intent``, ``category``), one JSON object a line."""
    return _read_messages("paraphrases.jsonl", path, ("message", "intent"), "needs a message and an intent, both text")


def load_everyday(path: str | os.PathLike[str] | None = None) -> list[dict[str, str]]:
    """Messages as customers really write them (``message``, ``intent``, ``category``).

    A dozen or more per intent, with the greetings, typos, order numbers and run-ons that the
    dataset's templated phrasing lacks: the figure on them says how the assistant does on a
    real inbox rather than on more of its training distribution. ``path`` replaces the
    packaged ``resources/everyday.jsonl``.
    """
    return _read_messages("everyday.jsonl", path, ("message", "intent"), "needs a message and an intent, both text")


def load_out_of_scope(path: str | os.PathLike[str] | None = None) -> list[dict[str, str]]:
    """Messages that belong to none of the intents (``message``, and an optional ``kind``).

    App bugs, product questions, spam, thanks, other languages and the like: a support inbox
    gets them every day, and an assistant that maps each onto some intent answers them
    wrongly, so these measure whether it can tell it should not answer. ``kind`` (a short
    label such as ``spam``) groups the figures. ``path`` replaces the packaged
    ``resources/out_of_scope.jsonl``.
    """
    return _read_messages("out_of_scope.jsonl", path, ("message",), "needs a message, as text", optional=("kind",))


def load_phrasings(path: str | os.PathLike[str] | None = None) -> list[dict[str, str]]:
    """The everyday ways to say each intent (``message``, ``intent``, ``category``), trained on.

    The recipe's understanding fits on them beside the dataset's rows (``support.recipe``):
    on the everyday set, intent accuracy 0.849 -> 0.938 and confidently wrong 7.7% -> 2.6%
    (1.7% with the vote of the nearest, ``benchmarks/understanding.py``).
    ``path`` replaces the packaged ``resources/phrasings.jsonl``.
    """
    return _read_messages("phrasings.jsonl", path, ("message", "intent"), "needs a message and an intent, both text")

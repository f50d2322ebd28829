"""How long a suggested reply is: as the reply is, or short.

The dataset's replies run 70-190 words of boilerplate (issue 26). A short reply is made
from the same reply, never by cutting it at a length: its leading sentences, then its
closing line when the reply ends on one ("Is there anything else I can help you with?").
Sentences end at ``.``, ``!`` or ``?`` followed by a space, and at line breaks; a
``{{Placeholder}}`` is never split, a list item ("1. Log in: ...", "- Go to ...") is one
unit, and a leading sentence that announces a list ("Here's what to do:") is dropped
with the list it announces, so a short reply never ends on a colon.

The preference is the brand profile's (``[brand] reply_length``) unless a request names
one (``length`` on ``POST /api/suggest``, ``--length`` on ``assist``). It is applied to the
chosen suggestions before the brand's values are filled in, so that a value such as
"Acme Inc." cannot be read as the end of a sentence.
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import TYPE_CHECKING, Sequence

from bigramlm.data.formats import PLACEHOLDER
from bigramlm.errors import BigramLMError
from bigramlm.support.settings import AS_IS, LENGTHS, SHORT

if TYPE_CHECKING:  # the brand profile reads LENGTHS: it stays light to import
    from bigramlm.support.choice import Choice

#: Leading sentences a short reply keeps. ``benchmarks/reply_length.py`` on the demo run's
#: 793 test rows (the consensus reply of the 10 nearest of the row's intent): 95 words
#: (median) as is; short with 1, 2, 3 leading sentences 22, 36, 49 words, chrF micro
#: against the short reference 39.0, 45.7, 47.3. Two is the fewest that still carry the
#: request after the dataset's opener ("I'm here to help!"); the third adds 13 words for 1.5.
LEAD_SENTENCES = 2
#: A closing line longer than this is content, not a sign-off (the dataset's closings,
#: counted over the demo run's train rows, run 4-28 words).
CLOSING_WORDS = 30
_CLOSING = re.compile(
    r"\b(thank|thanks|appreciate|let (me|us) know|reach out|don't hesitate|do not hesitate|feel free|"
    r"anything else|further (assistance|questions|help)|here to (help|assist)|satisfaction|regards|cheers|"
    r"every step of the way|happy to help|glad to help)\b", re.IGNORECASE)
_END = re.compile(r"[.!?]+[\"'\u201d\u2019)\]*]*(?=\s)")
_LIST_ITEM = re.compile(r"\s*(?:\d{1,3}[.)]|[-*\u2022+])\s")
#: Words whose period does not end a sentence.
_ABBREVIATIONS = {"e.g", "i.e", "etc", "mr", "mrs", "ms", "dr", "no", "vs", "approx"}

Span = tuple[int, int]


def check_length(length: str | None, param: str = "length") -> str | None:
    """``length`` itself when it is one of ``LENGTHS`` (or None); a library error otherwise."""
    if length is not None and length not in LENGTHS:
        raise BigramLMError(f"{param} must be one of {', '.join(LENGTHS)} (got {length!r})", param=param)
    return length


def sentences(text: str) -> list[Span]:
    """The spans of ``text``'s sentences and list items, in order, without surrounding spaces."""
    spans: list[Span] = []
    for line in re.finditer(r"[^\n]+", text):
        start, body = line.start(), line.group(0)
        if _LIST_ITEM.match(body):
            spans.append(_strip(text, start, line.end()))
            continue
        inside = [m.span() for m in PLACEHOLDER.finditer(body)]
        begin = 0
        for end in _END.finditer(body):
            if any(a < end.start() < b for a, b in inside) or _abbreviation(body, end.start()):
                continue
            spans.append(_strip(text, start + begin, start + end.end()))
            begin = end.end()
        if body[begin:].strip():
            spans.append(_strip(text, start + begin, line.end()))
    return [s for s in spans if s[1] > s[0]]


def _strip(text: str, start: int, end: int) -> Span:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def _abbreviation(body: str, at: int) -> bool:
    word = re.search(r"([A-Za-z.]+)$", body[:at])
    return word is not None and word.group(1).lower().rstrip(".") in _ABBREVIATIONS and body[at] == "."


def is_closing(sentence: str) -> bool:
    """Whether a reply's last sentence is a sign-off or an offer of more help."""
    return len(sentence.split()) <= CLOSING_WORDS and bool(_CLOSING.search(sentence))


def shorten(text: str, length: str | None = SHORT) -> str:
    """``text`` as ``length`` asks: as it is, or its leading sentences and its closing line."""
    if check_length(length) != SHORT:
        return text
    spans = sentences(text)
    lead = [s for s in spans[:LEAD_SENTENCES] if not _LIST_ITEM.match(text[s[0]:s[1]])]
    while lead and text[lead[-1][0]:lead[-1][1]].rstrip("*").endswith(":"):
        lead.pop()  # it announces a list the short reply leaves out
    if not lead:
        return text  # a reply that opens with its list: nothing shorter says the same
    closing = spans[-1] if len(spans) > LEAD_SENTENCES and is_closing(text[spans[-1][0]:spans[-1][1]]) else None
    if closing is None or closing[0] < lead[-1][1]:
        return text[lead[0][0]:lead[-1][1]]
    gap = text[lead[-1][1]:closing[0]]
    separator = "\n\n" if "\n\n" in gap else "\n" if "\n" in gap else " "
    return text[lead[0][0]:lead[-1][1]] + separator + text[closing[0]:closing[1]]


def shorten_choices(choices: Sequence[Choice], length: str | None) -> list[Choice]:
    """Each chosen suggestion (``support.choice.Choice``) with its text and its text before
    the team's edits shortened alike, so that what an agent sends is compared to the same."""
    if check_length(length) != SHORT:
        return list(choices)
    return [replace(c, text=shorten(c.text), base_text=shorten(c.base_text)) for c in choices]


__all__ = ["AS_IS", "LENGTHS", "SHORT", "check_length", "is_closing", "sentences", "shorten", "shorten_choices"]

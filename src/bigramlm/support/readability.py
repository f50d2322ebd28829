"""Whether a draft reads as text an agent could send: no made-up words, no loops, and
words in an order the run's replies use.

A small model sometimes writes words that exist nowhere ("gathilarating") or repeats
itself ("about the specific details about the specific details about the ..."). Such a
draft is never shown; the assistant shows the best resolved reply in its place.

- A **non-word** is a word (letters, with an inner apostrophe) that occurs nowhere in the
  run's text: the training messages and replies, the resolved cases, the brand's values,
  and the customer's own message (a name or a product they typed). Placeholders
  (``{{Order Number}}``) are not words.
- A **loop** is a run of two or more words said three times in a row, or the same six
  words three times anywhere. Measured on the 7,897 replies of the Bitext sample: no real
  reply repeats a span three times in a row, and 0.1% repeat a 6-gram three times
  (a 4-gram three times: 1.4%, so shorter spans would refuse real replies).
- A **disfluent** draft reads worse, word by word, than nearly every real reply: below the
  floor of the word model of the run's replies (``fluency``), however real its words are.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, Iterable

from bigramlm.data.cases import Case
from bigramlm.support.fluency import WORD, Fluency

_WORD = re.compile(WORD)
_PLACEHOLDER = re.compile(r"\{\{[^{}\n]*\}\}")
#: A span repeated this many times in a row is a loop.
LOOP_TIMES = 3
#: The longest span (in words) looked for as a repeat in a row.
LOOP_SPAN = 12
#: An n-gram of this many words seen ``LOOP_TIMES`` times anywhere is a loop.
LOOP_NGRAM = 6


def words(text: str) -> list[str]:
    """The words of ``text``, lower-cased, placeholders left out."""
    return _WORD.findall(_PLACEHOLDER.sub(" ", text.lower()))


@dataclass
class Vocabulary:
    """Every word the run's text uses; it grows with the resolved cases."""

    known: set[str] = field(default_factory=set)

    @classmethod
    def of(cls, texts: Iterable[str]) -> "Vocabulary":
        vocabulary = cls()
        vocabulary.add(texts)
        return vocabulary

    def add(self, texts: Iterable[str]) -> None:
        for text in texts:
            self.known.update(words(text))

    def unknown(self, text: str, also: str = "") -> list[str]:
        """The words of ``text`` found neither here nor in ``also`` (the customer's message), each once."""
        return self.unknown_among(words(text), set(words(also)))

    def unknown_among(self, found: Iterable[str], extra: set[str]) -> list[str]:
        """The words of ``found`` neither here nor in ``extra``, each once (``unknown`` on words already split)."""
        return list(dict.fromkeys(w for w in found if w not in self.known and w not in extra))


def loops(text: str) -> bool:
    """Whether ``text`` repeats itself as no reply an agent sends does (see the module docstring)."""
    return LoopWatch().add(words(text))


class LoopWatch:
    """The loop rule read word by word: ``add`` says whether the words so far loop. Each
    new word only ends new spans and one new 6-gram, so a growing draft is checked as it
    grows at a cost per word, and ``loops`` on a whole text is the same rule."""

    def __init__(self) -> None:
        self.words: list[str] = []
        self.grams: Counter[tuple[str, ...]] = Counter()
        self.looped = False

    def add(self, new: Iterable[str]) -> bool:
        w = self.words
        for word in new:
            if self.looped:
                break
            w.append(word)
            self.looped = self._ends_a_repeat() or self._counts_a_gram()
        return self.looped

    def _ends_a_repeat(self) -> bool:
        """Whether the words ending with the newest are a span said ``LOOP_TIMES`` times in a row."""
        w, end = self.words, len(self.words)
        for span in range(1, LOOP_SPAN + 1):
            times = LOOP_TIMES if span > 1 else LOOP_TIMES + 1  # one word: four times in a row
            start = end - span * times
            if start < 0:
                break
            last = w[end - span : end]
            if all(w[start + k * span : start + (k + 1) * span] == last for k in range(times - 1)):
                return True
        return False

    def _counts_a_gram(self) -> bool:
        if len(self.words) < LOOP_NGRAM:
            return False
        gram = tuple(self.words[-LOOP_NGRAM:])
        self.grams[gram] += 1
        return self.grams[gram] >= LOOP_TIMES


def settled(text: str, start: int = 0) -> int:
    """Where the part of a growing ``text`` whose words can no longer change ends: at its
    last blank, and before a ``{{`` not yet closed there (a placeholder's name is not words).
    Only ``text[start:]`` is searched: the caller's text up to ``start`` was settled before,
    with no ``{{`` left open (``start`` itself may be one)."""
    end = max(text.rfind(" ", start), text.rfind("\n", start), text.rfind("\t", start))
    if end < start:
        return start
    opened = text.rfind("{{", start, end)
    if opened > text.rfind("}}", start, end):
        end = opened
    return end


class DraftWatch:
    """Reads a draft as it is decoded and says as soon as it can never be shown: it loops,
    or it has a word found nowhere in the run or the message (``check``'s first two rules).
    Both are facts about words already written that no continuation undoes, so the decode
    can end such a draft there and ``check`` on the shorter text still refuses it (the
    fluency rule scores the whole draft, so it is left to ``check``). Fed the row's text
    piece by piece (``generation.text.TextRow``); the words of each settled stretch are
    read once.

    One difference from ``check`` on the whole draft: the vocabulary may grow while the
    draft is written (a desk reading its store's texts), and a word unknown when it was
    written ends the draft even if it is known by the time the draft would have ended."""

    def __init__(self, vocabulary: Vocabulary, message: str = ""):
        self.vocabulary, self.message_words = vocabulary, set(words(message))
        self.text = ""
        self.read = 0  # characters of ``text`` whose words were read
        self.loops = LoopWatch()
        self.doomed = False

    def __call__(self, piece: str) -> bool:
        if self.doomed or not piece:
            return self.doomed
        self.text += piece
        end = settled(self.text, self.read)
        if end > self.read:
            new = words(self.text[self.read : end])
            self.read = end
            self.doomed = bool(self.vocabulary.unknown_among(new, self.message_words)) or self.loops.add(new)
        return self.doomed


@dataclass(frozen=True)
class Readability:
    """What is wrong with a draft, if anything."""

    non_words: tuple[str, ...] = ()
    loops: bool = False
    #: The word model's score (``fluency``; None without a model or a word) and whether it is below the floor.
    fluency: float | None = None
    disfluent: bool = False

    @property
    def ok(self) -> bool:
        return not self.non_words and not self.loops and not self.disfluent

    def reason(self) -> str | None:
        if self.ok:
            return None
        parts = []
        if self.non_words:
            parts.append("words found nowhere in the run: " + ", ".join(self.non_words[:5]))
        if self.loops:
            parts.append("it repeats itself")
        if self.disfluent:
            parts.append(f"its words run as no real reply's do (fluency {self.fluency:.2f})")
        return "; ".join(parts)


def check(text: str, vocabulary: Vocabulary, message: str = "", fluency: Fluency | None = None) -> Readability:
    score = fluency.score(text) if fluency is not None else None
    disfluent = fluency is not None and score is not None and score < fluency.floor
    return Readability(tuple(vocabulary.unknown(text, message)), loops(text), score, disfluent)


@dataclass
class RunText:
    """What a draft is read against: the run's words, and a word model of its replies (None:
    no fluency check). Both grow with the resolved cases."""

    vocabulary: Vocabulary
    fluency: Fluency | None = None

    @classmethod
    def of(cls, cases: Iterable[Case], more_words: Iterable[str] = ()) -> "RunText":
        """The words of the cases' messages and replies and of ``more_words`` (the brand's
        values); the word model of the replies."""
        cases = list(cases)
        vocabulary = Vocabulary.of([t for c in cases for t in (c.message, c.reply)] + list(more_words))
        return cls(vocabulary, Fluency.of([c.reply for c in cases]))

    def add(self, cases: Iterable[Case]) -> None:
        cases = list(cases)
        self.vocabulary.add(t for c in cases for t in (c.message, c.reply))
        if self.fluency is not None:
            self.fluency.add(c.reply for c in cases)

    def add_texts(self, messages: Iterable[str], replies: Iterable[tuple[str, int]],
                  pause: Callable[[], None] | None = None) -> None:
        """``add`` from the texts of many cases: their messages, and their distinct replies each
        with how many cases gave it (what the store reads, ``CaseStore.case_texts``).
        ``pause`` is called between small chunks (a background reader's, ``serve.desk.Pace``)."""
        messages, replies = list(messages), list(replies)
        for start in range(0, len(messages), MESSAGE_CHUNK):
            self.vocabulary.add(messages[start : start + MESSAGE_CHUNK])
            if pause is not None:
                pause()
        for start in range(0, len(replies), REPLY_CHUNK):
            chunk = replies[start : start + REPLY_CHUNK]
            self.vocabulary.add(r for r, _ in chunk)
            if self.fluency is not None:
                self.fluency.add_counted(chunk)
            if pause is not None:
                pause()

    def check(self, text: str, message: str = "") -> Readability:
        return check(text, self.vocabulary, message, self.fluency)

    def watch(self, message: str = "") -> DraftWatch:
        """A watch for one draft answering ``message`` (the decode ends the draft once it is doomed)."""
        return DraftWatch(self.vocabulary, message)


#: Texts added between two calls of ``add_texts``' ``pause``: about 1 ms of work each (the
#: words of 200 synthetic cases' messages took 0.4 ms, the words and word model of 8
#: distinct replies 2.2 ms).
MESSAGE_CHUNK = 500
REPLY_CHUNK = 4

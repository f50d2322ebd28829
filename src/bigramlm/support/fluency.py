"""Whether a draft reads as an agent's reply word by word: a word trigram model of the run's replies.

The readability gate (``readability``) refuses made-up words and loops, but a draft whose
words are all real can still be broken: "I apologize for my best! I'm here to help you're
here to assist you ...". Such a draft is read here against the replies the run has seen
(the train rows' replies, and the resolved cases' as they come).

- **The model**: word trigrams (words, ``{{placeholders}}`` and sentence ends as tokens),
  interpolated absolute discounting (the Kneser-Ney family's discount, without continuation
  counts) down to an add-one unigram, so every token has a probability.
- **The score** of a text is its SLOR (syntactic log-odds ratio): the mean, over its
  tokens and its end, of the token's log probability in context minus its log probability
  alone. A rare word is not held against a reply, a common word where it never goes is.
  Measured on the support-demo2 run's 632 held-out train replies against 400 made by
  splicing two of them mid-sentence, real above spliced (AUROC): SLOR 0.727, the plain mean
  log probability 0.716, and the worst stretch of 3 to 8 tokens 0.54 to 0.66 (rare content
  words in real replies sink a short window as low as a broken seam).
- **The floor** is the ``FLOOR_PERCENTILE`` percentile of the scores of real replies held
  out of the model (every ``HOLD_OUT``-th train reply, scored before it is added): a
  draft below it reads worse than nearly every real reply: on support-demo2 the floor is
  2.29, and 0.9% of the 790 val replies fall below it. It is measured at load, so it
  follows the run's replies; nothing is kept in the run. Building the model and the floor
  takes 1.0 s for that run's 6,314 train replies (0.6 M tokens; ``Assistant.load`` 1.2 s
  before, 2.1 s now, warm, on 2 shared cores).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Iterable, Sequence

import numpy as np

from bigramlm.errors import BigramLMError
from bigramlm.support.results import Draft

#: A word, lower-cased, with its apostrophes ("you're"): the one definition, ``readability`` reads words by it too.
WORD = r"[a-z]+(?:'[a-z]+)*"
_TOKEN = re.compile(r"\{\{[^{}\n]*\}\}|" + WORD + r"|\.")
_SENTENCE_END = re.compile(r"[.!?]+")
_START, _END = "<s>", "</s>"
#: The discount of every seen n-gram (the usual absolute-discounting value).
DISCOUNT = 0.75
#: Every this-many-th train reply is held out to measure the floor.
HOLD_OUT = 10
#: Real replies scored below the floor: this percentile of the held-out replies, the low end
#: of the range real replies reach. Of 360 drafts for 120 val messages (support-demo2), 8
#: of the 260 the non-word and loop checks pass fall below it, every one broken on reading;
#: the lowest ones above it (2.30-2.31) read broken too, so a higher floor would refuse more
#: broken drafts (the 5th percentile: 55 of 260) but also real-like ones (5% of real replies).
FLOOR_PERCENTILE = 1.0


def tokens(text: str) -> list[str]:
    """The text's words, placeholders (each its own token) and sentence ends, lower-cased."""
    return _TOKEN.findall(_SENTENCE_END.sub(".", text.lower()))


@dataclass
class _Order:
    """Counts of one order: of each n-gram, and of each context's total and distinct followers."""

    grams: Counter[tuple[str, ...]] = field(default_factory=Counter)
    totals: Counter[tuple[str, ...]] = field(default_factory=Counter)
    followers: Counter[tuple[str, ...]] = field(default_factory=Counter)

    def add(self, grams: Iterable[tuple[str, ...]] | Counter[tuple[str, ...]]) -> None:
        # Counted once per distinct n-gram, not per token: the load builds the model of
        # 6,314 replies (about 0.6 M tokens) this way.
        for gram, count in (grams if isinstance(grams, Counter) else Counter(grams)).items():
            if gram not in self.grams:
                self.followers[gram[:-1]] += 1
            self.grams[gram] += count
            self.totals[gram[:-1]] += count


@dataclass
class WordTrigrams:
    """The word trigram model; see the module docstring."""

    unigrams: Counter[str] = field(default_factory=Counter)
    bigrams: _Order = field(default_factory=_Order)
    trigrams: _Order = field(default_factory=_Order)
    size: int = 0

    def add(self, texts: Iterable[str]) -> None:
        self.add_tokens(tokens(text) for text in texts)

    def add_counted(self, texts: Iterable[tuple[str, int]]) -> None:
        """``add`` of each text as many times as it is counted, at the cost of adding it once:
        a year of a team's accepts repeats its replies (the store reads them grouped)."""
        unigrams: Counter[str] = Counter()
        bigrams: Counter[tuple[str, ...]] = Counter()
        trigrams: Counter[tuple[str, ...]] = Counter()
        for text, times in texts:
            t = [_START, _START, *tokens(text), _END]
            for w in t[2:]:
                unigrams[w] += times
            for pair in zip(t[1:], t[2:]):
                bigrams[pair] += times
            for triple in zip(t, t[1:], t[2:]):
                trigrams[triple] += times
            self.size += times * (len(t) - 2)
        self.unigrams.update(unigrams)
        self.bigrams.add(bigrams)
        self.trigrams.add(trigrams)

    def add_tokens(self, texts: Iterable[list[str]]) -> None:
        padded = [[_START, _START, *t, _END] for t in texts]
        self.unigrams.update(w for t in padded for w in t[2:])
        self.bigrams.add(g for t in padded for g in zip(t[1:], t[2:]))
        self.trigrams.add(g for t in padded for g in zip(t, t[1:], t[2:]))
        self.size += sum(len(t) - 2 for t in padded)

    def _unigram(self, w: str) -> float:
        return (self.unigrams[w] + 1) / (self.size + len(self.unigrams) + 1)  # one slot for unseen words

    def _interpolated(self, order: _Order, gram: tuple[str, ...], lower: float) -> float:
        total = order.totals[gram[:-1]]
        if not total:
            return lower
        seen = max(order.grams[gram] - DISCOUNT, 0.0) / total
        return seen + DISCOUNT * order.followers[gram[:-1]] / total * lower

    def logprobs(self, text: str | list[str]) -> list[float]:
        """The natural-log probability of each token of ``text`` (or of these tokens) and of its end."""
        t = [_START, _START, *(tokens(text) if isinstance(text, str) else text), _END]
        out = []
        for i in range(2, len(t)):
            bigram = self._interpolated(self.bigrams, (t[i - 1], t[i]), self._unigram(t[i]))
            out.append(math.log(self._interpolated(self.trigrams, (t[i - 2], t[i - 1], t[i]), bigram)))
        return out

    def score(self, text: str | list[str]) -> float:
        """The text's SLOR: the mean of each token's log probability in context minus alone."""
        t = tokens(text) if isinstance(text, str) else text
        alone = [math.log(self._unigram(w)) for w in [*t, _END]]
        logps = self.logprobs(t)
        return sum(p - a for p, a in zip(logps, alone)) / len(logps)


@dataclass
class Fluency:
    """The run's word model and the floor real replies reach; it grows with the resolved cases."""

    model: WordTrigrams
    floor: float
    #: How many held-out real replies the floor was measured on.
    held_out: int

    @classmethod
    def of(cls, replies: Sequence[str]) -> "Fluency":
        """The model of ``replies``, its floor measured on every ``HOLD_OUT``-th one before it is added."""
        read = [t for t in map(tokens, replies) if t]
        held = read[::HOLD_OUT]
        if not held:
            raise BigramLMError("the fluency floor needs at least one real reply", param="replies")
        model = WordTrigrams()
        model.add_tokens(t for i, t in enumerate(read) if i % HOLD_OUT)
        floor = float(np.percentile([model.score(t) for t in held], FLOOR_PERCENTILE))
        model.add_tokens(held)
        return cls(model, floor, len(held))

    def add(self, replies: Iterable[str]) -> None:
        self.model.add(replies)

    def add_counted(self, replies: Iterable[tuple[str, int]]) -> None:
        """``add`` of each reply as many times as it is counted (``WordTrigrams.add_counted``)."""
        self.model.add_counted(replies)

    def score(self, text: str) -> float | None:
        """The text's score, or None for a text without a word (nothing to read)."""
        read = tokens(text)
        return self.model.score(read) if read else None

    def below_floor(self, text: str) -> bool:
        score = self.score(text)
        return score is not None and score < self.floor


@dataclass
class FluencyFigures:
    """``eval --task support``'s fluency figures: what the word model's floor does to the drafts."""

    #: The floor (SLOR), and how many held-out real replies it was measured on.
    floor: float
    held_out: int
    drafts: int
    #: Of all the model's drafts: below the floor; refused for any reason (non-word, loop, below the floor).
    draft_disfluent_rate: float
    draft_rejected_rate: float
    #: Drafts refused only for their fluency (every word real, no loop): what this check adds.
    rejected_only_for_fluency: int
    #: Of the drafts shown (as any suggestion), the share below the floor: 0 with the check on.
    shown_drafts: int
    shown_below_floor: float


def fluency_figures(fluency: Fluency, drafts: Sequence[Draft]) -> FluencyFigures:
    """The figures of the drafts of one evaluation (``Draft.disfluent``, as the check found them)."""
    def share(flags: list[bool]) -> float:
        return sum(flags) / len(flags) if flags else 0.0

    shown = [d for d in drafts if d.shown]
    return FluencyFigures(
        floor=round(fluency.floor, 4), held_out=fluency.held_out, drafts=len(drafts),
        draft_disfluent_rate=share([d.disfluent for d in drafts]), draft_rejected_rate=share([not d.readable for d in drafts]),
        rejected_only_for_fluency=sum(d.disfluent and not d.non_words and not d.loops for d in drafts),
        shown_drafts=len(shown), shown_below_floor=share([d.disfluent for d in shown]),
    )

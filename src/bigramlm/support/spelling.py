"""Typos mended before a message is understood: "cfanceling" reads as "canceling".

The sentence encoder (``support.encoder``) splits a misspelt word into word pieces that mean
nothing, and the Bitext rows are full of such typos ("canclelations", "removign",
"shpiping"): they were most of the intent errors left on the test and val splits. A word is
mended only when it is no word at all:

- **known words** are left alone: the run's words (``MIN_COUNT``), every whole word of the
  encoder's vocabulary, and the English dictionary of pyspellchecker (160,572 words), so
  that "blender", "espresso" or "resend", which the run never uses, are not "mended" into
  "sender", "express" or "refund";
- an unknown word of ``MIN_LENGTH`` letters or more becomes the run's word nearest to it by
  optimal string alignment (a swap of two letters counts 1), at most ``max_distance``
  edits away, the commonest on a tie; else, two run words it runs together become two words
  ("withcanceling"); else it is kept.

The targets are the run's own words, so a typo is read as the run would read the word.
Measured on a counts-bigram recipe run of the Bitext sample, the same run with and without
(``benchmarks/understanding.py``): test split intent accuracy 0.995 -> 0.999 (789 -> 792 of
793), everyday 0.966 and paraphrases 0.963 both, out-of-scope messages given a confident
intent 5.4% -> 6.9%; the whole test split's shown chrF 57.97 / 54.15 -> 58.12 / 54.24
(``eval --task support``). Of the 352 everyday messages one was changed ("personalised" ->
"personalized"); with only the run's and the encoder's words as known words, 6 were, among
them "charger" -> "charges". Only what is read is mended: the stored messages mended too
read everyday 0.963.
"""

from __future__ import annotations

import re
from collections import Counter
from functools import lru_cache
from typing import Iterable

from rapidfuzz import process
from rapidfuzz.distance import OSA

#: A run word must occur this often in the run's texts to be a target: the dataset's typos
#: occur once or twice each, real words many times (2,287 targets on the Bitext sample).
MIN_COUNT = 3
#: Shorter words are kept as they are: one edit turns a short word into another real one.
MIN_LENGTH = 5
_WORD = re.compile(r"[A-Za-z]+")


def max_distance(word: str) -> int:
    """The edits allowed to mend ``word``: 1 below 9 letters, 2 from 9 ("canclelations")."""
    return 1 if len(word) < 9 else 2


@lru_cache(maxsize=1)
def dictionary() -> frozenset[str]:
    """The English words and the encoder's whole words (0.2 s once a process)."""
    from spellchecker import SpellChecker

    from bigramlm.support.encoder import model_dir

    words = set(SpellChecker(language="en").word_frequency.dictionary)
    pieces = (model_dir() / "vocab.txt").read_text(encoding="utf-8").split()
    words.update(p for p in pieces if p.isalpha() and len(p) > 1)
    return frozenset(words)


class Speller:
    """Mends a message's typos towards ``targets``, the run's words with their counts."""

    def __init__(self, targets: dict[str, int]):
        self.targets = dict(targets)
        self._choices = list(self.targets)

    @classmethod
    def of(cls, texts: Iterable[str]) -> "Speller":
        """The speller of a run whose texts (messages and replies) are ``texts``."""
        counts = Counter(w.lower() for t in texts for w in _WORD.findall(t))
        return cls({w: n for w, n in counts.items() if n >= MIN_COUNT})

    def mend(self, text: str) -> str:
        """``text`` with each word that is no word mended (see the module docstring)."""
        return _WORD.sub(lambda m: self._word(m.group(0)), text)

    def _word(self, word: str) -> str:
        lower = word.lower()
        if len(lower) < MIN_LENGTH or lower in self.targets or lower in dictionary():
            return word
        found = process.extract(lower, self._choices, scorer=OSA.distance, score_cutoff=max_distance(lower), limit=8)
        if found:
            return min(found, key=lambda f: (f[1], -self.targets[f[0]]))[0]
        for cut in range(2, len(lower) - 1):
            if lower[:cut] in self.targets and lower[cut:] in self.targets:
                return f"{lower[:cut]} {lower[cut:]}"
        return word

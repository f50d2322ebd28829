"""Generated tokens as text: incremental detokenizing and stop strings.

``Detokenizer`` turns one row's tokens into text a token at a time, and never shows half
a character: a byte-level BPE token can end inside a multi-byte character, so the text
of the newest tokens is held back until it decodes whole (the incremental decoding that
streaming servers use). ``StopScanner`` holds back a tail that could still become a stop
string, and cuts the text before the first one. Both keep the invariant that the pieces
they hand out concatenate to exactly the text that decoding all tokens at once, then
cutting at the first stop string, gives.
"""

from __future__ import annotations

from typing import Sequence

from bigramlm.tokenization import Tokenizer

REPLACEMENT = "\ufffd"


class Detokenizer:
    """One row's tokens to text, a token at a time (two short decodes a token, or one
    lookup for characters)."""

    def __init__(self, tokenizer: Tokenizer):
        self.tokenizer = tokenizer
        self.ids: list[int] = []
        self.by_character = tokenizer.kind == "char"
        self._prefix = 0  # where the last emitted piece's tokens start
        self._read = 0  # where the tokens not yet emitted start

    def add(self, token: int) -> str:
        """The text that ``token`` completes (often all of its own text, sometimes nothing yet)."""
        self.ids.append(token)
        if self.by_character:
            return self.tokenizer.decode([token])
        shown = self.tokenizer.decode(self.ids[self._prefix : self._read])
        text = self.tokenizer.decode(self.ids[self._prefix :])
        if len(text) > len(shown) and not text.endswith(REPLACEMENT):
            self._prefix, self._read = self._read, len(self.ids)
            return text[len(shown) :]
        return ""

    def flush(self) -> str:
        """Whatever is held back (an incomplete character at the very end decodes as U+FFFD)."""
        if self.by_character or self._read == len(self.ids):
            return ""
        shown = self.tokenizer.decode(self.ids[self._prefix : self._read])
        text = self.tokenizer.decode(self.ids[self._prefix :])
        self._prefix = self._read = len(self.ids)
        return text[len(shown) :]


def cut_at_stop(text: str, stop: Sequence[str]) -> str | None:
    """``text`` up to its first stop string, or None when it holds none."""
    hits = [i for i in (text.find(s) for s in stop if s) if i >= 0]
    return text[: min(hits)] if hits else None


class StopScanner:
    """Streams one row's text, holding back any tail that could still become a stop string."""

    def __init__(self, stop: Sequence[str]):
        self.stop = [s for s in stop if s]
        self.hold = max((len(s) for s in self.stop), default=1) - 1
        self.text = ""
        self.emitted = 0
        self.done = False

    def feed(self, piece: str) -> str:
        """Add generated text; return the part that is now safe to show."""
        if not piece or self.done:
            return ""
        self.text += piece
        hits = [i for i in (self.text.find(s, max(0, self.emitted - self.hold)) for s in self.stop) if i >= 0]
        if hits:
            self.text = self.text[: min(hits)]
            self.done = True
            safe_end = len(self.text)
        else:
            safe_end = max(self.emitted, len(self.text) - self.hold)
        out = self.text[self.emitted : safe_end]
        self.emitted = safe_end
        return out

    def flush(self) -> str:
        out = self.text[self.emitted :]
        self.emitted = len(self.text)
        return out

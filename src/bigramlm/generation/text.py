"""Generated tokens as text: incremental detokenizing and stop strings.

``Detokenizer`` turns one row's tokens into text a token at a time, and never shows half
a character: a byte-level BPE token can end inside a multi-byte character, so the text
of the newest tokens is held back until it decodes whole (the incremental decoding that
streaming servers use). ``StopScanner`` holds back a tail that could still become a stop
string, and cuts the text before the first one. Both keep the invariant that the pieces
they hand out concatenate to exactly the text that decoding all tokens at once, then
cutting at the first stop string, gives. ``TextRow`` and ``IdRow`` are what one row of the
decode (``generation.engine``) keeps of its tokens. A ``Watch`` may end a text row early,
once what it has written makes it worthless whatever follows (a support draft that
loops: ``support.readability.DraftWatch``).
"""

from __future__ import annotations

from typing import Callable, Sequence

from bigramlm.tokenization import Tokenizer

REPLACEMENT = "\ufffd"

#: Fed a row's text piece by piece as it becomes safe to show (the pieces concatenate to
#: the row's text); True once the row is worthless whatever follows, and the row ends there.
Watch = Callable[[str], bool]


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


class TextRow:
    """One row's text and its stop strings. Streamed, it detokenizes every token and
    keeps the piece that is safe to show; otherwise it decodes only after a token whose
    text could start a stop string (``flagged``), so most steps decode nothing. A row
    with a ``watch`` is streamed, and ends once the watch says so (``doomed``)."""

    def __init__(self, tokenizer: Tokenizer, stop: Sequence[str], flagged: frozenset[int], streaming: bool,
                 watch: Watch | None = None):
        streaming = streaming or watch is not None
        self.tokenizer, self.stop, self.flagged, self.watch = tokenizer, stop, flagged, watch
        self.ids: list[int] = []
        self.cut: str | None = None
        self.detokenizer = Detokenizer(tokenizer) if streaming else None
        self.scanner = StopScanner(stop) if streaming else None
        self.pending = ""
        #: Whether the row's text is whole (``finish`` ran; a second call does nothing).
        self.finished = False
        #: Whether the watch ended the row.
        self.doomed = False

    def push(self, token: int) -> bool:
        """Add a token; False once the row has reached a stop string (or its watch ended it)."""
        self.ids.append(token)
        if self.scanner is not None and self.detokenizer is not None:
            piece = self.scanner.feed(self.detokenizer.add(token))
            self.pending += piece
            if self.watch is not None and piece and not self.scanner.done:
                self.doomed = self.watch(piece)
            return not self.scanner.done and not self.doomed
        if token in self.flagged:
            self.cut = cut_at_stop(self.tokenizer.decode(self.ids), self.stop)
        return self.cut is None

    def finish(self) -> None:
        if self.finished:
            return
        self.finished = True
        if self.scanner is not None and self.detokenizer is not None:
            self.pending += self.scanner.feed(self.detokenizer.flush()) + self.scanner.flush()

    def take(self) -> str:
        piece, self.pending = self.pending, ""
        return piece

    @property
    def text(self) -> str:
        if self.scanner is not None:
            return self.scanner.text
        return self.cut if self.cut is not None else self.tokenizer.decode(self.ids)


class IdRow:
    """One row's new token ids, handed out as they come (no stop strings)."""

    def __init__(self) -> None:
        self.pending: list[int] = []
        self.finished = False

    def push(self, token: int) -> bool:
        self.pending.append(token)
        return True

    def finish(self) -> None:
        self.finished = True

    def take(self) -> list[int]:
        ids, self.pending = self.pending, []
        return ids


Row = TextRow | IdRow


def stop_flags(tokenizer: Tokenizer, stop: Sequence[str]) -> frozenset[int]:
    """The token ids whose text contains the first character of a stop string (kept per
    tokenizer: decoding a 2,048-token vocabulary took 33 ms of every desk request)."""
    starts = frozenset(s[0] for s in stop if s)
    if not starts:
        return frozenset()
    if len(_FLAGS) > 8:  # a desk that reloaded many times: forget the old tokenizers
        _FLAGS.clear()
    known = _FLAGS.setdefault(id(tokenizer), (tokenizer, {}))[1]
    if starts not in known:
        texts = [tokenizer.decode([t]) for t in range(tokenizer.vocab_size)]
        known[starts] = frozenset(t for t, text in enumerate(texts) if any(ch in text for ch in starts))
    return known[starts]


#: id(tokenizer) -> (the tokenizer, kept alive so its id is not reused; start characters -> flagged ids).
_FLAGS: dict[int, tuple[Tokenizer, dict[frozenset[str], frozenset[int]]]] = {}

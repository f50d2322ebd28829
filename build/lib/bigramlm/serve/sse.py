"""Server-sent events: framing, joining the pieces of a batch, brand-filling while streaming."""

from __future__ import annotations

import json
from typing import Any, Callable, Iterable

from bigramlm.support.results import SuggestEvent, TokenEvent

#: Headers of every event stream: proxies and browsers must not cache it.
STREAM_HEADERS = {"Cache-Control": "no-store"}
MEDIA_TYPE = "text/event-stream"


def sse(data: Any, event: str | None = None) -> bytes:
    """One event: ``data`` as JSON (a string is sent as is, e.g. ``[DONE]``)."""
    payload = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {payload}\n\n".encode("utf-8")


def merge_token_events(batch: Iterable[SuggestEvent]) -> list[SuggestEvent]:
    """Join consecutive ``TokenEvent``s of the same candidate into one."""
    out: list[SuggestEvent] = []
    for event in batch:
        prev = out[-1] if out else None
        if isinstance(event, TokenEvent) and isinstance(prev, TokenEvent) and prev.index == event.index:
            out[-1] = TokenEvent(prev.index, prev.text + event.text)
        else:
            out.append(event)
    return out


def merge_pieces(batch: Iterable[tuple[int, Any]]) -> list[tuple[int, Any]]:
    """Join consecutive text pieces of the same candidate index (non-negative) in a batch."""
    out: list[tuple[int, Any]] = []
    for index, piece in batch:
        if out and out[-1][0] == index and index >= 0 and isinstance(piece, str) and isinstance(out[-1][1], str):
            out[-1] = (index, out[-1][1] + piece)
        else:
            out.append((index, piece))
    return out


def collect(items: Iterable[tuple[int, str]], n: int) -> list[str]:
    """The ``n`` texts that ``(index, piece)`` items add up to."""
    texts = [""] * n
    for index, piece in items:
        texts[index] += piece
    return texts


class PlaceholderStream:
    """Brand-fills a reply while it streams.

    Text from an unclosed ``{{`` on (or a trailing ``{``) is held back until the
    placeholder closes or can no longer be one (a newline, or longer than any name), so
    each released piece holds only whole placeholders and filling it piecewise gives
    the same text as filling the whole reply.
    """

    MAX_PLACEHOLDER = 84  # "{{" + a name of at most 80 characters + "}}"

    def __init__(self, fill: Callable[[str], str]):
        self.fill = fill
        self.pending = ""

    def _safe_end(self, text: str) -> int:
        start = text.rfind("{{")
        if start >= 0:
            tail = text[start:]
            if "}}" not in tail and "\n" not in tail and len(tail) < self.MAX_PLACEHOLDER:
                return start
        return len(text) - 1 if text.endswith("{") else len(text)

    def feed(self, piece: str) -> str:
        self.pending += piece
        cut = self._safe_end(self.pending)
        out, self.pending = self.pending[:cut], self.pending[cut:]
        return self.fill(out) if out else ""

    def flush(self) -> str:
        out, self.pending = self.pending, ""
        return self.fill(out) if out else ""

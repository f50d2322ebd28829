"""OpenAI-compatible answers: the raw model's candidates, chat replies, envelopes, usage, streams.

The routes in ``routes/openai.py`` validate and pick what to generate; this module turns
what the worker produces into OpenAI's bodies and server-sent chunks.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Callable, Iterator

from bigramlm.checkpoint import Run
from bigramlm.generation import Sampling, encode_prompt, stream
from bigramlm.generation.text import cut_at_stop
from bigramlm.serve.slots import GenerationTimeout, Job
from bigramlm.serve.sse import PlaceholderStream, merge_pieces, sse
from bigramlm.support.results import AssistResult
from bigramlm.tokenization import normalize_for_vocab


@dataclass
class V1Request:
    """What one ``/v1`` request asks of the generator."""

    n: int
    max_tokens: int
    temperature: float
    top_p: float
    seed: int | None
    stops: list[str] = field(default_factory=list)


def raw_candidates(run: Run, prompt: str, s: V1Request, job: Job) -> Iterator[tuple[int, str]]:
    """``(index, piece)`` of ``s.n`` continuations of ``prompt`` by the run's model."""
    ids = encode_prompt(run.tokenizer, normalize_for_vocab(prompt, run.tokenizer)[0])
    yield from stream(run.model, run.tokenizer, [ids] * s.n, s.max_tokens, Sampling(s.temperature, None, s.top_p), s.seed,
                      s.stops, check=job.check, within_block=False)


def count_tokens(run: Run, text: str) -> int:
    return int(len(run.tokenizer.encode(text, on_unknown="replace"))) if text else 0


def finish_reason(run: Run, text: str, max_tokens: int) -> str:
    return "length" if count_tokens(run, text) >= max_tokens else "stop"


def within_tokens(run: Run, text: str, max_tokens: int) -> str | None:
    """The longest start of ``text`` of at most ``max_tokens`` tokens, or None where it all fits.
    A binary search over lengths: the count grows with the length, for any tokenizer."""
    if count_tokens(run, text) <= max_tokens:
        return None
    low, high = 0, len(text)  # text[:low] fits, text[:high] does not
    while high - low > 1:
        mid = (low + high) // 2
        low, high = (mid, high) if count_tokens(run, text[:mid]) <= max_tokens else (low, mid)
    return text[:low]


def usage(run: Run, prompts: list[str], completions: list[str]) -> dict[str, int]:
    prompt_tokens = sum(count_tokens(run, p) for p in prompts)
    completion_tokens = sum(count_tokens(run, t) for t in completions)
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens, "total_tokens": prompt_tokens + completion_tokens}


class Envelope:
    """The fields every body and chunk of one answer share: id, object, created, model.

    ``stream_usage`` (``stream_options.include_usage``): every chunk carries ``usage: null``
    and a last chunk, with no choices, the usage of the whole request, as OpenAI does.
    """

    def __init__(self, prefix: str, obj: str, model: str, stream_usage: bool = False):
        self.id = f"{prefix}-{uuid.uuid4().hex}"
        self.object = obj
        self.created = int(time.time())
        self.model = model
        self.stream_usage = stream_usage

    def body(self, choices: list[dict[str, Any]], obj: str | None = None, **extra: Any) -> dict[str, Any]:
        return {"id": self.id, "object": obj or self.object, "created": self.created, "model": self.model,
                "choices": choices, **extra}

    def chunk(self, choices: list[dict[str, Any]]) -> bytes:
        return sse(self.body(choices, usage=None) if self.stream_usage else self.body(choices))

    def usage_chunk(self, counts: dict[str, int]) -> bytes:
        return sse(self.body([], usage=counts))


def timeout_chunk(timeout_s: float) -> bytes:
    return sse({"error": {"message": f"generation took longer than {timeout_s:g} s", "type": "timeout", "code": 504}})


class ChatReplies:
    """The ``n`` replies of a chat answer. From the raw model, as they grow: raw text (for
    finish reasons and usage) and brand-filled text (what the client sees), filled
    piecewise while streaming. From the assistant, its result: checked suggestions, which
    can only be sent whole once chosen (a draft may be replaced by a resolved reply)."""

    def __init__(self, n: int, fill: Callable[[str], str] | None, stops: list[str] | None = None,
                 ignored_messages: int = 0):
        self.stops = stops or []
        #: Messages the assistant did not read (neither a turn of the conversation nor its task).
        self.ignored_messages = ignored_messages
        self.raw = [""] * n
        self.filled = [""] * n
        self._fillers = [PlaceholderStream(fill) for _ in range(n)] if fill is not None else None
        self.result: AssistResult | None = None

    def feed(self, index: int, piece: Any) -> str:
        """Add a piece of reply ``index`` (or the assistant's result, index -1); the text to show now."""
        if index < 0:
            self.result = piece
            return ""
        self.raw[index] += piece
        shown = self._fillers[index].feed(piece) if self._fillers is not None else piece
        self.filled[index] += shown
        return shown

    def consume(self, items: Iterator[tuple[int, Any]]) -> None:
        """Take every piece (in the worker thread, for an answer that is not streamed)."""
        for index, piece in items:
            self.feed(index, piece)
        self.flush()

    def flush(self) -> list[tuple[int, str]]:
        """The held-back ends of the replies (an unclosed ``{{`` at the end of one)."""
        out = []
        for index, filler in enumerate(self._fillers or []):
            rest = filler.flush()
            if rest:
                self.filled[index] += rest
                out.append((index, rest))
        return out

    def ordered(self, run: Run, max_tokens: int) -> list[tuple[str, str]]:
        """``(content, finish_reason)`` of the ``n`` choices. From the assistant: its
        suggestions (checked, team-edited, brand-filled), then its readable drafts that were
        not shown; where that is fewer than ``n``, the best again (as an API with ``n`` > 1 and
        temperature 0 repeats itself)."""
        if self.result is None:
            return [(text, finish_reason(run, raw, max_tokens)) for text, raw in zip(self.filled, self.raw)]
        fill = self._fillers[0].fill if self._fillers else (lambda text: text)
        out = [(s.filled_text, "stop" if s.source != "model" else finish_reason(run, s.text, max_tokens))
               for s in self.result.suggestions]
        shown = {s.text for s in self.result.suggestions}
        out += [(fill(d.text), finish_reason(run, d.text, max_tokens)) for d in self.result.drafts
                if d.readable and d.text not in shown]
        # ``stop`` holds for every choice, a resolved case's reply too (the drafts stopped there already).
        out = [(cut, "stop") if (cut := cut_at_stop(text, self.stops)) is not None else (text, reason) for text, reason in out]
        # So does ``max_tokens``: a resolved reply, a rule's or the brand's filling can be longer than the drafts.
        out = [(cut, "length") if (cut := within_tokens(run, text, max_tokens)) is not None else (text, reason)
               for text, reason in out]
        while out and len(out) < len(self.raw):
            out.append(out[0])
        return out[: len(self.raw)] or [("", "stop")] * len(self.raw)


def chat_body(env: Envelope, replies: ChatReplies, run: Run, prompt: str, max_tokens: int) -> dict[str, Any]:
    ordered = replies.ordered(run, max_tokens)
    choices = [{"index": k, "message": {"role": "assistant", "content": text}, "logprobs": None, "finish_reason": reason}
               for k, (text, reason) in enumerate(ordered)]
    body = env.body(choices, "chat.completion")
    result = replies.result
    if result is not None:
        body["bigramlm"] = {"intent": result.intent, "category": result.category,
                            "intent_probability": result.understanding.intent_probability,
                            "messages_read": "the conversation", "messages_ignored": replies.ignored_messages}
    body["usage"] = usage(run, [prompt], [text for text, _ in ordered])  # the tokens of the choices sent
    return body


async def chat_stream(items: AsyncIterator[list[Any]], env: Envelope, replies: ChatReplies, run: Run, prompt: str,
                      max_tokens: int, timeout_s: float) -> AsyncIterator[bytes]:
    n = len(replies.raw)
    for i in range(n):
        yield env.chunk([{"index": i, "delta": {"role": "assistant", "content": ""}, "logprobs": None, "finish_reason": None}])
    try:
        async for batch in items:
            for index, piece in merge_pieces(batch):
                shown = replies.feed(index, piece)
                if shown:
                    yield env.chunk([{"index": index, "delta": {"content": shown}, "logprobs": None, "finish_reason": None}])
        for index, rest in replies.flush():
            yield env.chunk([{"index": index, "delta": {"content": rest}, "logprobs": None, "finish_reason": None}])
        ordered = replies.ordered(run, max_tokens)
        for i, (text, reason) in enumerate(ordered):
            if replies.result is not None and text:  # the assistant's choices go out whole, once chosen
                yield env.chunk([{"index": i, "delta": {"content": text}, "logprobs": None, "finish_reason": None}])
            yield env.chunk([{"index": i, "delta": {}, "logprobs": None, "finish_reason": reason}])
        if env.stream_usage:
            yield env.usage_chunk(usage(run, [prompt], [text for text, _ in ordered]))
    except GenerationTimeout:
        yield timeout_chunk(timeout_s)
    yield sse("[DONE]")


def completion_body(env: Envelope, texts: list[str], run: Run, prompts: list[str], max_tokens: int) -> dict[str, Any]:
    choices = [{"text": t, "index": i, "logprobs": None, "finish_reason": finish_reason(run, t, max_tokens)}
               for i, t in enumerate(texts)]
    return env.body(choices, usage=usage(run, prompts, texts))


async def completion_stream(items: AsyncIterator[list[Any]], env: Envelope, total: int, run: Run, prompts: list[str],
                            max_tokens: int, timeout_s: float) -> AsyncIterator[bytes]:
    texts = [""] * total
    try:
        async for batch in items:
            for index, piece in merge_pieces(batch):
                texts[index] += piece
                yield env.chunk([{"text": piece, "index": index, "logprobs": None, "finish_reason": None}])
        for i, t in enumerate(texts):
            yield env.chunk([{"text": "", "index": i, "logprobs": None, "finish_reason": finish_reason(run, t, max_tokens)}])
        if env.stream_usage:
            yield env.usage_chunk(usage(run, prompts, texts))
    except GenerationTimeout:
        yield timeout_chunk(timeout_s)
    yield sse("[DONE]")

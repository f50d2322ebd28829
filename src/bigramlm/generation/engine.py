"""Text generation for any model of the shared interface: one decode path.

``generate`` continues many prompts side by side (a whole evaluation split, or one
message's candidates) and returns their texts; ``stream`` is the same decode handing out
each row's text as it grows; ``generate_ids`` and ``generate_text`` are its one-stream
case. All of them run ``_decode``: the prompts are sorted by length and decoded
``rows_per_batch`` at a time over the fastest decoder the model supports
(``decoding.make_decoder``: Markov table, KV cache, or re-run window; prompts of
different lengths are left-padded and the cache masks the padding), and a row that
reaches a stop string leaves the batch (a quarter of the batch at a time); a batch ends
where its longest row would outgrow the model's block, unless ``within_block`` is off
(a free-running sample slides its window instead). Rows marked ``greedy`` take the
likeliest token while the others sample, so one decode gives a model's best guess
beside its alternatives. A missing seed is a random one.

The one exception is a single stream of a Markov chain with no network to run (the
bigram's ``sample``): it walks the chain from pools of pre-drawn tokens
(``MarkovChainSampler``) at millions of tokens per second.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator, Sequence

import numpy as np
import torch

from bigramlm.generation.checks import check_new_tokens, check_sampling, check_seed
from bigramlm.generation.decoding import make_decoder
from bigramlm.generation.filters import draw_tokens, filter_logits
from bigramlm.generation.markov import MarkovChainSampler
from bigramlm.generation.text import Detokenizer, StopScanner, cut_at_stop
from bigramlm.models.base import LanguageModel
from bigramlm.tokenization import Tokenizer

#: Finished rows leave the batch once they are this fraction of it (1/4): every
#: compaction copies the whole KV cache, and compacting at each finished row took 23% of
#: a support evaluation's decode; a finished row decoded a few steps more costs less.
COMPACT_SHARE = 4


@dataclass(frozen=True)
class Sampling:
    """How the next token is chosen: temperature (0 is greedy), top-k, top-p; checked once."""

    temperature: float = 1.0
    top_k: int | None = None
    top_p: float | None = None

    def __post_init__(self) -> None:
        check_sampling(self.temperature, self.top_k, self.top_p)


def encode_prompt(tokenizer: Tokenizer, text: str) -> list[int]:
    """A prompt's ids; a character outside the vocabulary becomes the replacement character."""
    return [int(t) for t in tokenizer.encode(text, on_unknown="replace")] if text else []


def _generator(seed: int | None) -> torch.Generator:
    check_seed(seed)
    generator = torch.Generator()
    if seed is None:
        generator.seed()
    else:
        generator.manual_seed(seed)
    return generator


# --- what a row keeps of its tokens ----------------------------------------------------------


class _TextRow:
    """One row's text and its stop strings. Streamed, it detokenizes every token and
    keeps the piece that is safe to show; otherwise it decodes only after a token whose
    text could start a stop string (``flagged``), so most steps decode nothing."""

    def __init__(self, tokenizer: Tokenizer, stop: Sequence[str], flagged: frozenset[int], streaming: bool):
        self.tokenizer, self.stop, self.flagged = tokenizer, stop, flagged
        self.ids: list[int] = []
        self.cut: str | None = None
        self.detokenizer = Detokenizer(tokenizer) if streaming else None
        self.scanner = StopScanner(stop) if streaming else None
        self.pending = ""

    def push(self, token: int) -> bool:
        """Add a token; False once the row has reached a stop string."""
        self.ids.append(token)
        if self.scanner is not None and self.detokenizer is not None:
            self.pending += self.scanner.feed(self.detokenizer.add(token))
            return not self.scanner.done
        if token in self.flagged:
            self.cut = cut_at_stop(self.tokenizer.decode(self.ids), self.stop)
        return self.cut is None

    def finish(self) -> None:
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


class _IdRow:
    """One row's new token ids, handed out as they come (no stop strings)."""

    def __init__(self) -> None:
        self.pending: list[int] = []

    def push(self, token: int) -> bool:
        self.pending.append(token)
        return True

    def finish(self) -> None:
        pass

    def take(self) -> list[int]:
        ids, self.pending = self.pending, []
        return ids


_Row = _TextRow | _IdRow


def _stop_flags(tokenizer: Tokenizer, stop: Sequence[str]) -> frozenset[int]:
    """The token ids whose text contains the first character of a stop string."""
    starts = {s[0] for s in stop if s}
    if not starts:
        return frozenset()
    return frozenset(t for t in range(tokenizer.vocab_size) if any(ch in tokenizer.decode([t]) for ch in starts))


# --- the decode -------------------------------------------------------------------------------


@dataclass
class _Decode:
    """One decode's settings, shared by its batches."""

    model: LanguageModel
    max_new_tokens: int
    sampling: Sampling
    generator: torch.Generator
    kv_cache: bool
    check: Callable[[], None] | None
    #: Stop a batch where its longest row would outgrow the context the model was trained
    #: on (replies, which end long before; a reply that long is a loop). A free-running
    #: sample (``generate_ids``) slides its window past the block instead.
    within_block: bool = True


@torch.no_grad()
def _decode(job: _Decode, contexts: Sequence[Sequence[int]], rows: Sequence[_Row], greedy: Sequence[bool],
            rows_per_batch: int, on_progress: Callable[[int], None] | None) -> Iterator[None]:
    """Decode every row (longest prompts together, so little padding is computed);
    yields after every step, so a caller can hand out what the rows gathered."""
    order = sorted(range(len(contexts)), key=lambda i: -len(contexts[i]))
    was_training = job.model.training
    job.model.eval()
    try:
        for start in range(0, len(order), rows_per_batch):
            chunk = order[start : start + rows_per_batch]
            yield from _decode_batch(job, [contexts[i] for i in chunk], [rows[i] for i in chunk],
                                     torch.tensor([bool(greedy[i]) for i in chunk]))
            if on_progress is not None:
                on_progress(min(start + rows_per_batch, len(order)))
    finally:
        job.model.train(was_training)


def _decode_batch(job: _Decode, contexts: list[Sequence[int]], rows: list[_Row], greedy_rows: torch.Tensor) -> Iterator[None]:
    """One batch of rows; a finished row is dropped from the decoder once a quarter of the batch has finished."""
    budget = job.max_new_tokens
    if job.within_block and not job.model.markov:
        budget = min(budget, max(1, job.model.get_block_size() - max(len(c) for c in contexts)))
    if job.max_new_tokens > 0:
        decoder = make_decoder(job.model, [list(c) for c in contexts], job.kv_cache)
        slots: list[int | None] = list(range(len(rows)))  # the row each decoder row decodes; None: finished
        for step in range(budget):
            if job.check is not None:
                job.check()
            tokens = _next_tokens(decoder.logits, job.sampling, job.generator, greedy_rows)
            for slot, token in enumerate(tokens.tolist()):
                row = slots[slot]
                if row is not None and not rows[row].push(token):
                    slots[slot] = None
            live = [slot for slot, row in enumerate(slots) if row is not None]
            if not live or step + 1 == budget:
                break
            yield
            if len(slots) - len(live) >= max(1, len(slots) // COMPACT_SHARE):
                keep = torch.tensor(live, dtype=torch.long)
                decoder.keep_rows(keep)
                tokens, slots, greedy_rows = tokens[keep], [slots[s] for s in live], greedy_rows[keep]
            decoder.push(tokens)
    for row in rows:
        row.finish()
    yield


def _next_tokens(logits: torch.Tensor, sampling: Sampling, generator: torch.Generator, greedy_rows: torch.Tensor) -> torch.Tensor:
    if sampling.temperature == 0:
        return logits.argmax(dim=-1).cpu()
    tokens = draw_tokens(logits, sampling.temperature, sampling.top_k, sampling.top_p, generator)
    if bool(greedy_rows.any()):
        tokens = torch.where(greedy_rows, logits.argmax(dim=-1).cpu(), tokens)
    return tokens


def _contexts(prompts: Sequence[Sequence[int]], start_id: int) -> list[list[int]]:
    return [[int(i) for i in np.asarray(p).reshape(-1)] or [start_id] for p in prompts]


def _check(max_new_tokens: int, rows_per_batch: int) -> None:
    from bigramlm.errors import BigramLMError

    check_new_tokens(max_new_tokens)
    if rows_per_batch < 1:
        raise BigramLMError(f"rows_per_batch must be at least 1 (got {rows_per_batch})", param="rows_per_batch")


def stream(model: LanguageModel, tokenizer: Tokenizer, prompts: Sequence[Sequence[int]], max_new_tokens: int,
           sampling: Sampling = Sampling(), seed: int | None = None, stop: Sequence[str] = (),
           greedy: Sequence[bool] | None = None, rows_per_batch: int = 64, kv_cache: bool = True,
           check: Callable[[], None] | None = None, within_block: bool = True) -> Iterator[tuple[int, str]]:
    """``(row, piece)`` as each prompt's continuation grows; a row's pieces concatenate to
    its text in ``generate`` (cut before its first stop string).

    ``check`` is called before every step (a deadline or a hung-up client raises there).
    ``within_block=False`` lets a continuation run past the model's block (its window slides).
    """
    _check(max_new_tokens, rows_per_batch)
    rows = [_TextRow(tokenizer, stop, frozenset(), streaming=True) for _ in prompts]
    job = _Decode(model, max_new_tokens, sampling, _generator(seed), kv_cache, check, within_block)
    for _ in _decode(job, _contexts(prompts, tokenizer.start_id), rows, greedy or [False] * len(rows), rows_per_batch, None):
        for index, row in enumerate(rows):
            if row.pending:
                yield index, row.take()


def generate(model: LanguageModel, tokenizer: Tokenizer, prompts: Sequence[Sequence[int]], max_new_tokens: int,
             sampling: Sampling = Sampling(), seed: int | None = None, stop: Sequence[str] = (),
             greedy: Sequence[bool] | None = None, rows_per_batch: int = 64, kv_cache: bool = True,
             check: Callable[[], None] | None = None, on_progress: Callable[[int], None] | None = None) -> list[str]:
    """The continuation of each prompt (not including it), cut before its first stop
    string; ``greedy[i]`` makes row ``i`` greedy while the others sample."""
    _check(max_new_tokens, rows_per_batch)
    flags = _stop_flags(tokenizer, stop)
    rows = [_TextRow(tokenizer, stop, flags, streaming=False) for _ in prompts]
    job = _Decode(model, max_new_tokens, sampling, _generator(seed), kv_cache, check)
    for _ in _decode(job, _contexts(prompts, tokenizer.start_id), rows, greedy or [False] * len(rows), rows_per_batch, on_progress):
        pass
    return [row.text for row in rows]


def generate_ids(
    model: LanguageModel,
    prompt_ids: Sequence[int] | np.ndarray,
    max_new_tokens: int,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    seed: int | None = None,
    start_id: int = 0,
    kv_cache: bool = True,
) -> Iterator[list[int]]:
    """Yield new token ids in chunks, continuing ``prompt_ids`` (or ``start_id``).

    ``kv_cache=False`` forces the naive re-run of the window (for comparisons)."""
    sampling = Sampling(temperature, top_k, top_p)
    _check(max_new_tokens, 1)
    context = _contexts([prompt_ids], start_id)[0]
    if max_new_tokens == 0:
        return
    if model.markov:
        probs = filter_logits(model.transition_logits().detach().cpu(), temperature, top_k, top_p)
        yield from MarkovChainSampler(probs.numpy(), seed=seed).walk(context[-1], max_new_tokens)
        return
    row = _IdRow()
    job = _Decode(model, max_new_tokens, sampling, _generator(seed), kv_cache, None, within_block=False)
    for _ in _decode(job, [context], [row], [False], 1, None):
        ids = row.take()
        if ids:
            yield ids


def generate_text(
    model: LanguageModel,
    tokenizer: Tokenizer,
    prompt: str = "",
    max_new_tokens: int = 500,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    seed: int | None = None,
    kv_cache: bool = True,
    stop: Sequence[str] = (),
) -> Iterator[str]:
    """Stream decoded text that continues ``prompt`` (not repeated), ending before the first stop string."""
    prompt_ids = tokenizer.encode(prompt) if prompt else []
    if not model.markov:
        for _, piece in stream(model, tokenizer, [prompt_ids], max_new_tokens, Sampling(temperature, top_k, top_p),
                               seed, stop, kv_cache=kv_cache, within_block=False):
            yield piece
        return
    scanner = StopScanner(stop)
    for chunk in generate_ids(model, prompt_ids, max_new_tokens, temperature, top_k, top_p, seed, tokenizer.start_id):
        safe = scanner.feed(tokenizer.decode(chunk))
        if safe:
            yield safe
        if scanner.done:
            return
    rest = scanner.flush()
    if rest:
        yield rest

"""Text generation for any model of the shared interface: one decode path.

``generate`` continues many prompts side by side (a whole evaluation split, or one
message's candidates) and returns their texts; ``stream`` is the same decode handing out
each row's text as it grows; ``generate_ids`` and ``generate_text`` are its one-stream
case. All of them run ``_decode``: the prompts are sorted by length and decoded
``rows_per_batch`` at a time over the fastest decoder the model supports
(``decoding.make_decoder``: Markov table, KV cache, or re-run window; prompts of
different lengths are left-padded and the cache masks the padding; ``batch.DecodeBatch``),
and a row that reaches a stop string leaves the batch (a quarter of the batch at a
time); a row ends where it would outgrow the model's block, unless ``within_block`` is
off (a free-running sample slides its window instead). Rows marked ``greedy`` take the
likeliest token while the others sample, so one decode gives a model's best guess
beside its alternatives. A missing seed is a random one.

The one exception is a single stream of a Markov chain with no network to run (the
bigram's ``sample``): it walks the chain from pools of pre-drawn tokens
(``MarkovChainSampler``) at millions of tokens per second.
"""

from __future__ import annotations

from typing import Callable, Iterator, Sequence

import numpy as np
import torch

from bigramlm.generation.batch import Decode, DecodeBatch, NewRows, Sampling, prompt_contexts, speculates
from bigramlm.generation.checks import check_decode, decode_seed
from bigramlm.generation.filters import filter_logits
from bigramlm.generation.markov import MarkovChainSampler
from bigramlm.generation.speculation import DecodeStats, Speculation
from bigramlm.generation.text import IdRow, Row, StopScanner, TextRow, Watch, stop_flags
from bigramlm.models.base import LanguageModel
from bigramlm.tokenization import Tokenizer

__all__ = ["Sampling", "encode_prompt", "generate", "generate_ids", "generate_text", "speculates", "stream"]


def encode_prompt(tokenizer: Tokenizer, text: str) -> list[int]:
    """A prompt's ids; a character outside the vocabulary becomes the replacement character."""
    return [int(t) for t in tokenizer.encode(text, on_unknown="replace")] if text else []


# --- the decode -------------------------------------------------------------------------------


@torch.no_grad()
def _decode(job: Decode, contexts: Sequence[Sequence[int]], rows: Sequence[Row], greedy: Sequence[bool],
            rows_per_batch: int, on_progress: Callable[[int], None] | None,
            sources: Sequence[Sequence[Sequence[int]]] | None = None) -> Iterator[None]:
    """Decode every row (longest prompts together, so little padding is computed);
    yields after every step, so a caller can hand out what the rows gathered."""
    order = sorted(range(len(contexts)), key=lambda i: -len(contexts[i]))
    was_training = job.model.training
    job.model.eval()
    try:
        for start in range(0, len(order), rows_per_batch):
            chunk = order[start : start + rows_per_batch]
            new = NewRows(chunk, [contexts[i] for i in chunk], [rows[i] for i in chunk], [bool(greedy[i]) for i in chunk],
                          [sources[i] if sources is not None else () for i in chunk], [job.seed] * len(chunk), chunk,
                          [job.max_new_tokens] * len(chunk))
            yield from DecodeBatch(job, new).run()
            if on_progress is not None:
                on_progress(min(start + rows_per_batch, len(order)))
    finally:
        job.model.train(was_training)


def stream(model: LanguageModel, tokenizer: Tokenizer, prompts: Sequence[Sequence[int] | np.ndarray],
           max_new_tokens: int, sampling: Sampling = Sampling(), seed: int | None = None, stop: Sequence[str] = (),
           greedy: Sequence[bool] | None = None, rows_per_batch: int = 64, kv_cache: bool = True,
           check: Callable[[], None] | None = None, within_block: bool = True,
           speculate: Speculation | None = Speculation(), sources: Sequence[Sequence[Sequence[int]]] | None = None,
           stats: DecodeStats | None = None, watches: Sequence[Watch] | None = None) -> Iterator[tuple[int, str]]:
    """``(row, piece)`` as each prompt's continuation grows; a row's pieces concatenate to
    its text in ``generate`` (cut before its first stop string).

    ``check`` is called before every step (a deadline or a hung-up client raises there).
    ``within_block=False`` lets a continuation run past the model's block (its window slides).
    ``speculate`` drafts tokens from ``sources[i]`` (token lists row ``i`` is likely to
    repeat) and the row's own text (None: one token per pass); ``stats`` is filled in.
    ``watches[i]`` may end row ``i`` early (``text.Watch``).
    """
    check_decode(max_new_tokens, rows_per_batch)
    rows = [TextRow(tokenizer, stop, frozenset(), streaming=True, watch=watches[i] if watches else None)
            for i in range(len(prompts))]
    job = Decode(model, max_new_tokens, sampling, decode_seed(seed), kv_cache, check, within_block, speculate,
                  stats if stats is not None else DecodeStats())
    for _ in _decode(job, prompt_contexts(prompts, tokenizer.start_id), rows, greedy or [False] * len(rows), rows_per_batch,
                     None, sources):
        for index, row in enumerate(rows):
            if row.pending:
                yield index, row.take()


def generate(model: LanguageModel, tokenizer: Tokenizer, prompts: Sequence[Sequence[int]], max_new_tokens: int,
             sampling: Sampling = Sampling(), seed: int | None = None, stop: Sequence[str] = (),
             greedy: Sequence[bool] | None = None, rows_per_batch: int = 64, kv_cache: bool = True,
             check: Callable[[], None] | None = None, on_progress: Callable[[int], None] | None = None,
             speculate: Speculation | None = Speculation(), sources: Sequence[Sequence[Sequence[int]]] | None = None,
             stats: DecodeStats | None = None, watches: Sequence[Watch] | None = None) -> list[str]:
    """The continuation of each prompt (not including it), cut before its first stop
    string; ``greedy[i]`` makes row ``i`` greedy while the others sample. ``speculate``,
    ``sources``, ``stats`` and ``watches`` as in ``stream``."""
    check_decode(max_new_tokens, rows_per_batch)
    flags = stop_flags(tokenizer, stop)
    rows = [TextRow(tokenizer, stop, flags, streaming=False, watch=watches[i] if watches else None)
            for i in range(len(prompts))]
    job = Decode(model, max_new_tokens, sampling, decode_seed(seed), kv_cache, check, True, speculate,
                  stats if stats is not None else DecodeStats())
    for _ in _decode(job, prompt_contexts(prompts, tokenizer.start_id), rows, greedy or [False] * len(rows), rows_per_batch,
                     on_progress, sources):
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
    check_decode(max_new_tokens, 1)
    context = prompt_contexts([prompt_ids], start_id)[0]
    if max_new_tokens == 0:
        return
    if model.markov:
        probs = filter_logits(model.transition_logits().detach().cpu(), temperature, top_k, top_p)
        yield from MarkovChainSampler(probs.numpy(), seed=seed).walk(context[-1], max_new_tokens)
        return
    row = IdRow()
    job = Decode(model, max_new_tokens, sampling, decode_seed(seed), kv_cache, None, within_block=False)
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
    prompt_ids: Sequence[int] | np.ndarray = tokenizer.encode(prompt) if prompt else []
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

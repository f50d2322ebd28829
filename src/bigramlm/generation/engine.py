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

import secrets
from dataclasses import dataclass, field
from typing import Callable, Iterator, Sequence

import numpy as np
import torch

from bigramlm.generation.checks import check_new_tokens, check_sampling, check_seed
from bigramlm.generation.decoding import make_decoder
from bigramlm.generation.filters import draw_tokens, filter_logits, uniforms
from bigramlm.generation.markov import MarkovChainSampler
from bigramlm.generation.speculation import DecodeStats, Drafter, Speculation
from bigramlm.generation.text import IdRow, Row, StopScanner, TextRow, stop_flags
from bigramlm.models.base import LanguageModel
from bigramlm.tokenization import Tokenizer

#: Finished rows leave the batch once they are this fraction of it (1/4): every
#: compaction copies the whole KV cache, and compacting at each finished row took 23% of
#: a support evaluation's decode; a finished row decoded a few steps more costs less.
COMPACT_SHARE = 4


#: Batches of at most this many rows speculate; bigger ones decode one token per pass. On
#: the desk's 3 rows, verifying drafts about breaks even (benchmarks/speculation.py: 5.94 s
#: against 6.03 s plain over 20 requests, 5.58 against 5.36 in a rerun; the desk's p50 526
#: against 556 ms); a pass over 192 rows (the evaluation's batches) is bound by arithmetic,
#: and speculating made it slower (10.94 s against 8.11 s).
SPECULATE_ROWS = 16


def speculates(rows: int) -> bool:
    """Whether a batch of ``rows`` rows verifies drafts (``SPECULATE_ROWS``); a caller that
    makes the drafts' sources asks first, so a decode that will not read them costs nothing."""
    return rows <= SPECULATE_ROWS


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


def _seed(seed: int | None) -> int:
    """The decode's seed: the one given, or a random one."""
    check_seed(seed)
    return secrets.randbits(63) if seed is None else int(seed)


# --- the decode -------------------------------------------------------------------------------


@dataclass
class _Decode:
    """One decode's settings, shared by its batches."""

    model: LanguageModel
    max_new_tokens: int
    sampling: Sampling
    #: Each token's draw is a function of (seed, row, position): ``filters.uniforms``.
    seed: int
    kv_cache: bool
    check: Callable[[], None] | None
    #: Stop a batch where its longest row would outgrow the context the model was trained
    #: on (replies, which end long before; a reply that long is a loop). A free-running
    #: sample (``generate_ids``) slides its window past the block instead.
    within_block: bool = True
    #: Draft tokens from ``sources`` and each row's own text, verified in one pass (None: off).
    speculate: Speculation | None = None
    stats: DecodeStats = field(default_factory=DecodeStats)


@torch.no_grad()
def _decode(job: _Decode, contexts: Sequence[Sequence[int]], rows: Sequence[Row], greedy: Sequence[bool],
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
            batch = _Batch(job, chunk, [contexts[i] for i in chunk], [rows[i] for i in chunk],
                           torch.tensor([bool(greedy[i]) for i in chunk]),
                           [sources[i] for i in chunk] if sources is not None else None)
            yield from batch.run()
            if on_progress is not None:
                on_progress(min(start + rows_per_batch, len(order)))
    finally:
        job.model.train(was_training)


class _Batch:
    """One batch of rows. Each row holds one ``pending`` token, drawn but not yet run
    through the model; a pass runs it, with a draft after it where one is found, and
    draws the next token at every position, keeping the draws while they equal the draft
    (``generation.speculation``). A finished row leaves the decoder once a quarter of the
    batch has finished."""

    def __init__(self, job: _Decode, ids: list[int], contexts: list[Sequence[int]], rows: list[Row],
                 greedy_rows: torch.Tensor, sources: list[Sequence[Sequence[int]]] | None):
        self.job, self.ids, self.rows, self.greedy_rows = job, ids, rows, greedy_rows
        #: ``greedy_rows`` as a list, for the per-token bookkeeping (indexing a tensor per token costs more).
        self.greedy = greedy_rows.tolist()
        self.budget = job.max_new_tokens
        if job.within_block and not job.model.markov:
            self.budget = min(self.budget, max(1, job.model.get_block_size() - max(len(c) for c in contexts)))
        self.contexts = contexts
        self.counts = [0] * len(rows)
        self.drafter: Drafter | None = None
        if (job.speculate is not None and job.within_block and job.kv_cache and job.model.supports_kv_cache
                and speculates(len(rows))):
            self.drafter = Drafter(job.speculate, contexts, sources if sources is not None else [()] * len(rows))

    def run(self) -> Iterator[None]:
        job = self.job
        if job.max_new_tokens > 0:
            self.decoder = make_decoder(job.model, [list(c) for c in self.contexts], job.kv_cache)
            self.slots: list[int | None] = list(range(len(self.rows)))  # the row each decoder row decodes
            pending = self._draw(self.decoder.logits, 1)
            for slot, token in enumerate(pending.tolist()):
                self._push(slot, [token])
            while any(row is not None for row in self.slots):
                yield
                pending = self._compact(pending)
                if job.check is not None:
                    job.check()
                pending = self._step(pending)
        for row in self.rows:
            row.finish()
        yield

    def _push(self, slot: int, tokens: list[int]) -> None:
        """Hand a decoder row's new tokens to its row, up to its stop string or budget."""
        row = self.slots[slot]
        if row is None:
            return
        stats, greedy = self.job.stats, self.greedy[slot]
        for token in tokens:
            self.counts[row] += 1
            stats.tokens += 1
            stats.greedy_tokens += greedy
            if self.drafter is not None:
                self.drafter.push(row, token)
            if not self.rows[row].push(token) or self.counts[row] >= self.budget:
                self.slots[slot] = None
                return

    def _compact(self, pending: torch.Tensor) -> torch.Tensor:
        live = [slot for slot, row in enumerate(self.slots) if row is not None]
        if len(self.slots) - len(live) < max(1, len(self.slots) // COMPACT_SHARE):
            return pending
        keep = torch.tensor(live, dtype=torch.long)
        self.decoder.keep_rows(keep)
        self.slots, self.greedy_rows = [self.slots[s] for s in live], self.greedy_rows[keep]
        self.greedy = [self.greedy[s] for s in live]
        return pending[keep]

    def _drafts(self) -> list[list[int]]:
        assert self.drafter is not None
        # A drafter runs over a CachedDecoder only; the pending token takes one place of the room.
        room = self.decoder.room(1 + self.drafter.settings.draft_tokens) - 1  # type: ignore[union-attr]
        drafts = [self.drafter.propose(row, min(room, self.budget - self.counts[row])) if row is not None else []
                  for row in self.slots]
        return drafts

    def _step(self, pending: torch.Tensor) -> torch.Tensor:
        """One pass: the pending tokens (and drafts); returns the next pending tokens."""
        stats = self.job.stats
        stats.passes += 1
        stats.greedy_passes += sum(1 for row, greedy in zip(self.slots, self.greedy) if row is not None and greedy)
        if self.drafter is not None:
            return self._verify(pending, self._drafts())
        pending = self._draw(self.decoder.push(pending), 1)
        for slot, token in enumerate(pending.tolist()):
            self._push(slot, [token])
        return pending

    def _draw(self, logits: torch.Tensor, width: int) -> torch.Tensor:
        """The next ``width`` tokens of every decoder row from its logits (B * width, V),
        each drawn with the uniform of its row and position."""
        sampling = self.job.sampling
        if sampling.temperature == 0:
            return logits.argmax(dim=-1).cpu()
        rows = np.array([self.ids[r] if r is not None else 0 for r in self.slots], dtype=np.int64)
        done = np.array([self.counts[r] if r is not None else 0 for r in self.slots], dtype=np.int64)
        u = uniforms(self.job.seed, np.repeat(rows, width), (done[:, None] + np.arange(width)).reshape(-1))
        if not any(self.greedy):
            return draw_tokens(logits, sampling.temperature, sampling.top_k, sampling.top_p, u)
        greedy = self.greedy_rows.repeat_interleave(width)
        tokens = logits.argmax(dim=-1).cpu()
        sampled = (~greedy).nonzero().squeeze(1)  # only the sampled rows pay for the draw
        if sampled.numel():
            tokens[sampled] = draw_tokens(logits[sampled.to(logits.device)], sampling.temperature, sampling.top_k,
                                          sampling.top_p, u[sampled])
        return tokens

    def _verify(self, pending: torch.Tensor, drafts: list[list[int]]) -> torch.Tensor:
        """Run each row's pending token and draft in one pass; keep the draws that match.
        A finished row keeps nothing, so it never grows past the block while others catch up."""
        stats = self.job.stats
        width = max(len(d) for d in drafts)
        tokens = torch.zeros(len(drafts), 1 + width, dtype=torch.long)
        tokens[:, 0] = pending
        lengths = torch.tensor([len(d) for d in drafts])
        for slot, draft in enumerate(drafts):
            tokens[slot, 1 : 1 + len(draft)] = torch.tensor(draft, dtype=torch.long)
        logits = self.decoder.verify(tokens)  # (B, 1 + width, V)
        draws = self._draw(logits.reshape(-1, logits.size(-1)), 1 + width).view(len(drafts), 1 + width)
        # A draft token stands while every draw before it, and its own, equal the draft.
        same = (draws[:, :width] == tokens[:, 1:]) & (torch.arange(width).unsqueeze(0) < lengths.unsqueeze(1))
        accepted = same.long().cumprod(dim=1).sum(dim=1)
        live = torch.tensor([row is not None for row in self.slots], dtype=torch.long)
        self.decoder.commit((1 + accepted) * live)  # type: ignore[union-attr]
        for slot, (kept, offered) in enumerate(zip(accepted.tolist(), lengths.tolist())):
            row = self.slots[slot]
            if row is not None and offered and self.drafter is not None:
                self.drafter.feedback(row, offered, kept)
            self._push(slot, draws[slot, : kept + 1].tolist())
        stats.draft_passes += bool(width)
        stats.drafted += int(lengths.sum())
        stats.accepted += int(accepted.sum())
        return draws[torch.arange(len(drafts)), accepted]


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
           check: Callable[[], None] | None = None, within_block: bool = True,
           speculate: Speculation | None = Speculation(), sources: Sequence[Sequence[Sequence[int]]] | None = None,
           stats: DecodeStats | None = None) -> Iterator[tuple[int, str]]:
    """``(row, piece)`` as each prompt's continuation grows; a row's pieces concatenate to
    its text in ``generate`` (cut before its first stop string).

    ``check`` is called before every step (a deadline or a hung-up client raises there).
    ``within_block=False`` lets a continuation run past the model's block (its window slides).
    ``speculate`` drafts tokens from ``sources[i]`` (token lists row ``i`` is likely to
    repeat) and the row's own text (None: one token per pass); ``stats`` is filled in.
    """
    _check(max_new_tokens, rows_per_batch)
    rows = [TextRow(tokenizer, stop, frozenset(), streaming=True) for _ in prompts]
    job = _Decode(model, max_new_tokens, sampling, _seed(seed), kv_cache, check, within_block, speculate,
                  stats if stats is not None else DecodeStats())
    for _ in _decode(job, _contexts(prompts, tokenizer.start_id), rows, greedy or [False] * len(rows), rows_per_batch,
                     None, sources):
        for index, row in enumerate(rows):
            if row.pending:
                yield index, row.take()


def generate(model: LanguageModel, tokenizer: Tokenizer, prompts: Sequence[Sequence[int]], max_new_tokens: int,
             sampling: Sampling = Sampling(), seed: int | None = None, stop: Sequence[str] = (),
             greedy: Sequence[bool] | None = None, rows_per_batch: int = 64, kv_cache: bool = True,
             check: Callable[[], None] | None = None, on_progress: Callable[[int], None] | None = None,
             speculate: Speculation | None = Speculation(), sources: Sequence[Sequence[Sequence[int]]] | None = None,
             stats: DecodeStats | None = None) -> list[str]:
    """The continuation of each prompt (not including it), cut before its first stop
    string; ``greedy[i]`` makes row ``i`` greedy while the others sample. ``speculate``,
    ``sources`` and ``stats`` as in ``stream``."""
    _check(max_new_tokens, rows_per_batch)
    flags = stop_flags(tokenizer, stop)
    rows = [TextRow(tokenizer, stop, flags, streaming=False) for _ in prompts]
    job = _Decode(model, max_new_tokens, sampling, _seed(seed), kv_cache, check, True, speculate,
                  stats if stats is not None else DecodeStats())
    for _ in _decode(job, _contexts(prompts, tokenizer.start_id), rows, greedy or [False] * len(rows), rows_per_batch,
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
    _check(max_new_tokens, 1)
    context = _contexts([prompt_ids], start_id)[0]
    if max_new_tokens == 0:
        return
    if model.markov:
        probs = filter_logits(model.transition_logits().detach().cpu(), temperature, top_k, top_p)
        yield from MarkovChainSampler(probs.numpy(), seed=seed).walk(context[-1], max_new_tokens)
        return
    row = IdRow()
    job = _Decode(model, max_new_tokens, sampling, _seed(seed), kv_cache, None, within_block=False)
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

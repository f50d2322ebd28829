"""One batch of rows stepping through a decoder: the loop under ``engine``'s decode and
``batcher``'s shared one.

Each row holds one ``pending`` token, drawn but not yet run through the model; a pass
runs it, with a draft after it where one is found, and draws the next token at every
position, keeping the draws while they equal the draft (``generation.speculation``).
Every row has its own budget (``max_new_tokens``, and within the block for its own
prompt), its own seed and its index within its request, so it decodes what it would
decode alone, whichever rows share its passes. A finished row leaves the decoder once a
quarter of the batch has finished, or at once when the cache has no slot left; rows of
new requests join between passes (``admit``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterator, Sequence

import numpy as np
import torch

from bigramlm.generation.decoding import CachedDecoder, Decoder, make_decoder
from bigramlm.generation.filters import draw_tokens, uniforms
from bigramlm.generation.speculation import DecodeStats, Drafter, Speculation
from bigramlm.generation.text import Row
from bigramlm.models.base import LanguageModel

#: Finished rows leave the batch once they are this fraction of it (1/4): every
#: compaction copies the whole KV cache, and compacting at each finished row took 23% of
#: a support evaluation's decode; a finished row decoded a few steps more costs less.
COMPACT_SHARE = 4

#: Batches of at most this many live rows speculate; bigger ones decode one token per pass.
#: A pass's cost grows with its positions and rows (benchmarks/speculation.py, recipe GPT,
#: 2 threads, ms for 1 / 3 / 5 positions: 3 rows 1.6 / 2.0 / 2.5, 6 rows 1.7 / 2.8 / 3.2,
#: 12 rows 2.5 / 4.1 / 5.1, 24 rows 4.3 / 7.3 / 9.0), while the desk keeps 1.8 tokens a
#: pass of its greedy row and fewer of its sampled ones: one request's 3 rows about break
#: even (1.03x over 10 desk requests in the same run; 1.02x and 0.96x in earlier ones),
#: and a batch of 48 rows forced to speculate ran 0.89x (a 192-row one, 0.74x).
SPECULATE_ROWS = 4


def prompt_contexts(prompts: Sequence[Sequence[int] | np.ndarray], start_id: int) -> list[list[int]]:
    """Each prompt's ids as a list; an empty prompt starts from ``start_id``."""
    return [[int(i) for i in np.asarray(p).reshape(-1)] or [start_id] for p in prompts]


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
        from bigramlm.generation.checks import check_sampling

        check_sampling(self.temperature, self.top_k, self.top_p)


@dataclass
class Decode:
    """One decode's settings, shared by its batches."""

    model: LanguageModel
    max_new_tokens: int
    sampling: Sampling
    #: Each token's draw is a function of (seed, row, position): ``filters.uniforms``.
    seed: int
    kv_cache: bool
    check: Callable[[], None] | None
    #: Stop each row where it would outgrow the context the model was trained on
    #: (replies, which end long before; a reply that long is a loop). A free-running
    #: sample (``generate_ids``) slides its window past the block instead.
    within_block: bool = True
    #: Draft tokens from ``sources`` and each row's own text, verified in one pass (None: off).
    speculate: Speculation | None = None
    stats: DecodeStats = field(default_factory=DecodeStats)
    #: Whether row ``i`` (its index in the decode) should stop: its request has gone.
    dropped: Callable[[int], bool] | None = None


@dataclass
class NewRows:
    """Rows that join a batch: their index in the decode, prompt, text sink, and how they draw."""

    ids: list[int]
    contexts: list[Sequence[int]]
    rows: list[Row]
    greedy: list[bool]
    sources: list[Sequence[Sequence[int]]]
    #: Per row: the seed of its draws and its index within its request (``filters.uniforms``).
    seeds: list[int]
    keys: list[int]
    #: Per row: ``max_new_tokens`` of its request.
    max_new_tokens: list[int]


class DecodeBatch:
    """Rows decoding side by side (the module docstring). ``run`` yields after every pass."""

    def __init__(self, job: Decode, rows: NewRows):
        self.job = job
        self.ids: list[int] = []
        self.rows: list[Row] = []
        self.counts: list[int] = []
        self.budgets: list[int] = []
        self.seeds: list[int] = []
        self.keys: list[int] = []
        self.drafter: Drafter | None = None
        if (job.speculate is not None and job.within_block and job.kv_cache and job.model.supports_kv_cache
                and speculates(len(rows.rows))):
            self.drafter = Drafter(job.speculate, [], [])
        self.first = rows
        self.decoder: Decoder | None = None
        #: The batch row each decoder row decodes (None once finished).
        self.slots: list[int | None] = []
        #: Per batch row: whether it takes the likeliest token rather than a sample.
        self.greedy: list[bool] = []
        self.pending = torch.zeros(0, dtype=torch.long)
        #: ``_layout`` of the decoder's rows, while they stay the same rows.
        self._cached: tuple[np.ndarray, np.ndarray, np.ndarray, list[int]] | None = None

    def run(self) -> Iterator[None]:
        job = self.job
        if job.max_new_tokens > 0:
            self.admit(self.first)
            while any(row is not None for row in self.slots):
                yield
                self._drop()
                self._compact()
                if job.check is not None:
                    job.check()
                self._step()
        for row in self.rows:
            row.finish()
        yield

    @property
    def live(self) -> int:
        return sum(1 for row in self.slots if row is not None)

    def admit(self, new: NewRows) -> None:
        """Rows of new prompts join the batch: their prompts run, and each draws its first token."""
        start = len(self.rows)
        self._bookkeep(new)
        contexts = [list(c) for c in new.contexts]
        if self.decoder is None:
            self.decoder = make_decoder(self.job.model, contexts, self.job.kv_cache)
            logits = self.decoder.logits
        else:
            logits = self.decoder.admit(contexts)
        rows = list(range(start, start + len(new.rows)))
        self.slots += rows
        self._cached = None
        first = self._draw(logits, 1, rows)
        self.pending = torch.cat([self.pending, first])
        for slot, token in zip(range(len(self.slots) - len(rows), len(self.slots)), first.tolist()):
            self._push(slot, [token])

    def _bookkeep(self, new: NewRows) -> None:
        model = self.job.model
        for context, max_new in zip(new.contexts, new.max_new_tokens):
            budget = max_new
            if self.job.within_block and not model.markov:
                budget = min(budget, max(1, model.get_block_size() - len(context)))
            self.budgets.append(budget)
        self.ids += new.ids
        self.rows += new.rows
        self.counts += [0] * len(new.rows)
        self.greedy += [bool(g) for g in new.greedy]
        self.seeds += new.seeds
        self.keys += new.keys
        if self.drafter is not None:
            self.drafter.add(new.contexts, new.sources)

    def _push(self, slot: int, tokens: list[int]) -> None:
        """Hand a decoder row's new tokens to its row, up to its stop string or budget."""
        row = self.slots[slot]
        if row is None:
            return
        stats, greedy = self.job.stats, self.greedy[row]
        for token in tokens:
            self.counts[row] += 1
            stats.tokens += 1
            stats.greedy_tokens += greedy
            if self.drafter is not None:
                self.drafter.push(row, token)
            if not self.rows[row].push(token) or self.counts[row] >= self.budgets[row]:
                self.slots[slot] = None
                self.rows[row].finish()  # its text is whole now, though the batch goes on
                return

    def _drop(self) -> None:
        """Rows whose request has gone stop here (they leave at the next compaction)."""
        dropped = self.job.dropped
        if dropped is not None:
            self.slots = [None if row is not None and dropped(self.ids[row]) else row for row in self.slots]

    def _compact(self) -> None:
        """Finished rows leave the decoder once they are a quarter of it, or when the cache is full."""
        live = [slot for slot, row in enumerate(self.slots) if row is not None]
        full = isinstance(self.decoder, CachedDecoder) and self.decoder.full
        if not full and len(self.slots) - len(live) < max(1, len(self.slots) // COMPACT_SHARE):
            return
        if len(live) < len(self.slots) and self.decoder is not None:  # no decoder: no row was ever admitted
            keep = torch.tensor(live, dtype=torch.long)
            self.decoder.keep_rows(keep)
            self.slots = [self.slots[s] for s in live]
            self.pending = self.pending[keep]
            self._cached = None
        if isinstance(self.decoder, CachedDecoder) and self.decoder.full:
            self.decoder.cache.compact()  # holes and padding out of the way of the next token

    def _drafts(self) -> list[list[int]]:
        assert self.drafter is not None and isinstance(self.decoder, CachedDecoder)
        # The pending token takes one place of the room.
        room = self.decoder.room(1 + self.drafter.settings.draft_tokens) - 1
        return [self.drafter.propose(row, min(room, self.budgets[row] - self.counts[row])) if row is not None else []
                for row in self.slots]

    def _step(self) -> None:
        """One pass: the pending tokens (and drafts); draws the next pending tokens."""
        stats = self.job.stats
        stats.passes += 1
        stats.greedy_passes += sum(1 for row in self.slots if row is not None and self.greedy[row])
        if self.drafter is not None and speculates(self.live):
            self._verify(self._drafts())
            return
        assert self.decoder is not None
        self.pending = self._draw(self.decoder.push(self.pending), 1)
        for slot, token in enumerate(self.pending.tolist()):
            self._push(slot, [token])

    def _draw(self, logits: torch.Tensor, width: int, rows: Sequence[int | None] | None = None) -> torch.Tensor:
        """The next ``width`` tokens of the batch rows ``rows`` (default: the decoder's rows;
        None: a finished one) from their logits (B * width, V), each sampled row drawing with
        the uniform of its seed, row and position, each greedy row taking the likeliest."""
        sampling = self.job.sampling
        if sampling.temperature == 0:
            return logits.argmax(dim=-1).cpu()
        seeds, keys, sampled, known = self._layout(rows)
        if not sampled.any():
            return logits.argmax(dim=-1).cpu()
        done = np.array([self.counts[r] for r in known], dtype=np.int64)
        draws = np.flatnonzero(np.repeat(sampled, width))  # only the sampled rows pay for the draw
        u = uniforms(np.repeat(seeds, width)[draws], np.repeat(keys, width)[draws],
                     (done[:, None] + np.arange(width)).reshape(-1)[draws])
        if len(draws) == logits.size(0):
            return draw_tokens(logits, sampling.temperature, sampling.top_k, sampling.top_p, u)
        tokens = logits.argmax(dim=-1).cpu()
        picked = torch.from_numpy(draws)
        tokens[picked] = draw_tokens(logits[picked.to(logits.device)], sampling.temperature, sampling.top_k,
                                     sampling.top_p, u)
        return tokens

    def _layout(self, rows: Sequence[int | None] | None) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[int]]:
        """Seeds, keys, which are sampled, and the batch row of each decoder row (a finished
        one stands in as row 0): kept for the decoder's rows until rows join or leave (a
        pass's draw cost 87 us of Python per pass when rebuilt every time)."""
        if rows is None and self._cached is not None:
            return self._cached
        known = [r if r is not None else 0 for r in (self.slots if rows is None else rows)]
        layout = (np.array([self.seeds[r] for r in known], dtype=np.uint64),
                  np.array([self.keys[r] for r in known], dtype=np.int64),
                  np.array([not self.greedy[r] for r in known], dtype=bool), known)
        if rows is None:
            self._cached = layout
        return layout

    def _verify(self, drafts: list[list[int]]) -> None:
        """Run each row's pending token and draft in one pass; keep the draws that match.
        A finished row keeps nothing, so it never grows past the block while others catch up."""
        assert isinstance(self.decoder, CachedDecoder) and self.drafter is not None
        stats = self.job.stats
        width = max(len(d) for d in drafts)
        tokens = torch.zeros(len(drafts), 1 + width, dtype=torch.long)
        tokens[:, 0] = self.pending
        lengths = torch.tensor([len(d) for d in drafts])
        for slot, draft in enumerate(drafts):
            tokens[slot, 1 : 1 + len(draft)] = torch.tensor(draft, dtype=torch.long)
        logits = self.decoder.verify(tokens)  # (B, 1 + width, V)
        draws = self._draw(logits.reshape(-1, logits.size(-1)), 1 + width).view(len(drafts), 1 + width)
        # A draft token stands while every draw before it, and its own, equal the draft.
        same = (draws[:, :width] == tokens[:, 1:]) & (torch.arange(width).unsqueeze(0) < lengths.unsqueeze(1))
        accepted = same.long().cumprod(dim=1).sum(dim=1)
        live = torch.tensor([row is not None for row in self.slots], dtype=torch.long)
        self.decoder.commit((1 + accepted) * live)
        for slot, (kept, offered) in enumerate(zip(accepted.tolist(), lengths.tolist())):
            row = self.slots[slot]
            if row is not None and offered:
                self.drafter.feedback(row, offered, kept)
            self._push(slot, draws[slot, : kept + 1].tolist())
        stats.draft_passes += bool(width)
        stats.drafted += int(lengths.sum())
        stats.accepted += int(accepted.sum())
        self.pending = draws[torch.arange(len(drafts)), accepted]

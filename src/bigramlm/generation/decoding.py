"""Next-token logits for ``n`` rows that share a context, one new token at a time.

One interface, three ways, picked by what the model declares (``LanguageModel``):

- ``MarkovDecoder``: the next token depends on the last only (the bigram), so the
  logits are one row of the model's (V, V) table: no network call per token;
- ``CachedDecoder``: the model keeps each layer's keys and values, so a step runs the
  network on the new token only;
- ``WindowDecoder``: any other model re-runs its (cropped) window for every token.

Each has ``logits`` (n, V), the scores of the next token, and ``push(tokens)``.
"""

from __future__ import annotations

import torch

from bigramlm.models.base import LanguageModel


class MarkovDecoder:
    def __init__(self, model: LanguageModel, contexts: list[list[int]]):
        self.table = model.transition_logits().detach().float().cpu()
        self.logits = self.table[torch.tensor([c[-1] for c in contexts], dtype=torch.long)]

    def push(self, tokens: torch.Tensor) -> torch.Tensor:
        self.logits = self.table[tokens.cpu()]
        return self.logits

    def keep_rows(self, rows: torch.Tensor) -> None:
        """Go on with these rows only (finished ones leave the batch)."""
        self.logits = self.logits[rows]

    def admit(self, contexts: list[list[int]]) -> torch.Tensor:
        """Take rows for new contexts after the others; returns their logits (n, V)."""
        logits = self.table[torch.tensor([c[-1] for c in contexts], dtype=torch.long)]
        self.logits = torch.cat([self.logits, logits])
        return logits


def _left(rows: torch.Tensor, width: int, value: int | bool) -> torch.Tensor:
    """``rows`` (B, W) padded with ``value`` on the left to ``width`` columns."""
    return torch.cat([torch.full((rows.size(0), width - rows.size(1)), value, dtype=rows.dtype, device=rows.device),
                      rows], dim=1)


def left_pad(contexts: list[list[int]], width: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """The last ``width`` tokens of each context, left-padded with 0: (ids (B, W), pad (B,))."""
    rows = [c[-width:] for c in contexts]
    longest = max(len(r) for r in rows)
    ids = torch.zeros(len(rows), longest, dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, longest - len(r) :] = torch.tensor(r, dtype=torch.long)
    pad = torch.tensor([longest - len(r) for r in rows], dtype=torch.long)
    return ids.to(device), pad


class CachedDecoder:
    """Rows may start from different contexts: they are left-padded to one length and
    the cache masks the padding, so until the cache is full each row decodes as it
    would alone.

    Positions are absolute, so a full cache cannot slide by one: it is rebuilt from
    the most recent ``block_size // 2`` tokens, which costs one half-window pass every
    ``block_size // 2`` tokens. Until the window is full this is exactly the naive
    computation.
    """

    def __init__(self, model: LanguageModel, contexts: list[list[int]]):
        self.model = model
        self.block = model.get_block_size()
        self.keep = max(1, self.block // 2)
        device = next(model.parameters()).device
        self.history, pad = left_pad(contexts, self.block, device)
        #: Which columns of ``history`` are real tokens (padding is at the left).
        self.real = torch.arange(self.history.size(1), device=device).unsqueeze(0) >= pad.to(device).unsqueeze(1)
        self.cache = model.new_cache(len(contexts), pad)
        #: Whether a ``verify`` ran (``history`` then lacks its tokens: no sliding after it).
        self.start, self.speculated = 0, False
        logits, _ = model(self.history, cache=self.cache)
        #: Logits (n, V) of the token after each context.
        self.logits = logits[:, -1, :]

    def admit(self, contexts: list[list[int]]) -> torch.Tensor:
        """Take rows for new contexts after the others (continuous batching): their prompts
        run on their own, then their cache joins this one (``KVCache.extend``), each row
        still decoding as it would alone. Returns their logits (n, V)."""
        new = CachedDecoder(self.model, contexts)
        if max(self.cache.length, new.cache.length) >= self.cache.capacity:
            self.cache.compact()
        self.cache.extend(new.cache)
        width = max(self.history.size(1), new.history.size(1))
        self.history = torch.cat([_left(self.history, width, 0), _left(new.history, width, 0)])
        self.real = torch.cat([_left(self.real, width, False), _left(new.real, width, False)])
        self.logits = torch.cat([self.logits, new.logits])
        self.speculated = self.speculated or new.speculated
        return new.logits

    @property
    def full(self) -> bool:
        """Whether the next token has no free slot (finished rows or holes must leave first)."""
        return self.cache.length >= self.cache.capacity

    def push(self, tokens: torch.Tensor) -> torch.Tensor:
        """Append one token per row (shape (n,)); return the logits of the next one."""
        tokens = tokens.to(self.history.device).view(-1, 1)
        self.history = torch.cat([self.history, tokens], dim=1)[:, -self.block :]
        self.real = torch.cat([self.real, torch.ones_like(tokens, dtype=torch.bool)], dim=1)[:, -self.block :]
        if self.cache.length >= self.block:
            self.cache.compact()  # a speculative decode's holes first; the window slides only when full of tokens
        if self.cache.length >= self.block:
            if self.speculated:
                raise RuntimeError("a speculative decode outgrew the block; its budget should have ended it")
            window, real = self.history[:, -self.keep :], self.real[:, -self.keep :]
            self.cache = self.model.new_cache(window.size(0), (~real).sum(dim=1))
            logits, _ = self.model(window, cache=self.cache)
        else:
            logits, _ = self.model(tokens, cache=self.cache)
        self.logits = logits[:, -1, :]
        return self.logits

    def verify(self, tokens: torch.Tensor) -> torch.Tensor:
        """Run ``T`` tokens per row (B, T) in one pass: logits (B, T, V), row ``b``'s
        ``t``-th predicting the token after its ``t``-th. ``commit`` then says how many
        each row keeps; until it does, the decoder holds all ``T``.

        Only within the block: a speculative decode never slides its window (each row's
        budget ends where that row would outgrow the block), so ``history`` stops here.
        """
        if self.cache.length + tokens.size(1) > self.cache.capacity:
            self.cache.compact()  # ``room`` said how many fit
        self.start, self.speculated = self.cache.length, True
        logits, _ = self.model(tokens.to(self.history.device), cache=self.cache)
        return logits

    def room(self, want: int) -> int:
        """The most tokens per row (up to ``want``) one ``verify`` can take: every row's
        positions stay within the block, and the slots within the cache (its holes are
        closed only when they are in the way)."""
        offset = self.cache.offset
        longest = self.cache.length - (int(offset.min()) if offset is not None else 0)  # the furthest row's next position
        want = min(want, self.block - longest)
        if self.cache.capacity - self.cache.length < want:
            self.cache.compact()
        return min(want, self.cache.capacity - self.cache.length)

    def commit(self, kept: torch.Tensor) -> None:
        """Keep the first ``kept[b]`` tokens of row ``b``'s last ``verify``; ``logits`` is
        left as it was (the caller holds the verified logits it needs)."""
        self.cache.commit(self.start, kept)

    def keep_rows(self, rows: torch.Tensor) -> None:
        """Go on with these rows only (finished ones leave the batch)."""
        rows = rows.to(self.history.device)
        self.history, self.real, self.logits = self.history[rows], self.real[rows], self.logits[rows]
        self.cache.select_rows(rows)


class WindowDecoder:
    """The naive way, kept for models without a cache and for comparisons: every token
    re-runs each row's cropped window."""

    def __init__(self, model: LanguageModel, contexts: list[list[int]]):
        self.model = model
        self.block = model.get_block_size()
        self.device = next(model.parameters()).device
        self.rows = [list(c) for c in contexts]
        self.logits = self._run()

    def _run(self) -> torch.Tensor:
        windows = [r[-self.block :] for r in self.rows]
        if len({len(w) for w in windows}) == 1:  # one batched call when the rows line up
            logits, _ = self.model(torch.tensor(windows, dtype=torch.long, device=self.device))
            return logits[:, -1, :]
        return torch.cat([self.model(torch.tensor([w], device=self.device))[0][:, -1, :] for w in windows])

    def push(self, tokens: torch.Tensor) -> torch.Tensor:
        for row, token in zip(self.rows, tokens.tolist()):
            row.append(token)
        self.logits = self._run()
        return self.logits

    def keep_rows(self, rows: torch.Tensor) -> None:
        self.rows = [self.rows[i] for i in rows.tolist()]
        self.logits = self.logits[rows.to(self.logits.device)]

    def admit(self, contexts: list[list[int]]) -> torch.Tensor:
        """Take rows for new contexts after the others; returns their logits (n, V)."""
        new = WindowDecoder(self.model, contexts)
        self.rows += new.rows
        self.logits = torch.cat([self.logits, new.logits])
        return new.logits


Decoder = MarkovDecoder | CachedDecoder | WindowDecoder


def make_decoder(model: LanguageModel, contexts: list[list[int]], kv_cache: bool = True) -> Decoder:
    """The fastest decoder the model supports, one row per context (``kv_cache=False``
    forces the naive window)."""
    if model.markov:
        return MarkovDecoder(model, contexts)
    if kv_cache and model.supports_kv_cache:
        return CachedDecoder(model, contexts)
    return WindowDecoder(model, contexts)

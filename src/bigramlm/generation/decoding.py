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
    def __init__(self, model: LanguageModel, context: list[int], n: int):
        self.table = model.transition_logits().detach().float().cpu()
        self.logits = self.table[torch.full((n,), context[-1], dtype=torch.long)]

    def push(self, tokens: torch.Tensor) -> torch.Tensor:
        self.logits = self.table[tokens.cpu()]
        return self.logits


class CachedDecoder:
    """Positions are absolute, so a full cache cannot slide by one: it is rebuilt from
    the most recent ``block_size // 2`` tokens, which costs one half-window pass every
    ``block_size // 2`` tokens. Until the window is full this is exactly the naive
    computation.
    """

    def __init__(self, model: LanguageModel, context: list[int], n: int):
        self.model = model
        self.block = model.get_block_size()
        self.keep = max(1, self.block // 2)
        device = next(model.parameters()).device
        self.history = torch.tensor([context[-self.block :]] * n, dtype=torch.long, device=device)
        self.cache = model.new_cache(n)
        logits, _ = model(self.history, cache=self.cache)
        #: Logits (n, V) of the token after the context.
        self.logits = logits[:, -1, :]

    def push(self, tokens: torch.Tensor) -> torch.Tensor:
        """Append one token per row (shape (n,)); return the logits of the next one."""
        tokens = tokens.to(self.history.device).view(-1, 1)
        self.history = torch.cat([self.history, tokens], dim=1)[:, -self.block :]
        if self.cache.length >= self.block:
            self.cache.reset()
            logits, _ = self.model(self.history[:, -self.keep :], cache=self.cache)
        else:
            logits, _ = self.model(tokens, cache=self.cache)
        self.logits = logits[:, -1, :]
        return self.logits


class WindowDecoder:
    """The naive way, kept for models without a cache and for comparisons."""

    def __init__(self, model: LanguageModel, context: list[int], n: int):
        self.model = model
        self.block = model.get_block_size()
        device = next(model.parameters()).device
        self.idx = torch.tensor([context] * n, dtype=torch.long, device=device)
        self.logits = self._run()

    def _run(self) -> torch.Tensor:
        logits, _ = self.model(self.idx[:, -self.block :])
        return logits[:, -1, :]

    def push(self, tokens: torch.Tensor) -> torch.Tensor:
        self.idx = torch.cat([self.idx, tokens.view(-1, 1).to(self.idx.device)], dim=1)
        self.logits = self._run()
        return self.logits


Decoder = MarkovDecoder | CachedDecoder | WindowDecoder


def make_decoder(model: LanguageModel, context: list[int], n: int, kv_cache: bool = True) -> Decoder:
    """The fastest decoder the model supports (``kv_cache=False`` forces the naive window)."""
    if model.markov:
        return MarkovDecoder(model, context, n)
    if kv_cache and model.supports_kv_cache:
        return CachedDecoder(model, context, n)
    return WindowDecoder(model, context, n)

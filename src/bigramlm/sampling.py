"""Text generation for any model of the shared interface.

Two paths:

- a model whose next token depends on the last token only (it has
  ``transition_logits()``, like the bigram) is sampled as a Markov chain from a
  precomputed (V, V) table: O(1) per character, no network call per step;
- any other model runs autoregressively, cropped to its block size; a model with an
  incremental decoding cache (``supports_kv_cache``) gets one position per step.
"""

from __future__ import annotations

from typing import Iterator, Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .errors import BigramLMError

MAX_NEW_TOKENS = 10_000_000


def check_new_tokens(n: int) -> None:
    if n < 0:
        raise BigramLMError(f"--tokens must not be negative (got {n})")
    if n > MAX_NEW_TOKENS:
        raise BigramLMError(f"--tokens {n} is absurd; at most {MAX_NEW_TOKENS:,} per call")


def filter_logits(
    logits: torch.Tensor, temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None
) -> torch.Tensor:
    """Next-token probabilities from logits (..., V) after temperature, top-k and top-p.

    Temperature 0 means greedy: all mass on the arg-max.
    """
    if temperature < 0:
        raise BigramLMError(f"temperature must be non-negative (got {temperature})")
    if top_k is not None and top_k < 1:
        raise BigramLMError(f"top-k must be at least 1 (got {top_k})")
    if top_p is not None and not 0.0 < top_p <= 1.0:
        raise BigramLMError(f"top-p must be in (0, 1] (got {top_p})")
    logits = logits.float()
    if temperature == 0:
        return F.one_hot(logits.argmax(dim=-1), logits.size(-1)).float()
    logits = logits / temperature
    if top_k is not None and top_k < logits.size(-1):
        kth = torch.topk(logits, top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    probs = torch.softmax(logits, dim=-1)
    if top_p is not None and top_p < 1.0:
        sorted_probs, order = probs.sort(dim=-1, descending=True)
        # Keep the smallest prefix whose mass reaches top_p (always the first token).
        drop = sorted_probs.cumsum(dim=-1) - sorted_probs >= top_p
        sorted_probs = sorted_probs.masked_fill(drop, 0.0)
        probs = torch.zeros_like(probs).scatter(-1, order, sorted_probs)
        probs = probs / probs.sum(dim=-1, keepdim=True)
    return probs


class MarkovChainSampler:
    """Exact sampling of a first-order Markov chain at about a million steps per second.

    Each state keeps a pool of next tokens drawn i.i.d. from its row (vectorised
    ``searchsorted`` over uniform draws). Walking the chain then costs one list lookup
    per step: the k-th visit to a state uses that state's k-th independent draw, which
    is exactly a draw from the row, independent of the past.
    """

    def __init__(self, probs: np.ndarray, seed: int | None = None):
        self.cdf = np.cumsum(probs.astype(np.float64), axis=1)
        self.cdf /= self.cdf[:, -1:]
        self.vocab_size = probs.shape[0]
        self.rng = np.random.default_rng(seed)
        self.pools: list[list[int]] = [[] for _ in range(self.vocab_size)]
        self.positions = [0] * self.vocab_size
        self.pool_sizes = [64] * self.vocab_size

    def _refill(self, state: int) -> list[int]:
        size = self.pool_sizes[state]
        self.pool_sizes[state] = min(size * 2, 1 << 16)  # frequent states get larger pools
        draws = np.searchsorted(self.cdf[state], self.rng.random(size), side="right")
        pool = np.minimum(draws, self.vocab_size - 1).tolist()
        self.pools[state] = pool
        self.positions[state] = 0
        return pool

    def walk(self, start: int, n: int, chunk: int = 8192) -> Iterator[list[int]]:
        """Yield the next ``n`` states after ``start`` in chunks (for streaming)."""
        pools, positions = self.pools, self.positions
        state = start
        done = 0
        while done < n:
            out: list[int] = []
            append = out.append
            for _ in range(min(chunk, n - done)):
                pos = positions[state]
                pool = pools[state]
                if pos >= len(pool):
                    pool = self._refill(state)
                    pos = 0
                positions[state] = pos + 1
                state = pool[pos]
                append(state)
            done += len(out)
            yield out


def _start_ids(prompt_ids: Sequence[int] | np.ndarray, default_start: int) -> list[int]:
    ids = [int(i) for i in np.asarray(prompt_ids).reshape(-1)]
    return ids if ids else [default_start]


@torch.no_grad()
def generate_ids(
    model: nn.Module,
    prompt_ids: Sequence[int] | np.ndarray,
    max_new_tokens: int,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    seed: int | None = None,
    default_start: int = 0,
    kv_cache: bool = True,
) -> Iterator[list[int]]:
    """Yield new token ids in chunks, continuing ``prompt_ids`` (or ``default_start``).

    ``kv_cache=False`` forces the naive re-run of the window (for comparisons)."""
    check_new_tokens(max_new_tokens)
    context = _start_ids(prompt_ids, default_start)
    if max_new_tokens == 0:
        return
    if hasattr(model, "transition_logits"):
        probs = filter_logits(model.transition_logits().detach().cpu(), temperature, top_k, top_p)
        sampler = MarkovChainSampler(probs.numpy(), seed=seed)
        yield from sampler.walk(context[-1], max_new_tokens)
        return
    yield from _autoregressive(model, context, max_new_tokens, temperature, top_k, top_p, seed, kv_cache)


class CachedDecoder:
    """Next-token logits for ``n`` rows that share a context, one position per new token.

    The model keeps every layer's keys and values (its ``new_cache``), so a step runs
    the network on the new token only. Positions are absolute, so a full cache cannot
    slide by one: it is rebuilt from the most recent ``block_size // 2`` tokens, which
    costs one half-window pass every ``block_size // 2`` tokens. Until the window is
    full this is exactly the naive computation.
    """

    def __init__(self, model: nn.Module, context: list[int], n: int):
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


def _autoregressive(
    model: nn.Module,
    context: list[int],
    max_new_tokens: int,
    temperature: float,
    top_k: int | None,
    top_p: float | None,
    seed: int | None,
    kv_cache: bool = True,
) -> Iterator[list[int]]:
    """Generic path: one cached position per step when the model has a KV cache,
    otherwise re-run the model on the (cropped) context at every step."""
    device = next(model.parameters()).device
    generator = torch.Generator(device="cpu")
    if seed is not None:
        generator.manual_seed(seed)
    else:
        generator.seed()
    block = model.get_block_size()
    idx = torch.tensor([context], dtype=torch.long, device=device)
    was_training = model.training
    model.eval()
    try:
        if kv_cache and getattr(model, "supports_kv_cache", False):
            decoder = CachedDecoder(model, context, 1)
            logits = decoder.logits
            for i in range(max_new_tokens):
                probs = filter_logits(logits, temperature, top_k, top_p).cpu()
                nxt = torch.multinomial(probs, 1, generator=generator)
                yield [int(nxt)]
                if i + 1 < max_new_tokens:  # the last token needs no successor
                    logits = decoder.push(nxt.view(-1))
            return
        for _ in range(max_new_tokens):
            logits, _ = model(idx[:, -block:])
            probs = filter_logits(logits[:, -1, :], temperature, top_k, top_p).cpu()
            nxt = torch.multinomial(probs, 1, generator=generator)
            idx = torch.cat([idx, nxt.to(device)], dim=1)
            yield [int(nxt)]
    finally:
        model.train(was_training)


def generate_text(
    model: nn.Module,
    tokenizer,
    prompt: str = "",
    max_new_tokens: int = 500,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    seed: int | None = None,
    kv_cache: bool = True,
) -> Iterator[str]:
    """Stream decoded text chunks that continue ``prompt`` (which is not repeated)."""
    prompt_ids = tokenizer.encode(prompt) if prompt else []
    start = default_start_id(tokenizer)
    for chunk in generate_ids(model, prompt_ids, max_new_tokens, temperature, top_k, top_p, seed, start, kv_cache):
        yield tokenizer.decode(chunk)


def default_start_id(tokenizer) -> int:
    """Start an unprompted sample at a newline when the vocabulary has one (id 0 otherwise)."""
    stoi = getattr(tokenizer, "stoi", None)
    if stoi is not None and "\n" in stoi:
        return stoi["\n"]
    return getattr(tokenizer, "newline_id", 0)  # BPE knows its newline token


class _StopScanner:
    """Streams one candidate's text, holding back any tail that could still become a stop string."""

    def __init__(self, stop: Sequence[str]):
        self.stop = [s for s in stop if s]
        self.hold = max((len(s) for s in self.stop), default=1) - 1
        self.text = ""
        self.emitted = 0
        self.done = False

    def feed(self, piece: str) -> str:
        """Add generated text; return the part that is now safe to show."""
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


def _next_token_fn(model: nn.Module, context: list[int], n: int, temperature: float, top_k: int | None, top_p: float | None, generator: torch.Generator, kv_cache: bool = True):
    """Return ``step(last_ids) -> next_ids`` for ``n`` parallel rows that share ``context``."""
    if hasattr(model, "transition_logits"):
        table = filter_logits(model.transition_logits().detach().cpu(), temperature, top_k, top_p)

        def markov_step(last: torch.Tensor) -> torch.Tensor:
            return torch.multinomial(table[last], 1, generator=generator).squeeze(1)

        return markov_step
    if kv_cache and getattr(model, "supports_kv_cache", False):
        # All n rows advance in one batched call of one position each.
        decoder = CachedDecoder(model, context, n)
        started = [False]

        def cached_step(last: torch.Tensor) -> torch.Tensor:
            logits = decoder.push(last) if started[0] else decoder.logits
            started[0] = True
            probs = filter_logits(logits, temperature, top_k, top_p).cpu()
            return torch.multinomial(probs, 1, generator=generator).squeeze(1)

        return cached_step
    device = next(model.parameters()).device
    block = model.get_block_size()
    idx = torch.tensor([context] * n, dtype=torch.long, device=device)
    state = {"idx": idx}

    def window_step(last: torch.Tensor) -> torch.Tensor:
        # The naive way: re-run the cropped window for every new token.
        logits, _ = model(state["idx"][:, -block:])
        probs = filter_logits(logits[:, -1, :], temperature, top_k, top_p).cpu()
        nxt = torch.multinomial(probs, 1, generator=generator).squeeze(1)
        state["idx"] = torch.cat([state["idx"], nxt.unsqueeze(1).to(device)], dim=1)
        return nxt

    return window_step


@torch.no_grad()
def generate_candidates(
    model: nn.Module,
    tokenizer,
    prompt: str,
    n: int,
    max_new_tokens: int,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    seed: int | None = None,
    stop: Sequence[str] = (),
    kv_cache: bool = True,
) -> Iterator[tuple[int, str]]:
    """Grow ``n`` continuations of ``prompt`` side by side, streaming ``(index, text)``.

    Each candidate ends at its first stop string (which is not included) or after
    ``max_new_tokens``; the pieces of one index concatenate to its final text.
    """
    check_new_tokens(max_new_tokens)
    if n < 1:
        raise BigramLMError(f"n must be at least 1 (got {n})")
    context = _start_ids(tokenizer.encode(prompt, on_unknown="replace") if prompt else [], default_start_id(tokenizer))
    generator = torch.Generator()
    generator.manual_seed(seed) if seed is not None else generator.seed()
    was_training = model.training
    model.eval()
    try:
        step = _next_token_fn(model, context, n, temperature, top_k, top_p, generator, kv_cache)
        last = torch.full((n,), context[-1], dtype=torch.long)
        scanners = [_StopScanner(stop) for _ in range(n)]
        for _ in range(max_new_tokens):
            last = step(last)
            for i, token in enumerate(last.tolist()):
                if scanners[i].done:
                    continue
                piece = scanners[i].feed(tokenizer.decode([token]))
                if piece:
                    yield i, piece
            if all(s.done for s in scanners):
                break
        for i, scanner in enumerate(scanners):
            rest = scanner.flush()
            if rest:
                yield i, rest
    finally:
        model.train(was_training)

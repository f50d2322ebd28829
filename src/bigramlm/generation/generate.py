"""Text generation for any model of the shared interface.

One path grows ``n`` continuations of a prompt side by side (``sample_tokens`` over a
``decoding`` decoder): ``generate_candidates`` streams them as text that ends at a stop
string, and ``generate_ids``/``generate_text`` are its one-stream case. The single
exception is one stream of a Markov chain (the bigram's ``sample``), which walks the
chain from pools of pre-drawn tokens (``MarkovChainSampler``) at millions of tokens per
second, since it never needs the network.
"""

from __future__ import annotations

from typing import Iterator, Sequence

import numpy as np
import torch

from bigramlm.errors import BigramLMError
from bigramlm.generation.checks import check_seed
from bigramlm.generation.decoding import Decoder, make_decoder
from bigramlm.generation.filters import check_new_tokens, check_sampling, draw_tokens, filter_logits
from bigramlm.generation.markov import MarkovChainSampler
from bigramlm.models.base import LanguageModel
from bigramlm.tokenization import Tokenizer

def _generator(seed: int | None) -> torch.Generator:
    check_seed(seed)
    generator = torch.Generator()
    if seed is None:
        generator.seed()
    else:
        generator.manual_seed(seed)
    return generator


def _context(prompt_ids: Sequence[int] | np.ndarray, start_id: int) -> list[int]:
    ids = [int(i) for i in np.asarray(prompt_ids).reshape(-1)]
    return ids if ids else [start_id]


def sample_tokens(
    decoder: Decoder,
    max_new_tokens: int,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    generator: torch.Generator | None = None,
    greedy_rows: int = 0,
) -> Iterator[torch.Tensor]:
    """Yield the next token of every row, (n,), ``max_new_tokens`` times.

    The first ``greedy_rows`` rows take the likeliest token instead of a sample: one
    decode then gives the model's single best guess beside its alternatives.
    """
    for i in range(max_new_tokens):
        tokens = draw_tokens(decoder.logits, temperature, top_k, top_p, generator)
        if greedy_rows:
            tokens[:greedy_rows] = decoder.logits[:greedy_rows].argmax(dim=-1).cpu()
        yield tokens
        if i + 1 < max_new_tokens:  # the last token needs no successor
            decoder.push(tokens)


@torch.no_grad()
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
    check_new_tokens(max_new_tokens)
    check_sampling(temperature, top_k, top_p)
    context = _context(prompt_ids, start_id)
    generator = _generator(seed)
    if max_new_tokens == 0:
        return
    if model.markov:
        probs = filter_logits(model.transition_logits().detach().cpu(), temperature, top_k, top_p)
        yield from MarkovChainSampler(probs.numpy(), seed=seed).walk(context[-1], max_new_tokens)
        return
    was_training = model.training
    model.eval()
    try:
        decoder = make_decoder(model, [context], kv_cache)
        for tokens in sample_tokens(decoder, max_new_tokens, temperature, top_k, top_p, generator):
            yield tokens.tolist()
    finally:
        model.train(was_training)


class StopScanner:
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
    scanner = StopScanner(stop) if stop else None
    for chunk in generate_ids(model, prompt_ids, max_new_tokens, temperature, top_k, top_p, seed, tokenizer.start_id, kv_cache):
        text = tokenizer.decode(chunk)
        if scanner is None:
            yield text
            continue
        safe = scanner.feed(text)
        if safe:
            yield safe
        if scanner.done:
            return
    rest = scanner.flush() if scanner is not None else ""
    if rest:
        yield rest


@torch.no_grad()
def generate_candidates(
    model: LanguageModel,
    tokenizer: Tokenizer,
    prompt: str,
    n: int,
    max_new_tokens: int,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    seed: int | None = None,
    stop: Sequence[str] = (),
    kv_cache: bool = True,
    greedy_rows: int = 0,
) -> Iterator[tuple[int, str]]:
    """Grow ``n`` continuations of ``prompt`` side by side, streaming ``(index, text)``.

    Each candidate ends at its first stop string (which is not included) or after
    ``max_new_tokens``; the pieces of one index concatenate to its final text.
    """
    check_new_tokens(max_new_tokens)
    check_sampling(temperature, top_k, top_p)
    if n < 1:
        raise BigramLMError(f"n must be at least 1 (got {n})", param="n")
    context = _context(tokenizer.encode(prompt, on_unknown="replace") if prompt else [], tokenizer.start_id)
    generator = _generator(seed)
    was_training = model.training
    model.eval()
    try:
        decoder = make_decoder(model, [context] * n, kv_cache)
        scanners = [StopScanner(stop) for _ in range(n)]
        for tokens in sample_tokens(decoder, max_new_tokens, temperature, top_k, top_p, generator, greedy_rows):
            for i, token in enumerate(tokens.tolist()):
                if not scanners[i].done:
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

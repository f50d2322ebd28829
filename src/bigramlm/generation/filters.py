"""Next-token probabilities from logits: temperature, top-k, top-p, and their bounds."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from bigramlm.errors import BigramLMError

MAX_NEW_TOKENS = 10_000_000


def check_new_tokens(max_new_tokens: int) -> None:
    if max_new_tokens < 0:
        raise BigramLMError(f"max_new_tokens must not be negative (got {max_new_tokens})", param="max_new_tokens")
    if max_new_tokens > MAX_NEW_TOKENS:
        raise BigramLMError(f"max_new_tokens {max_new_tokens} is absurd; at most {MAX_NEW_TOKENS:,} per call", param="max_new_tokens")


def check_sampling(temperature: float, top_k: int | None = None, top_p: float | None = None) -> None:
    """One-line errors for settings that could only give NaN or nothing to sample."""
    if not isinstance(temperature, (int, float)) or not math.isfinite(temperature) or not 0 <= temperature <= 100:
        raise BigramLMError(f"temperature must be a finite number in [0, 100] (got {temperature})", param="temperature")
    if top_k is not None and top_k < 1:
        raise BigramLMError(f"top_k must be at least 1 (got {top_k})", param="top_k")
    if top_p is not None and not (math.isfinite(top_p) and 0.0 < top_p <= 1.0):
        raise BigramLMError(f"top_p must be in (0, 1] (got {top_p})", param="top_p")


def filter_logits(
    logits: torch.Tensor, temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None
) -> torch.Tensor:
    """Next-token probabilities from logits (..., V) after temperature, top-k and top-p.

    Temperature 0 means greedy: all mass on the arg-max.
    """
    check_sampling(temperature, top_k, top_p)
    logits = logits.float()
    if temperature == 0:
        return F.one_hot(logits.argmax(dim=-1), logits.size(-1)).float()
    # Subtract the maximum before dividing, in float64: a tiny temperature (1e-300)
    # then sends every gap to -inf (greedy), where dividing first overflowed to NaN.
    logits = (logits.double() - logits.double().amax(dim=-1, keepdim=True)) / temperature
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
    return probs.float()

"""Next-token probabilities from logits: temperature, top-k, top-p, and their bounds."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from bigramlm.generation.checks import MAX_NEW_TOKENS, check_new_tokens, check_sampling

__all__ = ["MAX_NEW_TOKENS", "check_new_tokens", "check_sampling", "filter_logits"]


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

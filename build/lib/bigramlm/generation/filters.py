"""Next-token probabilities from logits: temperature, top-k, top-p, and their bounds."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from bigramlm.generation.checks import check_sampling

#: Top-p looks for its nucleus among the likeliest tokens first: sorting and sampling the
#: whole vocabulary (2,048 BPE tokens) for each of 96 rows took a quarter of a support
#: evaluation's decode. A row whose nucleus is wider falls back to the whole sort.
NUCLEUS_CANDIDATES = 64


def filter_logits(
    logits: torch.Tensor, temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None
) -> torch.Tensor:
    """Next-token probabilities from logits (..., V) after temperature, top-k and top-p.

    Temperature 0 means greedy: all mass on the arg-max.
    """
    check_sampling(temperature, top_k, top_p)
    return _probabilities(logits, temperature, top_k, top_p)


def _probabilities(logits: torch.Tensor, temperature: float, top_k: int | None, top_p: float | None) -> torch.Tensor:
    """``filter_logits`` without the checks: the decode loop checks its settings once, not every token."""
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


def uniforms(seed: int | np.ndarray, rows: np.ndarray, positions: np.ndarray) -> torch.Tensor:
    """One uniform in [0, 1) per (row, position) of a seeded decode (float64): a counter-based
    hash (splitmix64), so a token's draw depends on its row and place only, never on how
    many tokens a pass drew before it. Plain and speculative decoding, and any batching,
    then draw the same tokens from the same distributions. ``seed`` is one seed, or one per
    draw (rows of several requests decoded together, each with its own)."""
    seeds = np.uint64(seed & (2**64 - 1)) if isinstance(seed, int) else np.asarray(seed).astype(np.uint64)
    with np.errstate(over="ignore"):
        x = (seeds + rows.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)
             + positions.astype(np.uint64) * np.uint64(0xD1B54A32D192ED03))
        for shift, factor in ((30, 0xBF58476D1CE4E5B9), (27, 0x94D049BB133111EB)):
            x = (x ^ (x >> np.uint64(shift))) * np.uint64(factor)
        x = x ^ (x >> np.uint64(31))
    return torch.from_numpy((x >> np.uint64(11)).astype(np.float64) * 2.0**-53)


def _pick(probs: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """The token whose share of the cumulative mass holds ``u`` (inverse CDF; a token of
    no mass is never picked)."""
    cdf = probs.double().cumsum(dim=-1)
    picks = torch.searchsorted(cdf, (u * cdf[:, -1]).unsqueeze(1), right=True).squeeze(1)
    return picks.clamp_max(probs.size(-1) - 1)


def draw_tokens(logits: torch.Tensor, temperature: float, top_k: int | None, top_p: float | None,
                u: torch.Tensor) -> torch.Tensor:
    """One sampled token per row of ``logits`` (B, V), from ``filter_logits``'s distribution,
    with the uniform draws ``u`` (B,) (the settings are the caller's to check, once).

    With top-p and no top-k, the nucleus is taken from the ``NUCLEUS_CANDIDATES`` likeliest
    tokens (normalised over the whole vocabulary, so the distribution is the same), and
    only rows whose nucleus is wider pay for the full sort.
    """
    vocab = logits.size(-1)
    if temperature == 0 or top_k is not None or top_p is None or top_p >= 1.0 or vocab <= NUCLEUS_CANDIDATES:
        return _pick(_probabilities(logits, temperature, top_k, top_p).cpu(), u)
    scaled = (logits.double() - logits.double().amax(dim=-1, keepdim=True)) / temperature
    top, ids = torch.topk(scaled, NUCLEUS_CANDIDATES, dim=-1)  # sorted, likeliest first
    probs = torch.exp(top - torch.logsumexp(scaled, dim=-1, keepdim=True))
    before = probs.cumsum(dim=-1) - probs
    probs = probs.masked_fill(before >= top_p, 0.0)
    wide = before[:, -1] + probs[:, -1] < top_p  # the nucleus reaches past the candidates
    tokens = ids.cpu().gather(1, _pick(probs.cpu(), u).unsqueeze(1)).squeeze(1)
    if bool(wide.any()):
        rows = wide.nonzero().squeeze(1)
        full = _probabilities(logits[rows], temperature, None, top_p).cpu()
        tokens[rows.cpu()] = _pick(full, u[rows.cpu()])
    return tokens

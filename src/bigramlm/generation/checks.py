"""The bounds of generation settings, torch-free: the CLI checks its flags with these
before it loads a model (``import torch`` alone takes 1.7 s quiet, 11-15 s on busy cores)."""

from __future__ import annotations

import math
import secrets

from bigramlm.errors import BigramLMError

MAX_NEW_TOKENS = 10_000_000
MAX_SEED = 2**63 - 1


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


def check_seed(seed: int | None) -> None:
    """torch.Generator takes 64-bit seeds; a negative or larger one overflows in torch."""
    if seed is not None and not 0 <= seed <= MAX_SEED:
        raise BigramLMError(f"seed must be in 0..{MAX_SEED} (got {seed})", param="seed")


def check_decode(max_new_tokens: int, rows_per_batch: int) -> None:
    """A decode's own bounds: its length (``check_new_tokens``) and rows a batch."""
    check_new_tokens(max_new_tokens)
    if rows_per_batch < 1:
        raise BigramLMError(f"rows_per_batch must be at least 1 (got {rows_per_batch})", param="rows_per_batch")


def decode_seed(seed: int | None) -> int:
    """A decode's seed: the one given (checked), or a random one."""
    check_seed(seed)
    return secrets.randbits(63) if seed is None else int(seed)

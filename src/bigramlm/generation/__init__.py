"""Generation: one sampling path for one or many candidates, over the fastest decoder
a model supports (Markov table, KV cache, or re-run window).

``checks`` (the bounds of the settings) is torch-free, so that the CLI can check its
flags before it loads a model; the names below load on first use, as ``bigramlm``'s do.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

#: Public name -> the module that defines it.
_PUBLIC = {
    "CachedDecoder": "bigramlm.generation.decoding",
    "MAX_NEW_TOKENS": "bigramlm.generation.checks",
    "MAX_SEED": "bigramlm.generation.checks",
    "MarkovChainSampler": "bigramlm.generation.markov",
    "StopScanner": "bigramlm.generation.generate",
    "check_new_tokens": "bigramlm.generation.checks",
    "check_sampling": "bigramlm.generation.checks",
    "check_seed": "bigramlm.generation.checks",
    "filter_logits": "bigramlm.generation.filters",
    "generate_batch": "bigramlm.generation.batch",
    "generate_candidates": "bigramlm.generation.generate",
    "generate_ids": "bigramlm.generation.generate",
    "generate_text": "bigramlm.generation.generate",
    "make_decoder": "bigramlm.generation.decoding",
    "sample_tokens": "bigramlm.generation.generate",
}


def __getattr__(name: str) -> Any:
    if name in _PUBLIC:
        value = getattr(import_module(_PUBLIC[name]), name)
        globals()[name] = value  # later lookups skip this function
        return value
    raise AttributeError(f"module 'bigramlm.generation' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_PUBLIC])


__all__ = sorted(_PUBLIC)

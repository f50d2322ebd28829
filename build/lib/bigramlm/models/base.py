"""The one interface every model shares, in the spirit of makemore.

Training, evaluation, generation and the assistant only ever call what is declared
here, so they work for any model. The two optional capabilities are declared too,
with a flag each, instead of being probed with ``hasattr``:

- ``markov``: the next token depends on the last token only (the bigram). Generation
  then samples the chain from ``transition_logits()``, one table row per token.
- ``supports_kv_cache``: the model can decode one new position at a time from a cache
  of keys and values (``new_cache``), instead of re-running its whole window.
"""

from __future__ import annotations

import os
from typing import Any

import torch
import torch.nn as nn

from bigramlm.errors import BigramLMError


class LanguageModel(nn.Module):
    """``forward(idx, targets=None) -> (logits (B, T, V), loss or None)`` and ``get_block_size()``."""

    #: The model's dataclass config, which ``config.json`` stores.
    config: Any
    markov: bool = False
    supports_kv_cache: bool = False

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        raise NotImplementedError

    def get_block_size(self) -> int:
        """The longest context the model can see (for the bigram: the window it trains on)."""
        return int(self.config.block_size)

    def transition_logits(self) -> torch.Tensor:
        """The whole model as a (V, V) matrix of next-token logits; only when ``markov``."""
        raise NotImplementedError(f"{type(self).__name__} is not a Markov chain")

    def new_cache(self, batch_size: int, pad: torch.Tensor | None = None, capacity: int | None = None) -> Any:
        """An empty key/value cache for ``batch_size`` rows whose first ``pad[i]`` positions are
        padding, holding ``capacity`` positions (the block by default); only when ``supports_kv_cache``."""
        raise NotImplementedError(f"{type(self).__name__} has no KV cache")

    def optimizer_groups(self, weight_decay: float) -> list[dict[str, Any]]:
        """AdamW parameter groups; by default every parameter decays."""
        return [{"params": [p for p in self.parameters() if p.requires_grad], "weight_decay": weight_decay}]

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


def physical_memory_bytes() -> int | None:
    """The machine's RAM, where the OS says (POSIX); None elsewhere."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, OSError, ValueError):
        return None


def check_weights_fit(parameters: int, what: str, param: str | tuple[str, ...]) -> None:
    """Refuse a config whose float32 weights alone exceed the machine's memory.

    Such a model can only fail halfway through allocation with a multi-line torch
    error (``train --n-embd 200000`` asked for 480 GB in one Linear); say so up front.
    """
    memory = physical_memory_bytes()
    weight_bytes = 4 * parameters
    if memory is not None and weight_bytes > memory:
        raise BigramLMError(
            f"{what} has {parameters:,} parameters, {weight_bytes / 2**30:,.0f} GiB of float32 weights: "
            f"more than this machine's {memory / 2**30:,.0f} GiB of memory",
            param=param,
        )

"""Train/val splits of a token stream and random block batches."""

from __future__ import annotations

import torch

from bigramlm.errors import BigramLMError


def split_tokens(ids: torch.Tensor, train_fraction: float = 0.9) -> tuple[torch.Tensor, torch.Tensor]:
    """Contiguous split as in the lecture: the first 90% trains, the last 10% validates."""
    n = int(train_fraction * len(ids))
    return ids[:n], ids[n:]


def check_block_size(data: torch.Tensor, block_size: int, name: str = "split") -> None:
    if block_size < 1:
        raise BigramLMError(f"block_size must be at least 1 (got {block_size})", param="block_size")
    if block_size >= len(data):
        raise BigramLMError(
            f"block_size {block_size} is not shorter than the {name} ({len(data)} tokens); "
            "use a smaller block_size or more data",
            param="block_size",
        )


def get_batch(
    data: torch.Tensor,
    batch_size: int,
    block_size: int,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw ``batch_size`` random windows; ``y`` is ``x`` shifted one token to the left.

    One gather over a (batch, block+1) index grid replaces the notebook's Python loop
    of slices and ``torch.stack``.
    """
    starts = torch.randint(len(data) - block_size, (batch_size,), generator=generator)
    grid = starts.unsqueeze(1) + torch.arange(block_size + 1)
    chunk = data[grid]
    return chunk[:, :-1], chunk[:, 1:]

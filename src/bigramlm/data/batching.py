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
    return windows_at(data, starts, block_size)


def row_starts_that_fit(row_starts: torch.Tensor, length: int, block_size: int) -> torch.Tensor:
    """The row starts from which a whole window (``block_size`` + 1 tokens) fits in ``length``."""
    return row_starts[row_starts <= length - block_size - 1]


def get_row_batch(
    data: torch.Tensor,
    row_starts: torch.Tensor,
    batch_size: int,
    block_size: int,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Windows that begin where a row (an instruction-response block) begins.

    A window cut anywhere often starts inside a reply, without the message it answers;
    starting at a row gives every window the whole prompt the model will be asked to
    continue (``row_starts`` must already fit: see ``row_starts_that_fit``).
    """
    pick = torch.randint(len(row_starts), (batch_size,), generator=generator)
    return windows_at(data, row_starts[pick], block_size)


def windows_at(data: torch.Tensor, starts: torch.Tensor, block_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs and targets of the windows starting at ``starts``, in one gather."""
    grid = starts.unsqueeze(1) + torch.arange(block_size + 1)
    chunk = data[grid]
    return chunk[:, :-1], chunk[:, 1:]

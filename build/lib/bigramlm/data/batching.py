"""Random block batches of a token stream: windows anywhere, or windows that start where
a row starts; and rows encoded into one stream that remembers where each row starts.

``train`` and ``learn`` both draw their batches through ``draw_windows`` and encode
their rows through ``encode_units``.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from bigramlm.errors import BigramLMError
from bigramlm.tokenization import Tokenizer


def encode_units(tokenizer: Tokenizer, units: Sequence[str], on_unknown: str = "error") -> tuple[torch.Tensor, torch.Tensor]:
    """The ids of ``units`` (rows of text) one after another, and where each unit starts.

    Each unit is encoded on its own: both tokenizers encode line by line, and a row ends
    with a newline, so the concatenation is exactly the encoding of the whole text.
    """
    pieces = [tokenizer.encode(unit, on_unknown=on_unknown) for unit in units]
    lengths = torch.tensor([len(p) for p in pieces], dtype=torch.long)
    ids = torch.from_numpy(np.concatenate(pieces)) if pieces else torch.zeros(0, dtype=torch.long)
    return ids, torch.cumsum(lengths, 0) - lengths


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


def draw_windows(data: torch.Tensor, row_starts: torch.Tensor | None, batch_size: int, block_size: int,
                 generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``batch_size`` random windows: anywhere (``row_starts`` None), or starting at rows that fit."""
    if row_starts is None:
        return get_batch(data, batch_size, block_size, generator)
    return get_row_batch(data, row_starts, batch_size, block_size, generator)


def windows_at(data: torch.Tensor, starts: torch.Tensor, block_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs and targets of the windows starting at ``starts``, in one gather."""
    grid = starts.unsqueeze(1) + torch.arange(block_size + 1)
    chunk = data[grid]
    return chunk[:, :-1], chunk[:, 1:]

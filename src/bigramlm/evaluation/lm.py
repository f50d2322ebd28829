"""Exact evaluation: mean next-token cross-entropy over a whole split."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F

from bigramlm.errors import BigramLMError
from bigramlm.models.base import LanguageModel


@dataclass
class EvalResult:
    split: str
    loss: float  # mean nats per token
    bits_per_char: float  # total nats / characters, in bits
    perplexity: float
    tokens: int

    def to_dict(self) -> dict:
        """Strict JSON: a non-finite figure (possible only from a broken model) becomes null."""
        return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in asdict(self).items()}


@torch.no_grad()
def total_nats(
    model: LanguageModel, ids: torch.Tensor, block_size: int | None = None, batch_windows: int = 256
) -> tuple[float, int]:
    """Sum of next-token negative log-likelihoods over every target in ``ids``.

    ``ids`` is cut into consecutive, non-overlapping windows of the model's block size
    (the last one may be shorter); each window's targets are the following tokens, so
    every token from the second on is predicted exactly once.
    """
    block_size = block_size or model.get_block_size()
    n_targets = len(ids) - 1
    if n_targets < 1:
        raise BigramLMError("cannot evaluate a split with fewer than 2 tokens")
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    inputs, targets = ids[:-1], ids[1:]
    full = n_targets // block_size
    nats = 0.0
    try:
        if full:
            x_all = inputs[: full * block_size].view(full, block_size)
            y_all = targets[: full * block_size].view(full, block_size)
            for start in range(0, full, batch_windows):
                x = x_all[start : start + batch_windows].to(device)
                y = y_all[start : start + batch_windows].to(device)
                logits, _ = model(x)
                nats += F.cross_entropy(
                    logits.reshape(-1, logits.size(-1)).float(), y.reshape(-1), reduction="sum"
                ).item()
        rest = n_targets - full * block_size
        if rest:
            x = inputs[full * block_size :].unsqueeze(0).to(device)
            y = targets[full * block_size :].unsqueeze(0).to(device)
            logits, _ = model(x)
            nats += F.cross_entropy(
                logits.reshape(-1, logits.size(-1)).float(), y.reshape(-1), reduction="sum"
            ).item()
    finally:
        model.train(was_training)
    return nats, n_targets


def summarize(split: str, nats: float, tokens: int, characters: int | None = None) -> EvalResult:
    """Turn summed nats into the reported figures.

    Bits per character divides by the characters the targets spell, so that models
    with different tokenizers compare fairly; for a char tokenizer it equals loss/ln 2.
    """
    loss = nats / tokens
    characters = characters if characters is not None else tokens
    return EvalResult(
        split=split,
        loss=loss,
        bits_per_char=nats / characters / math.log(2),
        perplexity=math.exp(min(loss, 700.0)),
        tokens=tokens,
    )


def evaluate_ids(
    model: LanguageModel,
    ids: torch.Tensor,
    split: str = "val",
    characters: int | None = None,
    block_size: int | None = None,
) -> EvalResult:
    nats, tokens = total_nats(model, ids, block_size=block_size)
    return summarize(split, nats, tokens, characters)

"""The closed-form bigram: maximum-likelihood counts, the optimum every trained bigram is measured against."""

from __future__ import annotations

import torch


def fit_counts(ids: torch.Tensor, vocab_size: int, alpha: float = 1.0) -> torch.Tensor:
    """Closed-form maximum-likelihood bigram with add-``alpha`` smoothing, as log-probs.

    This is the exact optimum of the bigram model class on ``ids``: any trained bigram
    can be measured against it.
    """
    pairs = ids[:-1].long() * vocab_size + ids[1:].long()
    counts = torch.bincount(pairs, minlength=vocab_size * vocab_size).view(vocab_size, vocab_size)
    counts = counts.double() + alpha
    totals = counts.sum(dim=1, keepdim=True)
    # A row never seen (possible only with alpha == 0) falls back to uniform.
    probs = torch.where(totals > 0, counts / totals.clamp_min(1e-300), torch.full_like(counts, 1.0 / vocab_size))
    return probs.log().float()

"""The learning-rate schedule: linear warmup, then constant, cosine or linear decay."""

from __future__ import annotations

import math

from bigramlm.config import TrainConfig


def lr_factor(config: TrainConfig, step: int, progress: float) -> float:
    """Multiplier of the base learning rate for optimizer step ``step`` (0-based).

    Linear warmup over ``warmup_steps``, times a cosine from 1 down to
    ``min_lr_ratio`` as ``progress`` goes from 0 to 1. ``progress`` is the fraction of
    steps done, or of the training time budget under ``time_limit``; the product keeps
    the curve smooth where warmup ends.
    """
    warm = min(1.0, (step + 1) / config.warmup_steps) if config.warmup_steps else 1.0
    if config.lr_schedule == "constant":
        return warm
    p = min(max(progress, 0.0), 1.0)
    shape = 1.0 - p if config.lr_schedule == "linear" else 0.5 * (1.0 + math.cos(math.pi * p))
    return warm * (config.min_lr_ratio + (1.0 - config.min_lr_ratio) * shape)

"""The learning-rate schedule: linear warmup, then constant, cosine or linear decay."""

from __future__ import annotations

import math

from bigramlm.config import TrainConfig

#: Under a time limit the steps a run gets are not known in advance, and a busy machine
#: can make ``warmup_steps`` a large share of them (50 steps were a fifth of a loaded
#: 36 s run, which took 240): the warmup then ends by this share of the budget at the
#: latest, as ``default_train_config`` caps a short step-sized run's at a tenth.
TIME_WARMUP_SHARE = 0.1


def lr_factor(config: TrainConfig, step: int, progress: float) -> float:
    """Multiplier of the base learning rate for optimizer step ``step`` (0-based).

    Linear warmup over ``warmup_steps``, times a cosine (or a line) from 1 down to
    ``min_lr_ratio`` as ``progress`` goes from 0 to 1. ``progress`` is the fraction of
    steps done, or of the training time budget under ``time_limit``; the product keeps
    the curve smooth where warmup ends. Warmup reaches the base rate at step
    ``warmup_steps - 1`` (``TrainConfig.validate`` keeps it below ``steps``), or under
    a time limit by ``TIME_WARMUP_SHARE`` of the budget if that comes first.
    """
    warm = min(1.0, (step + 1) / config.warmup_steps) if config.warmup_steps else 1.0
    if config.time_limit and warm < 1.0:
        warm = max(warm, min(1.0, progress / TIME_WARMUP_SHARE))
    if config.lr_schedule == "constant":
        return warm
    p = min(max(progress, 0.0), 1.0)
    shape = 1.0 - p if config.lr_schedule == "linear" else 0.5 * (1.0 + math.cos(math.pi * p))
    return warm * (config.min_lr_ratio + (1.0 - config.min_lr_ratio) * shape)

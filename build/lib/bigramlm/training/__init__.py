"""Training: the config and recipes, the loop, the counts fit, the optimizer, the schedule,
the clock and time budget, torch.distributed, devices, CPU threads and loss plots.

A run (``loop.train``) is ``prepare`` (tokenizer, splits, model, evaluators), ``restore``
(a fresh run directory or the resume checkpoint, into one ``state.TrainState``), the
steps (``step``) with the hooks between them (``hooks``: metrics, evaluation, keep-best,
checkpoints), and ``finish`` (best weights, final evaluation, eval.json, loss.png).

``TrainConfig`` and the recipes load without torch (``--help`` stays instant); the
loop, which imports torch and the run directory, is loaded on first use of ``train``.
"""

from __future__ import annotations

from typing import Any

from bigramlm.config import TrainConfig
from bigramlm.training.recipes import GPT_BUDGET_RECIPES, GPT_TRAIN_DEFAULTS, default_train_config, gpt_budget_recipe

_LOOP_NAMES = ("train", "TrainResult")


def __getattr__(name: str) -> Any:
    # The loop imports torch (1.7 s on quiet cores, 11-15 s on busy ones); the CLI reads
    # the recipes above for --help, which must not wait for it.
    if name in _LOOP_NAMES:
        from bigramlm.training import loop

        return getattr(loop, name)
    raise AttributeError(f"module 'bigramlm.training' has no attribute {name!r}")


__all__ = [
    "GPT_BUDGET_RECIPES",
    "GPT_TRAIN_DEFAULTS",
    "TrainConfig",
    "TrainResult",
    "default_train_config",
    "gpt_budget_recipe",
    "train",
]

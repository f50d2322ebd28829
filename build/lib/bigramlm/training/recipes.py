"""The measured training recipes: the GPT's CPU defaults, and its size for a time budget.

Torch-free, like ``bigramlm.config``, so that the CLI can show defaults in ``--help``.
"""

from __future__ import annotations

from typing import Any

from bigramlm.config import TrainConfig
from bigramlm.errors import BigramLMError


#: The CPU recipe of ``--model gpt`` with the ``cpu`` model preset (4 layers), which a
#: run without ``--time-limit`` (or with 600 s and more) trains; shorter budgets resize it
#: (``GPT_BUDGET_RECIPES``). For this model short runs are limited by optimizer steps,
#: not tokens: at equal wall time batch 16 beat 8, 24 and 32, and lr 8e-3 beat
#: 2e-3..6e-3 (1e-2 and up diverged); at 600 steps a linear decay to 0 beat cosine to
#: 0.1 (full val 1.969 vs 1.986). The step itself is tuned in
#: benchmarks/gpt_cpu_tuning.py. Anything not listed keeps the notebook's.
GPT_TRAIN_DEFAULTS: dict[str, Any] = {
    "steps": 2000,
    "learning_rate": 8e-3,
    "batch_size": 16,
    "block_size": 64,
    "weight_decay": 0.1,
    "beta2": 0.99,
    "grad_clip": 1.0,
    "warmup_steps": 50,
    "lr_schedule": "linear",
    "min_lr_ratio": 0.0,
    "eval_every": 250,
    "checkpoint_every": 250,
    "eval_tokens": 16384,
    "keep_best": True,
    "amp": "auto",
}


#: Under ``--time-limit`` with no size given, the GPT is sized to the budget: a short
#: budget on a small CPU buys few tokens, and a shallow model makes more of them (its
#: steps are cheaper and it needs fewer tokens per parameter). Full-val losses of whole
#: ``bigramlm train --time-limit T`` processes on 2 cores, measured in one session:
#:
#:   T      1 layer, batch 32   2 layers, batch 32   4 layers (cpu preset), batch 16
#:   36 s   1.706, 1.729        1.809                1.975, 2.054
#:   64 s   1.672               1.716                1.879
#:   128 s  1.605               1.597                1.693
#:   600 s                      1.513                1.510
#:
#: (1 layer at 36 s: lr 1.5e-2 1.718, batch 48 1.710, width 192 1.746.) Each row is
#: (budget below which it applies, model overrides, training overrides); budgets past
#: the last row keep the ``cpu`` preset and ``GPT_TRAIN_DEFAULTS``.
GPT_BUDGET_RECIPES: list[tuple[float, dict[str, Any], dict[str, Any]]] = [
    (100.0, {"n_layer": 1}, {"batch_size": 32, "learning_rate": 1e-2}),
    (600.0, {"n_layer": 2}, {"batch_size": 32, "learning_rate": 1e-2}),
]


def gpt_budget_recipe(time_limit: float | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """(model overrides, training overrides) of the GPT recipe for a wall-clock budget.

    Both are empty without a time limit or past the table's last budget.
    """
    if time_limit is not None:
        for below, model, training in GPT_BUDGET_RECIPES:
            if time_limit < below:
                return dict(model), dict(training)
    return {}, {}


def default_train_config(model_name: str, **overrides: Any) -> TrainConfig:
    """The defaults for ``model_name`` (the notebook's for the bigram), then ``overrides``."""
    base = dict(GPT_TRAIN_DEFAULTS) if model_name == "gpt" else {}
    given = {k: v for k, v in overrides.items() if v is not None}
    base.update(given)
    steps, warmup = base.get("steps", TrainConfig.steps), base.get("warmup_steps", 0)
    if "warmup_steps" not in given and warmup >= steps:
        # A short run keeps the recipe's shape: warm up over its first tenth, not past its end.
        base["warmup_steps"] = steps // 10
    try:
        return TrainConfig(**base)
    except TypeError as exc:  # an unknown setting: say it in one line
        raise BigramLMError(f"unknown training setting: {exc}") from None




#: ``bigramlm train --recipe support``: the support model, trained from scratch on these 2
#: cores within ``time_limit`` (20 minutes by default, understanding included). Measured on
#: the Bitext sample (notes in ``bigramlm.support.recipe``):
#:
#: - byte-level BPE of 2,048 tokens: 4.64 characters a token (512: 2.65, 1,024: 4.13,
#:   4,096: 4.78, 8,192: 4.81), so a labelled row is 182 tokens on average, 300 at the
#:   90th percentile; beyond 2,048 the rows hardly shorten while the output layer grows;
#: - the block holds the whole row (message, labels and reply) for 99% of rows: the
#:   recipe measures the 99th percentile on the train rows and rounds it up to 32 (384
#:   on the sample), so the reply is never written after the message has scrolled away;
#: - windows start where a row starts (``batching="rows"``), so every window the model
#:   learns from holds the message its reply answers;
#: - the labelled format: the intent and category lines sit between the message and the
#:   reply, and generation is conditioned on the intent the assistant understood.
SUPPORT_TRAIN_DEFAULTS: dict[str, Any] = {
    "time_limit": 1200.0,
    "steps": 1_000_000_000,  # the clock ends the run
    "tokenizer": "bpe",
    "vocab_size": 2048,
    "batching": "rows",
    "batch_size": 16,
    "learning_rate": 2e-3,
    "weight_decay": 0.1,
    "beta2": 0.99,
    "grad_clip": 1.0,
    "warmup_steps": 100,
    "lr_schedule": "linear",
    "min_lr_ratio": 0.0,
    "eval_every": 100,
    "checkpoint_every": 100,
    "eval_tokens": 16384,
    "keep_best": True,
    "amp": "auto",
}
SUPPORT_MODEL: dict[str, Any] = {"n_layer": 4, "n_head": 4, "n_embd": 256, "dropout": 0.0}
#: Shorter budgets train a smaller model (its steps are cheaper): (budget below which
#: it applies, model overrides, training overrides).
SUPPORT_BUDGET_RECIPES: list[tuple[float, dict[str, Any], dict[str, Any]]] = [
    (400.0, {"n_layer": 2, "n_head": 4, "n_embd": 128}, {"learning_rate": 3e-3}),
]
#: The share of rows whose whole labelled block must fit in the context.
SUPPORT_ROW_COVERAGE = 0.99


def support_recipe(time_limit: float | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """(model config, training overrides) of the support recipe for a budget in seconds."""
    budget = SUPPORT_TRAIN_DEFAULTS["time_limit"] if time_limit is None else time_limit
    model, training = dict(SUPPORT_MODEL), {**SUPPORT_TRAIN_DEFAULTS, "time_limit": budget}
    for below, model_overrides, training_overrides in SUPPORT_BUDGET_RECIPES:
        if budget < below:
            model.update(model_overrides)
            training.update(training_overrides)
            break
    return model, training

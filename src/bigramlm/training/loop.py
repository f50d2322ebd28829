"""Fitting models: AdamW on random batches (``sgd``) or the closed-form bigram (``counts``).

``train`` owns the run directory: it writes the config and tokenizer first (so a killed
run can be resumed), a resume checkpoint every ``checkpoint_every`` steps, metrics as
JSON lines, and at the end the weights, the final evaluation and a loss-curve PNG.

The defaults of ``TrainConfig`` are the notebook's (plain AdamW, constant lr), which
the bigram keeps. ``--model gpt`` starts from ``GPT_TRAIN_DEFAULTS`` instead: decay and
no-decay parameter groups, linear warmup then cosine decay, gradient clipping, and a
schedule that can be sized to a wall-clock budget (``time_limit``). Under ``torchrun``
the model is wrapped in DistributedDataParallel (see ``training.distributed``).

A run is: ``prepare`` (tokenizer, splits, model, evaluators), ``restore`` (a fresh
directory or the resume checkpoint, into one ``TrainState``), the steps (``step``)
with the hooks between them (``hooks``), and ``finish``. All of its time is read
through one clock, ``now``; ``budget`` decides when a time-limited run stops.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, cast

import torch.nn as nn

from bigramlm._fs import atomic_write_text
from bigramlm.checkpoint import EVAL, save_run_files
from bigramlm.config import TrainConfig
from bigramlm.data.text import TextData
from bigramlm.errors import BigramLMError
from bigramlm.evaluation.lm import EvalResult
from bigramlm.models.bigram import BigramLanguageModel
from bigramlm.training.budget import TimeBudget, exit_allowance
from bigramlm.training.clock import skip_exit_collection
from bigramlm.training.counts import fit_counts
from bigramlm.training.distributed import setup as setup_distributed
from bigramlm.training.evaluator import SplitEvaluator
from bigramlm.training.finish import finish
from bigramlm.training.hooks import ProgressBar, between_steps, check_loss
from bigramlm.training.metrics import append_metrics
from bigramlm.training.optim import make_optimizer
from bigramlm.training.prepare import TrainSetup, prepare
from bigramlm.training.restore import fresh_state, resume_config, resumed_state
from bigramlm.training.state import TrainState
from bigramlm.training.step import agree_after_step, agree_to_start, take_step


@dataclass
class TrainResult:
    run_dir: Path
    steps: int
    val: EvalResult
    seconds: float  # on the run's clock, from ``started_at`` (the process start under the CLI)
    history: list[dict[str, Any]] = field(default_factory=list)


def train(
    data: TextData,
    out_dir: str | Path,
    model_name: str = "bigram",
    model_config: dict[str, Any] | None = None,
    config: TrainConfig | None = None,
    resume: bool = False,
    progress: bool = True,
    on_step: Callable[[int, float], None] | None = None,
    log: Callable[[str], None] | None = None,
    after_step: Callable[[int, nn.Module], None] | None = None,
    started_at: float | None = None,
    steps: int | None = None,
    now: Callable[[], float] = time.time,
) -> TrainResult:
    """Train a model on ``data`` into ``out_dir``; see the module docstring.

    ``on_step(step, loss)`` sees the loss of each optimizer step (the mean over ranks
    under torchrun); ``after_step(step, model)`` sees the bare model after the update.
    ``now`` is the clock every time of the run is read on (``time.time``; tests pass a
    fake one). ``started_at`` (a time of ``now``) is where ``time_limit`` counts from:
    the call by default; the CLI passes ``process_start_time()``.

    ``resume`` continues the run in ``out_dir`` with the settings it was started with
    (``model_name``, ``model_config`` and ``config`` are not used); ``steps``, with
    ``resume`` only, extends a step-sized run to that many steps (see ``restore``).
    """
    called_at = now()
    started_at = called_at if started_at is None else started_at
    out_dir = Path(out_dir)
    config = config or TrainConfig()
    if resume:
        saved = resume_config(out_dir, steps)
        config, model_name, model_config = saved.training, saved.model.name, saved.model.config
    elif steps is not None:
        raise BigramLMError("steps extends a resumed run; a new run takes its steps from config", param="steps")
    config.validate()
    dist, device_name = setup_distributed(config.device)
    try:
        log = log or (lambda message: None)
        setup = prepare(data, out_dir, model_name, model_config, config, resume, dist, device_name, log, now)
        if config.method == "counts":
            return _fit_counts(setup, started_at)
        exit_seconds = exit_allowance(called_at - started_at, config.time_limit or 0.0)
        if exit_seconds > 0:  # the budget counts this process's exit: make it cheap
            skip_exit_collection()
        return _fit_sgd(setup, resume, started_at, exit_seconds, on_step, after_step, progress)
    finally:
        dist.close()


def _fit_counts(setup: TrainSetup, started_at: float) -> TrainResult:
    model, config = setup.model, setup.config
    if setup.model_name != "bigram":
        raise BigramLMError("method counts fits the bigram only; use method sgd for other models", param="method")
    assert isinstance(model, BigramLanguageModel)
    model.load_log_probs(fit_counts(setup.train_ids, setup.tokenizer.vocab_size, config.alpha))
    val = setup.full_eval(model)
    setup.run_config.training = dataclasses.replace(config, steps=0)  # the closed form takes no step
    if setup.main:
        out_dir = setup.out_dir
        save_run_files(out_dir, setup.run_config, model, setup.tokenizer)
        setup.data.write_run_files(out_dir)
        setup.metrics_path.unlink(missing_ok=True)
        append_metrics(setup.metrics_path, [{"step": 0, "val_loss": val.loss}])
        atomic_write_text(out_dir / EVAL, json.dumps(val.to_dict(), indent=2))
    return TrainResult(setup.out_dir, 0, val, setup.now() - started_at)


def _fit_sgd(
    setup: TrainSetup,
    resume: bool,
    started_at: float,
    exit_seconds: float,
    on_step: Callable[[int, float], None] | None,
    after_step: Callable[[int, nn.Module], None] | None,
    progress: bool,
) -> TrainResult:
    setup.optimizer = make_optimizer(setup.model, setup.config)
    state = resumed_state(setup, started_at) if resume else fresh_state(setup, started_at)
    setup.train_model = _wrap_for_training(setup)
    if setup.config.time_limit:
        state.budget = _plan_budget(setup, state, exit_seconds)
    _run_steps(setup, state, on_step, after_step, progress)
    final = finish(setup, state)
    return TrainResult(setup.out_dir, state.step, final, state.clock.elapsed(), state.history)


def _wrap_for_training(setup: TrainSetup) -> nn.Module:
    model: nn.Module = setup.model
    device = setup.device
    if setup.dist.enabled:
        from torch.nn.parallel import DistributedDataParallel

        model = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    if setup.config.compile:
        import torch

        model = cast(nn.Module, torch.compile(model))  # an OptimizedModule: the stubs say a plain callable
    return model


def _run_steps(
    setup: TrainSetup,
    state: TrainState,
    on_step: Callable[[int, float], None] | None,
    after_step: Callable[[int, nn.Module], None] | None,
    progress: bool,
) -> None:
    bar = ProgressBar(setup, state) if progress and setup.main else None
    setup.model.train()
    agree_to_start(setup, state)
    if state.budget is not None:
        state.budget.start_steps()
    try:
        while not state.stop:
            raw = take_step(setup, state)
            agree_after_step(setup, state, raw)
            check_loss(setup, state)
            if on_step is not None:
                on_step(state.step, state.loss)
            if after_step is not None:
                after_step(state.step, setup.model)
            between_steps(setup, state, bar)
    finally:
        if bar is not None:
            bar.close()


def _plan_budget(setup: TrainSetup, state: TrainState, exit_seconds: float) -> TimeBudget:
    """The time budget's first reserve, from timing a few windows of evaluation."""
    clock, config = state.clock, setup.config
    if setup.main:
        # Pay matplotlib's import (seconds on a busy machine) now, not inside the
        # reserve at the end where it would overrun the budget.
        with contextlib.suppress(ImportError):
            import matplotlib.figure  # noqa: F401
    # What runs after the clock says stop: the last periodic eval (unless it is the
    # full one), then the full eval.
    periodic, full = setup.periodic_eval, setup.full_eval
    finish_tokens = full.tokens + (periodic.tokens if periodic is not full else 0)
    budget = TimeBudget(clock, finish_tokens, periodic.tokens, exit_seconds)
    tokens, seconds = _probe_eval_speed(setup)
    budget.evaluated(tokens, seconds)
    assert clock.end is not None  # a time limit sets it
    left = clock.end - clock.now()
    setup.log(f"time limit {config.time_limit:g} s: training until {clock.in_budget_frame(clock.end):.1f} s "
              f"({max(left, 0.0):.1f} s from now), {clock.reserve:.1f} s kept for the final evaluation and writing the run")
    return budget


def _probe_eval_speed(setup: TrainSetup) -> tuple[int, float]:
    """Tokens and seconds of evaluating up to 64 windows of val, after a one-window warm-up.

    The first call pays one-off costs, so this errs long; the periodic evaluations
    replace it with a measured rate.
    """
    config, val_ids, dist = setup.config, setup.val_ids, setup.dist
    windows = max(1, min(64, (len(val_ids) - 1) // config.block_size))
    sample = val_ids[: windows * config.block_size + 1]
    SplitEvaluator(dist, sample[: config.block_size + 1], config.block_size, 1, config.amp)(setup.model)  # warm-up
    probe = SplitEvaluator(dist, sample, config.block_size, 1, config.amp)
    started = setup.now()
    probe(setup.model)
    return probe.tokens, setup.now() - started

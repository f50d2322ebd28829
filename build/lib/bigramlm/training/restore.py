"""Starting a run: a fresh run directory, or a run restored from its resume checkpoint.

Resuming takes everything from the run: its ``config.json``, tokenizer, weights,
optimizer, RNG streams, metrics and the seconds it has spent, so that the resumed run
is the uninterrupted one, bit for bit. A run is finished once its final evaluation
(``eval.json``) is written; resuming a finished run is an error that says so.

The one setting a resume may change is ``steps``, to extend a step-sized run: the run
goes on from its last step to the new total, which ``config.json`` then records. The
schedule is the one of the new total (an extended linear or cosine decay climbs back
to where the longer schedule stands at the resumed step). A run sized by its
``time_limit`` cannot be extended: its budget is spent.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import torch

from bigramlm.checkpoint import EVAL, RESUME, RunConfig, read_config, save_run_files, write_config
from bigramlm.checkpoint.resume import load_resume, read_trainer_state
from bigramlm.config import TrainConfig
from bigramlm.errors import BigramLMError
from bigramlm.training.clock import TrainingClock
from bigramlm.training.metrics import read_metrics, truncate_metrics
from bigramlm.training.prepare import TrainSetup
from bigramlm.training.state import TrainState, load_trainer_record, rank_rng, restore_rng


def resume_config(out_dir: Path, steps: int | None = None) -> RunConfig:
    """The saved config of the run to resume in ``out_dir``, extended to ``steps`` if given."""
    saved = read_config(out_dir)
    if not (out_dir / RESUME).exists():
        raise BigramLMError(f"{out_dir} has no resume checkpoint ({RESUME}); nothing to resume")
    done = int(read_trainer_state(out_dir)["step"])
    training = saved.training
    if steps is None:
        if (out_dir / EVAL).exists():
            raise BigramLMError(_finished(out_dir, done, training), param="steps")
        return saved
    if training.time_limit is not None:
        raise BigramLMError(
            f"steps cannot extend the run in {out_dir}: its length is set by its time_limit "
            f"({training.time_limit:g} s); train a new run",
            param="steps",
        )
    if isinstance(steps, bool) or not isinstance(steps, int) or steps <= done:
        raise BigramLMError(f"steps ({steps}) must be more than the {done} steps the run in {out_dir} has taken", param="steps")
    saved.training = dataclasses.replace(training, steps=steps)
    saved.training.validate()
    return saved


def _finished(out_dir: Path, done: int, training: TrainConfig) -> str:
    if training.time_limit is not None:
        return (f"the run in {out_dir} finished at step {done} when its time_limit of {training.time_limit:g} s "
                "was spent; train a new run to go further")
    return (f"the run in {out_dir} finished at step {done}; to train it further, resume with steps "
            f"above {done} (the schedule stretches to the new total)")


def _clock(setup: TrainSetup, started_at: float, done_seconds: float = 0.0, spent_seconds: float | None = None) -> TrainingClock:
    config = setup.config
    return TrainingClock(config.steps, config.time_limit, started_at, done_seconds, now=setup.now, spent_seconds=spent_seconds)


def _generator(setup: TrainSetup) -> torch.Generator:
    return torch.Generator().manual_seed(setup.config.seed + setup.dist.rank)  # each rank its own batches


def fresh_state(setup: TrainSetup, started_at: float) -> TrainState:
    """A new run: its directory starts with the config, tokenizer and initial weights."""
    if setup.main:
        out_dir = setup.out_dir
        save_run_files(out_dir, setup.run_config, setup.model, setup.tokenizer)
        setup.data.write_run_files(out_dir)
        for stale in (setup.metrics_path, out_dir / RESUME, out_dir / EVAL):
            stale.unlink(missing_ok=True)
    return TrainState(clock=_clock(setup, started_at), generator=_generator(setup))


def resumed_state(setup: TrainSetup, started_at: float) -> TrainState:
    """The run's state at its last checkpoint: weights, optimizer, RNG, metrics, seconds."""
    config, dist, out_dir = setup.config, setup.dist, setup.out_dir
    record, rng = load_resume(out_dir, setup.model, setup.optimizer)
    saved = load_trainer_record(record, config.ema_decay)
    state = TrainState(
        clock=_clock(setup, started_at, saved["train_seconds"], saved["budget_seconds"]),
        generator=_generator(setup),
        step=saved["step"],
        loss_ema=saved["loss_ema"],
        best=saved["best"],
    )
    mine = rank_rng(rng, dist.rank)
    if mine is not None:
        restore_rng(state.generator, mine)
    else:  # a checkpoint from a smaller world: give this rank a fresh, distinct stream
        state.generator.manual_seed(config.seed + dist.rank + 7919 * state.step)
    if config.keep_best and math.isfinite(state.best) and (out_dir / "model.safetensors").exists():
        from safetensors.torch import load_file

        state.best_state = load_file(str(out_dir / "model.safetensors"))
    dist.barrier()  # every rank has read the files before rank 0 rewrites them
    if setup.main:
        _record_extension(out_dir, config)
        truncate_metrics(setup.metrics_path, state.step)
        state.history = read_metrics(setup.metrics_path)
    setup.log(f"resuming {out_dir} at step {state.step} of {config.steps}")
    return state


def _record_extension(out_dir: Path, config: TrainConfig) -> None:
    """A resume to more steps: config.json records the new total, and the run is unfinished until it is reached."""
    saved = read_config(out_dir)
    if saved.training.steps != config.steps:
        saved.training = config
        write_config(out_dir, saved)
        (out_dir / EVAL).unlink(missing_ok=True)

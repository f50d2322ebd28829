"""What happens between steps: metrics records, periodic evaluation (and keep-best),
resume checkpoints, the progress bar, and stopping a run whose loss stops being finite.

Every duration here is read on the run's clock (``setup.now``) and handed to the time
budget, so that evaluations and checkpoints count against the steps' time no more.
"""

from __future__ import annotations

import math
from typing import Any

from bigramlm.checkpoint import save_weights
from bigramlm.checkpoint.resume import save_resume
from bigramlm.checkpoint.weights import all_finite
from bigramlm.training.finish import diverged
from bigramlm.training.metrics import append_metrics
from bigramlm.training.prepare import TrainSetup
from bigramlm.training.state import TrainState, gather_rng


def between_steps(setup: TrainSetup, state: TrainState, bar: "ProgressBar | None") -> None:
    """The hooks due after ``TrainState.step``; a run's last step runs them all."""
    config, step, last = setup.config, state.step, state.stop
    if step % config.log_every == 0 or last:
        decay = config.ema_decay
        state.pending.append({"step": step, "loss": state.loss, "ema_loss": state.smoothed_loss(decay), "lr": state.lr})
    if step % config.eval_every == 0 or last:
        evaluate(setup, state, log_line=bar is None)
    if step % config.checkpoint_every == 0 or last:
        checkpoint(setup, state)
    if bar is not None:
        bar.update(setup, state)


def check_loss(setup: TrainSetup, state: TrainState) -> None:
    """Stop at once, with one clear error, when the loss is no longer a finite number."""
    if not math.isfinite(state.loss):
        raise diverged(setup, state, f"the loss is {state.loss}")


def evaluate(setup: TrainSetup, state: TrainState, log_line: bool = True) -> None:
    """The periodic evaluation; under ``keep_best`` the best weights so far are saved."""
    config, model = setup.config, setup.model
    started = setup.now()
    val = state.val = setup.periodic_eval(model)
    if state.budget is not None:
        state.budget.evaluated(setup.periodic_eval.tokens, setup.now() - started)
    state.pending.append({"step": state.step, "val_loss": val.loss, "val_bits_per_char": val.bits_per_char})
    if config.keep_best and val.loss < state.best:
        started = setup.now()
        state.best, state.best_result = val.loss, val
        state.best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        if setup.main:
            save_weights(setup.out_dir, model)
        if state.budget is not None:
            state.budget.set_aside(setup.now() - started)
    if log_line:
        smoothed = state.smoothed_loss(config.ema_decay)
        setup.log(f"step {state.step}: loss {state.loss:.4f} (smoothed {smoothed:.4f}), val {val.loss:.4f}")


def checkpoint(setup: TrainSetup, state: TrainState) -> None:
    """Write the pending metrics and a resume checkpoint; never one with non-finite weights."""
    started = setup.now()
    if not all_finite(setup.model.state_dict()):
        raise diverged(setup, state, "the weights are not finite")
    rng = gather_rng(setup.dist, state.generator)
    if setup.main:
        append_metrics(setup.metrics_path, state.pending)
        save_resume(setup.out_dir, setup.model, setup.optimizer, state.trainer_record(), rng)
    state.history.extend(state.pending)
    state.pending = []
    if state.budget is not None:
        state.budget.checkpointed(setup.now() - started)


class ProgressBar:
    """tqdm's bar on rank 0: steps, and the latest losses and learning rate."""

    def __init__(self, setup: TrainSetup, state: TrainState):
        from tqdm.auto import tqdm  # only runs with a bar pay its import

        total = None if setup.config.time_limit else setup.config.steps
        self.bar: Any = tqdm(total=total, initial=state.step, desc="train", unit="step", mininterval=0.25, dynamic_ncols=True)

    def update(self, setup: TrainSetup, state: TrainState) -> None:
        self.bar.update(1)
        if state.step % setup.config.log_every == 0:
            smoothed = state.smoothed_loss(setup.config.ema_decay)
            post = {"loss": f"{state.loss:.3f}", "smoothed": f"{smoothed:.3f}", "lr": f"{state.lr:.2g}"}
            if state.val is not None:
                post["val"] = f"{state.val.loss:.3f}"
            self.bar.set_postfix(post, refresh=False)

    def close(self) -> None:
        self.bar.close()

"""One optimizer step, and what the ranks agree on after it.

A step sets the schedule's learning rate, accumulates gradients over ``grad_accum``
micro-batches (under DDP only the last one all-reduces them), clips them and updates
the weights. Then rank 0's view of the schedule's progress and of the time budget
decides, for every rank, whether the run goes on.
"""

from __future__ import annotations

import contextlib

import torch

from bigramlm.data.batching import get_batch, get_row_batch
from bigramlm.training.amp import autocast
from bigramlm.training.prepare import TrainSetup
from bigramlm.training.schedule import lr_factor
from bigramlm.training.state import TrainState


def take_step(setup: TrainSetup, state: TrainState) -> float:
    """One optimizer step; returns this rank's loss (the mean over its micro-batches)."""
    config, model, accum = setup.config, setup.train_model, setup.config.grad_accum
    state.lr = config.learning_rate * lr_factor(config, state.step, state.progress)
    for group in setup.optimizer.param_groups:
        group["lr"] = state.lr
    setup.optimizer.zero_grad(set_to_none=True)
    raw = 0.0
    for micro in range(accum):
        if setup.train_row_starts is None:
            x, y = get_batch(setup.train_ids, config.batch_size, config.block_size, state.generator)
        else:
            x, y = get_row_batch(setup.train_ids, setup.train_row_starts, config.batch_size, config.block_size, state.generator)
        # Under DDP only the last micro-batch all-reduces the accumulated gradients.
        sync = model.no_sync() if setup.dist.enabled and micro < accum - 1 else contextlib.nullcontext()
        with sync:
            with autocast(config.amp, setup.device):
                _, loss = model(x, y)
            (loss / accum if accum > 1 else loss).backward()
        raw += loss.item() / accum
    if config.grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(setup.model.parameters(), config.grad_clip)
    setup.optimizer.step()
    state.step += 1
    return raw


def agree_to_start(setup: TrainSetup, state: TrainState) -> None:
    """Before the first step: the schedule's progress, and whether there is anything to do."""
    out = state.step >= setup.config.steps or state.clock.out_of_time()
    state.progress, out = setup.dist.broadcast_object((state.clock.progress(state.step), out))
    state.stop = bool(out)


def agree_after_step(setup: TrainSetup, state: TrainState, raw: float) -> None:
    """After a step: its loss (the mean over ranks), the schedule's progress and whether to stop."""
    config, dist, clock, budget = setup.config, setup.dist, state.clock, state.budget
    out = False
    if budget is not None:
        budget.step_done()
        eval_due = state.step % config.eval_every == 0
        checkpoint_due = state.step % config.checkpoint_every == 0
        out = budget.must_stop(eval_due, checkpoint_due)
    if dist.enabled:
        main = dist.is_main
        total, state.progress, votes = dist.all_reduce_sum(
            [raw, clock.progress(state.step) if main else 0.0, float(out) if main else 0.0]
        )
        raw, out = total / dist.world_size, votes > 0
    else:
        state.progress = clock.progress(state.step)
    state.stop = state.step >= config.steps or out
    state.add_loss(raw, config.ema_decay)

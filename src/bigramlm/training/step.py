"""One optimizer step, and what the ranks agree on after it.

A step sets the schedule's learning rate, accumulates gradients over ``grad_accum``
micro-batches (under DDP only the last one all-reduces them), clips them and updates
the weights. Then rank 0's view of the schedule's progress and of the time budget
decides, for every rank, whether the run goes on. ``learn`` fine-tunes with the same
two pieces, ``accumulate`` and ``update``.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any, cast

import torch
import torch.nn as nn

from bigramlm.data.batching import draw_windows
from bigramlm.training.amp import autocast
from bigramlm.training.prepare import TrainSetup
from bigramlm.training.schedule import lr_factor
from bigramlm.training.state import TrainState

if TYPE_CHECKING:
    from torch.nn.parallel import DistributedDataParallel


def accumulate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, amp: str, device: torch.device,
               parts: int = 1) -> float:
    """Forward and backward one of ``parts`` micro-batches of a step (its gradient counts
    1/``parts``); returns its loss."""
    with autocast(amp, device):
        _, loss = model(x, y)
    (loss / parts if parts > 1 else loss).backward()
    return float(loss.item())


def update(model: nn.Module, optimizer: Any, learning_rate: float, grad_clip: float) -> None:
    """Apply the accumulated gradients at ``learning_rate`` (clipped to ``grad_clip`` if above 0), then clear them."""
    for group in optimizer.param_groups:
        group["lr"] = learning_rate
    if grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


def take_step(setup: TrainSetup, state: TrainState) -> float:
    """One optimizer step; returns this rank's loss (the mean over its micro-batches)."""
    config, model, accum = setup.config, setup.train_model, setup.config.grad_accum
    assert model is not None  # set when training starts
    state.lr = config.learning_rate * lr_factor(config, state.step, state.progress)
    raw = 0.0
    for micro in range(accum):
        x, y = draw_windows(setup.train_ids, setup.train_row_starts, config.batch_size, config.block_size, state.generator)
        # Under DDP only the last micro-batch all-reduces the accumulated gradients (the model is then
        # DistributedDataParallel, or torch.compile's wrapper of it, which forwards no_sync).
        sync = (cast("DistributedDataParallel", model).no_sync() if setup.dist.enabled and micro < accum - 1
                else contextlib.nullcontext())
        with sync:
            raw += accumulate(model, x, y, config.amp, setup.device, accum) / accum
    update(setup.model, setup.optimizer, state.lr, config.grad_clip)
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

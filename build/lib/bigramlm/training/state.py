"""The state of a run in progress: the one record the step, the hooks and the finish share.

What a resume checkpoint must bring back (the step, the smoothed loss, the best
evaluation, the RNG streams, the seconds spent) lives here, so that a resumed run is
the uninterrupted one, bit for bit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch

from bigramlm.evaluation.lm import EvalResult
from bigramlm.training.budget import TimeBudget
from bigramlm.training.clock import TrainingClock
from bigramlm.training.distributed import Dist


@dataclass
class TrainState:
    """Everything about a run that changes as it trains."""

    clock: TrainingClock
    generator: torch.Generator  # this rank's batch stream
    budget: TimeBudget | None = None  # under a time limit: when to stop
    step: int = 0  # optimizer steps taken
    loss: float = math.nan  # the last step's loss (the mean over ranks)
    #: Exponential moving average of the loss started from 0, as Adam's moments are;
    #: ``smoothed_loss`` divides out that start (the bias), so the first steps do not
    #: drag the figure up: uncorrected and started from the first loss, it read 3.51
    #: against a raw 2.70 at step 50 of the GPT.
    loss_ema: float = 0.0
    lr: float = 0.0
    progress: float = 0.0  # of the schedule, as rank 0 measured it
    stop: bool = False
    best: float = math.inf  # best periodic val loss (keep_best)
    best_state: dict[str, torch.Tensor] | None = None
    best_result: EvalResult | None = None
    val: EvalResult | None = None  # the latest periodic evaluation
    history: list[dict[str, Any]] = field(default_factory=list)  # metrics written so far
    pending: list[dict[str, Any]] = field(default_factory=list)  # metrics not yet written

    def add_loss(self, loss: float, decay: float) -> None:
        self.loss = loss
        self.loss_ema = decay * self.loss_ema + (1 - decay) * loss

    def smoothed_loss(self, decay: float) -> float:
        if self.step == 0:
            return self.loss
        return self.loss_ema / (1 - decay**self.step)

    def trainer_record(self) -> dict[str, Any]:
        """The scalars of a resume checkpoint."""
        record: dict[str, Any] = {
            "step": self.step,
            "loss_ema": self.loss_ema,
            "train_seconds": self.clock.seconds(),
            "budget_seconds": self.clock.budget_seconds(),
        }
        if math.isfinite(self.best):
            record["best_val"] = self.best
        return record


def load_trainer_record(record: dict[str, Any], decay: float) -> dict[str, Any]:
    """The resumable scalars of a checkpoint's record, older layouts included.

    Checkpoints before the bias correction stored ``ema``, started from the first
    loss; rescaled, it is a fair start for the zero-started average.
    """
    step = int(record["step"])
    if "loss_ema" in record:
        loss_ema = float(record["loss_ema"])
    elif record.get("ema") is not None:
        loss_ema = float(record["ema"]) * (1 - decay**step)
    else:
        loss_ema = 0.0
    return {
        "step": step,
        "loss_ema": loss_ema,
        "best": float(record.get("best_val", math.inf)),
        "train_seconds": float(record.get("train_seconds", 0.0)),
        "budget_seconds": record.get("budget_seconds"),
    }


def rng_state(generator: torch.Generator) -> dict[str, torch.Tensor]:
    return {"batches": generator.get_state(), "torch": torch.get_rng_state()}


def restore_rng(generator: torch.Generator, rng: dict[str, torch.Tensor]) -> None:
    generator.set_state(rng["batches"])
    torch.set_rng_state(rng["torch"])


def gather_rng(dist: Dist, generator: torch.Generator) -> dict[str, torch.Tensor]:
    """Every rank's RNG states, keyed for rank 0's resume file (rank 0 keeps the plain keys)."""
    states = dist.all_gather_object(rng_state(generator))
    rng = dict(states[0])
    for rank, state in enumerate(states[1:], start=1):
        rng.update({f"{k}_{rank}": v for k, v in state.items()})
    return rng


def rank_rng(rng: dict[str, torch.Tensor], rank: int) -> dict[str, torch.Tensor] | None:
    """This rank's RNG states in a resume file; None if the file's world was smaller."""
    if rank == 0:
        return rng
    mine = {k[: -len(f"_{rank}")]: v for k, v in rng.items() if k.endswith(f"_{rank}")}
    return mine if {"batches", "torch"} <= set(mine) else None

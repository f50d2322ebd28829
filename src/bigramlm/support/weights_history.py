"""The weights from before the last ``learn``, kept so that ``learn --undo`` can restore them.

``replace_weights`` first copies the run's ``model.safetensors`` to
``model.before-learn.safetensors`` (atomically), then writes the new weights
(atomically; ``save_weights`` refuses NaN and infinities). ``restore_weights`` renames
the kept file back onto ``model.safetensors``: one ``os.replace``, so the restored
weights are the old bytes exactly and a reader never sees half a file. One level only:
each learn overwrites the kept file, and an undo consumes it.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch.nn as nn

from bigramlm._fs import atomic_write, sha256_of
from bigramlm.checkpoint import WEIGHTS, save_weights
from bigramlm.errors import BigramLMError

PREVIOUS_WEIGHTS = "model.before-learn.safetensors"


def previous_name(name: str) -> str:
    """Where the version from before the last learn of a run file is kept."""
    stem, dot, suffix = name.partition(".")
    return f"{stem}.before-learn.{suffix}" if dot else f"{name}.before-learn"


def keep_previous(run_dir: Path, name: str) -> None:
    """Keep a copy of run file ``name`` (e.g. the understanding) as it is before a learn replaces it."""
    current = Path(run_dir) / name
    if current.is_file():
        atomic_write(Path(run_dir) / previous_name(name), lambda tmp: shutil.copyfile(current, tmp))


def restore_previous(run_dir: Path, name: str) -> None:
    """Put back what ``keep_previous`` kept of ``name`` (one rename), if it kept anything."""
    previous = Path(run_dir) / previous_name(name)
    if previous.is_file():
        os.replace(previous, Path(run_dir) / name)


@dataclass
class WeightsChange:
    """The sha256 of the weights file before and after a learn."""

    before: str
    after: str


def replace_weights(run_dir: Path, model: nn.Module) -> WeightsChange:
    """Keep the current weights as ``PREVIOUS_WEIGHTS``, then write ``model``'s."""
    run_dir = Path(run_dir)
    current, previous = run_dir / WEIGHTS, run_dir / PREVIOUS_WEIGHTS
    atomic_write(previous, lambda tmp: shutil.copyfile(current, tmp))
    before = sha256_of(previous)
    save_weights(run_dir, model)
    return WeightsChange(before, sha256_of(current))


def restore_weights(run_dir: Path, change: WeightsChange) -> bool:
    """Put back the weights from before ``change``; False when they are back already.

    Refuses (one line, nothing touched) when the run's weights are neither the ones
    that learn wrote nor the ones it replaced, or when the kept file is not the one
    that learn kept (a later learn was undone already).
    """
    run_dir = Path(run_dir)
    current, previous = run_dir / WEIGHTS, run_dir / PREVIOUS_WEIGHTS
    actual = sha256_of(current) if current.is_file() else None
    if actual == change.before:
        return False  # an undo that stopped before updating the store: only the marks are left to do
    if actual != change.after:
        raise BigramLMError(
            f"the weights in {current} changed after the last learn (trained or replaced since?); nothing was undone"
        )
    if not previous.is_file() or sha256_of(previous) != change.before:
        raise BigramLMError(
            f"{run_dir} does not keep the weights from before its last learn (only the last learn can be undone)"
        )
    os.replace(previous, current)
    return True

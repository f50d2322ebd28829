"""Weights as safetensors: written atomically, loaded with one-line errors, checked finite."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import torch
import torch.nn as nn
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from bigramlm._fs import atomic_write
from bigramlm.checkpoint.layout import WEIGHTS
from bigramlm.errors import BigramLMError


def atomic_save_tensors(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> None:
    tensors = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}

    def write(tmp: str) -> None:
        try:
            save_file(tensors, tmp, metadata=metadata)
        except SafetensorError as exc:  # an I/O error in Rust's words: an OSError for every caller
            full = "No space left" in str(exc)
            raise OSError(errno.ENOSPC if full else errno.EIO, os.strerror(errno.ENOSPC) if full else str(exc), tmp) from None

    atomic_write(path, write)


def unwrap(model: nn.Module) -> nn.Module:
    """The bare model under DDP or torch.compile wrappers."""
    model = getattr(model, "module", model)
    return getattr(model, "_orig_mod", model)


def all_finite(tensors: dict[str, torch.Tensor]) -> bool:
    """No NaN or infinity anywhere: what a served model must satisfy."""
    return all(bool(torch.isfinite(t).all()) for t in tensors.values() if t.is_floating_point())


def save_weights(run_dir: Path, model: nn.Module, name: str = WEIGHTS) -> None:
    """Write the model's weights; refuse non-finite ones, so good weights are never replaced by NaN."""
    state = dict(unwrap(model).state_dict())
    if not all_finite(state):
        raise BigramLMError("the weights are not finite (NaN or infinity); the run's weights were kept as they were")
    atomic_save_tensors(Path(run_dir) / name, state)


def load_tensors(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise BigramLMError(f"missing checkpoint {path}")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise BigramLMError(f"corrupt checkpoint {path}: {str(exc).splitlines()[0]}") from None


def load_state_into(model: nn.Module, state: dict[str, torch.Tensor], source: Path) -> None:
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()
        detail = first[1].strip() if len(first) > 1 else first[0]
        raise BigramLMError(f"checkpoint {source} does not fit its config: {detail}") from None

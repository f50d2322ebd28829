"""Resume checkpoints: model, optimizer and RNG state of the last checkpoint step, in one file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
from safetensors import SafetensorError, safe_open

from bigramlm.checkpoint.layout import RESUME
from bigramlm.checkpoint.weights import atomic_save_tensors, load_state_into, load_tensors, unwrap
from bigramlm.errors import BigramLMError


def save_resume(run_dir: Path, model: nn.Module, optimizer: Any, state: dict[str, Any], rng: dict[str, torch.Tensor]) -> None:
    """Model, optimizer tensors and RNG states in one safetensors file; scalars in its metadata."""
    tensors: dict[str, torch.Tensor] = {f"model.{k}": v for k, v in unwrap(model).state_dict().items()}
    opt = optimizer.state_dict()
    scalar_state: dict[str, dict[str, Any]] = {}
    for pid, pstate in opt["state"].items():
        for key, value in pstate.items():
            if torch.is_tensor(value) and value.dim() > 0:
                tensors[f"optim.{pid}.{key}"] = value
            else:
                scalar_state.setdefault(str(pid), {})[key] = float(value.item() if torch.is_tensor(value) else value)
    for name, value in rng.items():
        tensors[f"rng.{name}"] = value
    metadata = {
        "trainer": json.dumps(state),
        "param_groups": json.dumps(opt["param_groups"]),
        "optim_scalars": json.dumps(scalar_state),
    }
    atomic_save_tensors(Path(run_dir) / RESUME, tensors, metadata)


def read_trainer_state(run_dir: Path) -> dict[str, Any]:
    """The scalars of the resume checkpoint (its step first), without loading its tensors."""
    path = Path(run_dir) / RESUME
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
        return json.loads(metadata["trainer"])
    except (OSError, KeyError, json.JSONDecodeError, SafetensorError) as exc:
        raise BigramLMError(f"corrupt resume checkpoint {path}: {str(exc).splitlines()[0] if str(exc) else 'bad metadata'}") from None


def resume_weights(run_dir: Path) -> tuple[int, dict[str, torch.Tensor]]:
    """The step of the resume checkpoint and the model weights it holds."""
    step = int(read_trainer_state(run_dir)["step"])
    tensors = load_tensors(Path(run_dir) / RESUME)
    return step, {k[len("model.") :]: v for k, v in tensors.items() if k.startswith("model.")}


def load_resume(run_dir: Path, model: nn.Module, optimizer: Any) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    path = Path(run_dir) / RESUME
    tensors = load_tensors(path)
    with safe_open(str(path), framework="pt") as f:
        metadata = f.metadata() or {}
    try:
        trainer = json.loads(metadata["trainer"])
        param_groups = json.loads(metadata["param_groups"])
        scalars = json.loads(metadata["optim_scalars"])
    except (KeyError, json.JSONDecodeError):
        raise BigramLMError(f"corrupt resume checkpoint {path}: bad metadata") from None
    load_state_into(unwrap(model), {k[6:]: v for k, v in tensors.items() if k.startswith("model.")}, path)
    opt_state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, pid, name = key.split(".", 2)
            opt_state.setdefault(int(pid), {})[name] = value
    for pid, values in scalars.items():
        for name, value in values.items():
            opt_state.setdefault(int(pid), {})[name] = torch.tensor(value)
    optimizer.load_state_dict({"state": opt_state, "param_groups": param_groups})
    rng = {k[4:]: v for k, v in tensors.items() if k.startswith("rng.")}
    return trainer, rng

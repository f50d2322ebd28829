"""Run directories: atomic writes, safetensors checkpoints, and loading runs back.

A run directory holds:

- ``config.json``: the model (name + config), the training config and the data spec;
- ``model.safetensors``: the weights to use (final, or best-val when training keeps it);
- ``tokenizer.json``;
- ``resume.safetensors``: model, optimizer and RNG state of the last checkpoint step,
  in one file so that a kill can never pair weights of one step with optimizer state
  of another;
- ``metrics.jsonl``, ``loss.png`` and ``eval.json`` for people.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn as nn
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from .errors import BigramLMError
from .models import build_model
from .tokenization import Tokenizer, load_tokenizer, save_tokenizer

FORMAT_VERSION = 1
CONFIG = "config.json"
WEIGHTS = "model.safetensors"
TOKENIZER = "tokenizer.json"
RESUME = "resume.safetensors"
METRICS = "metrics.jsonl"


def atomic_write(path: Path, write: Callable[[str], None]) -> None:
    """Call ``write(tmp_path)`` then rename onto ``path``: readers see old or new, never half."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def atomic_write_text(path: Path, text: str) -> None:
    def write(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())

    atomic_write(path, write)


def atomic_save_tensors(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> None:
    tensors = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=metadata))


def write_config(run_dir: Path, config: dict[str, Any]) -> None:
    atomic_write_text(Path(run_dir) / CONFIG, json.dumps(config, indent=2, ensure_ascii=False))


def read_config(run_dir: Path) -> dict[str, Any]:
    run_dir = Path(run_dir)
    if not run_dir.exists():
        raise BigramLMError(f"no such run directory: {run_dir}")
    if not run_dir.is_dir():
        raise BigramLMError(f"{run_dir} is not a run directory")
    path = run_dir / CONFIG
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BigramLMError(f"{run_dir} has no {CONFIG}; is it a bigramlm run directory?") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BigramLMError(f"corrupt {path}: {exc}") from None
    if not isinstance(config, dict) or "model" not in config:
        raise BigramLMError(f"corrupt {path}: no model section")
    return config


def save_weights(run_dir: Path, model: nn.Module) -> None:
    atomic_save_tensors(Path(run_dir) / WEIGHTS, dict(unwrap(model).state_dict()))


def unwrap(model: nn.Module) -> nn.Module:
    """The bare model under DDP or torch.compile wrappers."""
    model = getattr(model, "module", model)
    return getattr(model, "_orig_mod", model)


def _load_tensors(path: Path) -> dict[str, torch.Tensor]:
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


@dataclass
class Run:
    """A trained run loaded back: what eval, sample and assist need."""

    path: Path
    config: dict[str, Any]
    model: nn.Module
    tokenizer: Tokenizer
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def block_size(self) -> int:
        return self.model.get_block_size()


def tokenizer_fingerprint(tokenizer: Tokenizer) -> str:
    """sha256 of the tokenizer's canonical JSON: two vocabularies of the same size but
    different characters must not pass for each other."""
    canonical = json.dumps(tokenizer.to_dict(), sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def check_tokenizer_matches(
    model_config: dict[str, Any], tokenizer: Tokenizer, run_dir: Path, recorded_sha256: str | None = None
) -> None:
    expected = model_config.get("vocab_size")
    if expected is not None and expected != tokenizer.vocab_size:
        raise BigramLMError(
            f"tokenizer in {run_dir} has {tokenizer.vocab_size} tokens but the checkpoint "
            f"expects {expected}; the tokenizer does not match this checkpoint"
        )
    if recorded_sha256 is not None and recorded_sha256 != tokenizer_fingerprint(tokenizer):
        raise BigramLMError(
            f"tokenizer in {run_dir} is not the one this checkpoint was trained with "
            "(its fingerprint differs from config.json); restore the run's tokenizer.json"
        )


def load_run(run_dir: str | os.PathLike[str], device: str = "cpu") -> Run:
    """Load a run directory written by ``train``; every problem is a one-line error."""
    run_dir = Path(run_dir)
    config = read_config(run_dir)
    model_section = config["model"]
    tokenizer = load_tokenizer(run_dir / TOKENIZER)
    recorded = (config.get("tokenizer") or {}).get("sha256")
    check_tokenizer_matches(model_section.get("config", {}), tokenizer, run_dir, recorded)
    model = build_model(model_section["name"], model_section.get("config", {}))
    load_state_into(model, _load_tensors(run_dir / WEIGHTS), run_dir / WEIGHTS)
    model.to(device).eval()
    return Run(path=run_dir, config=config, model=model, tokenizer=tokenizer)


def save_run_files(run_dir: Path, config: dict[str, Any], model: nn.Module, tokenizer: Tokenizer) -> None:
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    # Record which tokenizer the weights belong to, so load_run can refuse another one.
    config = {**config, "tokenizer": {**(config.get("tokenizer") or {}), "sha256": tokenizer_fingerprint(tokenizer)}}
    write_config(run_dir, config)
    save_tokenizer(tokenizer, run_dir / TOKENIZER)
    save_weights(run_dir, model)


# --- resume checkpoints ---------------------------------------------------------


def save_resume(run_dir: Path, model: nn.Module, optimizer: torch.optim.Optimizer, state: dict[str, Any], rng: dict[str, torch.Tensor]) -> None:
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


def load_resume(run_dir: Path, model: nn.Module, optimizer: torch.optim.Optimizer) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    from safetensors import safe_open

    path = Path(run_dir) / RESUME
    tensors = _load_tensors(path)
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

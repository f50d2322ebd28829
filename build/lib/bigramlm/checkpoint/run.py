"""A trained run loaded back (``load_run``), and the files a new run starts with."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch.nn as nn

from bigramlm.checkpoint.config import read_config, write_config
from bigramlm.config import RunConfig
from bigramlm.checkpoint.layout import TOKENIZER, WEIGHTS
from bigramlm.checkpoint.weights import all_finite, load_state_into, load_tensors, save_weights
from bigramlm.errors import BigramLMError
from bigramlm.models import LanguageModel, build_model
from bigramlm.tokenization import Tokenizer, load_tokenizer, save_tokenizer, tokenizer_fingerprint


@dataclass
class Run:
    """A trained run loaded back: what eval, sample and assist need."""

    path: Path
    config: RunConfig
    model: LanguageModel
    tokenizer: Tokenizer
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def block_size(self) -> int:
        return self.model.get_block_size()


def check_tokenizer_matches(config: RunConfig, tokenizer: Tokenizer, run_dir: Path) -> None:
    """Refuse a tokenizer that is not the one the weights were trained with."""
    expected = config.model.config.get("vocab_size")
    if expected is not None and expected != tokenizer.vocab_size:
        raise BigramLMError(
            f"tokenizer in {run_dir} has {tokenizer.vocab_size} tokens but the checkpoint "
            f"expects {expected}; the tokenizer does not match this checkpoint"
        )
    recorded = config.tokenizer.sha256
    if recorded is not None and recorded != tokenizer_fingerprint(tokenizer):
        raise BigramLMError(
            f"tokenizer in {run_dir} is not the one this checkpoint was trained with "
            "(its fingerprint differs from config.json); restore the run's tokenizer.json"
        )


def load_run(run_dir: str | os.PathLike[str], device: str = "cpu", require_finite: bool = True) -> Run:
    """Load a run directory written by ``train``; every problem is a one-line error.

    ``require_finite`` refuses weights with a NaN or an infinity, which could only
    give garbage (the desk keeps its old model instead of reloading such a run).
    """
    run_dir = Path(run_dir)
    config = read_config(run_dir)
    tokenizer = load_tokenizer(run_dir / TOKENIZER)
    check_tokenizer_matches(config, tokenizer, run_dir)
    model = build_model(config.model.name, config.model.config)
    state = load_tensors(run_dir / WEIGHTS)
    if require_finite and not all_finite(state):
        raise BigramLMError(f"the weights in {run_dir / WEIGHTS} are not finite (NaN or infinity); retrain the run")
    load_state_into(model, state, run_dir / WEIGHTS)
    model.to(device).eval()
    return Run(path=run_dir, config=config, model=model, tokenizer=tokenizer)


def save_run_files(run_dir: Path, config: RunConfig, model: nn.Module, tokenizer: Tokenizer) -> RunConfig:
    """The files a run starts with: config (recording the tokenizer's fingerprint), tokenizer, weights."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    config.tokenizer.sha256 = tokenizer_fingerprint(tokenizer)
    write_config(run_dir, config)
    save_tokenizer(tokenizer, run_dir / TOKENIZER)
    save_weights(run_dir, model)
    return config

"""Preparing a run: the tokenizer, the encoded splits, the model and its threads, the
run's config record and the evaluators. Nothing here writes to the run directory.

The order of the seeds is part of the run: the model is initialised from ``seed``
on every rank, then each rank's dropout stream is reseeded; a resumed run depends on
that order being kept.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn as nn

from bigramlm.checkpoint import METRICS, ModelSpec, RunConfig, TokenizerSpec, read_config
from bigramlm.checkpoint.run import check_tokenizer_matches
from bigramlm.config import TrainConfig
from bigramlm.data.batching import check_block_size, encode_units, row_starts_that_fit
from bigramlm.data.text import TextData
from bigramlm.errors import BigramLMError
from bigramlm.models import build_model, model_config_dict
from bigramlm.models.base import LanguageModel
from bigramlm.tokenization import Tokenizer, build_tokenizer, load_tokenizer, tokenizer_from_dict
from bigramlm.training.amp import resolve_amp
from bigramlm.training.distributed import Dist
from bigramlm.training.evaluator import SplitEvaluator
from bigramlm.training.threads import configure_threads


@dataclass
class TrainSetup:
    """What a run is made of; fixed once prepared (the optimizer and the wrapped
    training model are added when training starts)."""

    data: TextData
    out_dir: Path
    model_name: str
    config: TrainConfig
    dist: Dist
    device: torch.device
    tokenizer: Tokenizer
    train_ids: torch.Tensor
    #: With ``batching="rows"``: the token offsets where a window may start (row starts).
    train_row_starts: torch.Tensor | None
    val_ids: torch.Tensor
    model: LanguageModel  # the bare model: what is saved and evaluated
    run_config: RunConfig
    full_eval: SplitEvaluator  # the whole val split
    periodic_eval: SplitEvaluator  # a fixed prefix of it, or the whole split
    log: Callable[[str], None]  # rank 0's log; a no-op elsewhere
    now: Callable[[], float]  # the run's one clock
    optimizer: Any = None
    train_model: nn.Module | None = None  # under DDP and/or torch.compile: the wrapped model

    @property
    def main(self) -> bool:
        return self.dist.is_main

    @property
    def metrics_path(self) -> Path:
        return self.out_dir / METRICS


def prepare(
    data: TextData,
    out_dir: Path,
    model_name: str,
    model_config: dict[str, Any] | None,
    config: TrainConfig,
    resume: bool,
    dist: Dist,
    device_name: str,
    log: Callable[[str], None],
    now: Callable[[], float],
) -> TrainSetup:
    tokenizer = _tokenizer(data, out_dir, config, resume, dist)
    device = torch.device(device_name)
    config.amp = resolve_amp(config.amp, device)  # config.json records what ran
    train_ids, train_row_starts, val_ids, val_characters = _encode_splits(data, tokenizer, config, device)
    model = _build_model(model_name, model_config, tokenizer, config, dist, device)
    run_config = RunConfig(
        model=ModelSpec(model_name, model_config_dict(model)),
        training=config,
        data=data.spec,
        tokenizer=TokenizerSpec(tokenizer.kind, tokenizer.vocab_size),
        world_size=dist.world_size,
    )
    full_eval, periodic_eval = _evaluators(tokenizer, val_ids, val_characters, config, dist)
    return TrainSetup(
        data=data, out_dir=out_dir, model_name=model_name, config=config, dist=dist, device=device,
        tokenizer=tokenizer, train_ids=train_ids, train_row_starts=train_row_starts, val_ids=val_ids, model=model, run_config=run_config,
        full_eval=full_eval, periodic_eval=periodic_eval, log=log if dist.is_main else _silent, now=now,
    )


def _silent(message: str) -> None:
    pass


def _tokenizer(data: TextData, out_dir: Path, config: TrainConfig, resume: bool, dist: Dist) -> Tokenizer:
    if resume:
        tokenizer = load_tokenizer(out_dir / "tokenizer.json")
        # the weights must not be resumed under another vocabulary
        check_tokenizer_matches(read_config(out_dir), tokenizer, out_dir)
        return tokenizer
    if dist.enabled:
        # Rank 0 builds the vocabulary (BPE training is not cheap); the others receive it.
        built = build_tokenizer(config.tokenizer, data.train_text, data.vocab_text, config.vocab_size) if dist.is_main else None
        return tokenizer_from_dict(dist.broadcast_object(built.to_dict() if built is not None else None))
    return build_tokenizer(config.tokenizer, data.train_text, data.vocab_text, config.vocab_size)


def _characters(tokenizer: Tokenizer, text: str, ids: torch.Tensor) -> int:
    """Characters spelled by the targets (every token but the first), for bits/char."""
    return len(text) - len(tokenizer.decode(ids[:1].tolist()))


def _encode_splits(
    data: TextData, tokenizer: Tokenizer, config: TrainConfig, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor, int]:
    train_ids, row_starts = _encode_train(data, tokenizer, config)
    val_ids = torch.from_numpy(tokenizer.encode(data.val_text))
    check_block_size(train_ids, config.block_size, "train split")
    check_block_size(val_ids, config.block_size, "val split")
    val_characters = _characters(tokenizer, data.val_text, val_ids)
    if row_starts is not None:
        row_starts = row_starts_that_fit(row_starts, len(train_ids), config.block_size)
        if len(row_starts) == 0:
            raise BigramLMError(f"block_size {config.block_size} is longer than the train split's rows allow", param="block_size")
    return train_ids.to(device), row_starts, val_ids.to(device), val_characters


def _encode_train(data: TextData, tokenizer: Tokenizer, config: TrainConfig) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The train split's ids, and with row batching the offset where each row starts."""
    if config.batching != "rows":
        return torch.from_numpy(tokenizer.encode(data.train_text)), None
    if not data.train_units:
        raise BigramLMError("batching rows needs data made of rows (an instruction table), not plain text", param="batching")
    return encode_units(tokenizer, data.train_units)


def _build_model(
    model_name: str, model_config: dict[str, Any] | None, tokenizer: Tokenizer, config: TrainConfig,
    dist: Dist, device: torch.device,
) -> LanguageModel:
    torch.manual_seed(config.seed)  # model initialisation: identical on every rank
    model_config = {**(model_config or {}), "vocab_size": tokenizer.vocab_size, "block_size": config.block_size}
    model = build_model(model_name, model_config).to(device)
    configure_threads(model, config.threads, device)  # tiny models 1, else the idle cores (threads.py)
    if dist.enabled:
        torch.manual_seed(config.seed + 1 + dist.rank)  # different dropout masks per rank
    return model


def _evaluators(
    tokenizer: Tokenizer, val_ids: torch.Tensor, val_characters: int, config: TrainConfig, dist: Dist
) -> tuple[SplitEvaluator, SplitEvaluator]:
    full_eval = SplitEvaluator(dist, val_ids, config.block_size, val_characters, config.amp)
    if not (config.eval_tokens and config.eval_tokens < len(val_ids) - 1):
        return full_eval, full_eval
    # A fixed prefix of val: cheap enough to evaluate often, the same text every time.
    subset = val_ids[: config.eval_tokens + 1]
    subset_chars = len(tokenizer.decode(subset[1:].tolist()))
    return full_eval, SplitEvaluator(dist, subset, config.block_size, subset_chars, config.amp)

"""Fitting models: AdamW on random batches (``sgd``) or the closed-form bigram (``counts``).

``train`` owns the run directory: it writes the config and tokenizer first (so a killed
run can be resumed), a resume checkpoint every ``checkpoint_every`` steps, metrics as
JSON lines, and at the end the weights, the final evaluation and a loss-curve PNG.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn as nn

from . import __version__
from .batching import check_block_size, get_batch
from .checkpoint import (
    METRICS,
    RESUME,
    atomic_write_text,
    load_resume,
    read_config,
    save_resume,
    save_run_files,
    save_weights,
    write_config,
)
from .datasets import TextData
from .errors import BigramLMError
from .evaluation import EvalResult, evaluate_ids
from .models import build_model, model_config_dict
from .tokenization import CharTokenizer, Tokenizer, load_tokenizer
from .threads import configure_cpu_threads


@dataclass
class TrainConfig:
    """How to fit a model. Defaults are the notebook's: lr 1e-3, batch 32, block 8, 10k steps."""

    method: str = "sgd"  # "sgd" or "counts"
    steps: int = 10_000
    learning_rate: float = 1e-3
    batch_size: int = 32
    block_size: int = 8
    weight_decay: float = 0.01  # torch's AdamW default, which the notebook uses
    seed: int = 1337
    eval_every: int = 1000
    checkpoint_every: int = 1000
    log_every: int = 10
    alpha: float = 1.0  # additive smoothing of the counts fit
    ema_decay: float = 0.98  # smoothing of the displayed train loss
    device: str = "cpu"

    def validate(self) -> None:
        if self.method not in ("sgd", "counts"):
            raise BigramLMError(f"unknown method {self.method!r} (use sgd or counts)")
        for name in ("steps", "batch_size", "block_size", "eval_every", "checkpoint_every", "log_every"):
            if getattr(self, name) < 1:
                raise BigramLMError(f"{name.replace('_', '-')} must be at least 1 (got {getattr(self, name)})")
        if not self.learning_rate > 0:
            raise BigramLMError(f"learning rate must be positive (got {self.learning_rate})")
        if self.alpha < 0:
            raise BigramLMError(f"--alpha must be non-negative (got {self.alpha})")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass
class TrainResult:
    run_dir: Path
    steps: int
    val: EvalResult
    seconds: float
    history: list[dict[str, Any]] = field(default_factory=list)


def fit_counts(ids: torch.Tensor, vocab_size: int, alpha: float = 1.0) -> torch.Tensor:
    """Closed-form maximum-likelihood bigram with add-``alpha`` smoothing, as log-probs.

    This is the exact optimum of the bigram model class on ``ids``: any trained bigram
    can be measured against it.
    """
    pairs = ids[:-1].long() * vocab_size + ids[1:].long()
    counts = torch.bincount(pairs, minlength=vocab_size * vocab_size).view(vocab_size, vocab_size)
    counts = counts.double() + alpha
    totals = counts.sum(dim=1, keepdim=True)
    # A row never seen (possible only with alpha == 0) falls back to uniform.
    probs = torch.where(totals > 0, counts / totals.clamp_min(1e-300), torch.full_like(counts, 1.0 / vocab_size))
    return probs.log().float()


def build_tokenizer(data: TextData) -> Tokenizer:
    return CharTokenizer.from_text(data.vocab_text)


def _rng_state(generator: torch.Generator) -> dict[str, torch.Tensor]:
    return {"batches": generator.get_state(), "torch": torch.get_rng_state()}


def _restore_rng(generator: torch.Generator, rng: dict[str, torch.Tensor]) -> None:
    generator.set_state(rng["batches"])
    torch.set_rng_state(rng["torch"])


def _append_metrics(path: Path, records: list[dict[str, Any]]) -> None:
    if records:
        with open(path, "a", encoding="utf-8") as f:
            f.writelines(json.dumps(r) + "\n" for r in records)


def _truncate_metrics(path: Path, step: int) -> None:
    """On resume, forget metrics logged after the checkpoint step (they are redone)."""
    if not path.exists():
        return
    kept = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:  # a kill mid-append leaves a partial last line
            continue
        if record.get("step", 0) <= step:
            kept.append(line)
    atomic_write_text(path, "".join(line + "\n" for line in kept))


def train(
    data: TextData,
    out_dir: str | Path,
    model_name: str = "bigram",
    model_config: dict[str, Any] | None = None,
    config: TrainConfig | None = None,
    resume: bool = False,
    progress: bool = True,
    on_step: Callable[[int, float], None] | None = None,
    log: Callable[[str], None] | None = None,
) -> TrainResult:
    """Train a model on ``data`` into ``out_dir``; see the module docstring."""
    out_dir = Path(out_dir)
    config = config or TrainConfig()
    log = log or (lambda message: None)
    started = time.perf_counter()

    if resume:
        saved = read_config(out_dir)
        config = TrainConfig.from_dict(saved["training"])
        model_name = saved["model"]["name"]
        model_config = saved["model"]["config"]
        tokenizer = load_tokenizer(out_dir / "tokenizer.json")
        if not (out_dir / RESUME).exists():
            raise BigramLMError(f"{out_dir} has no resume checkpoint ({RESUME}); nothing to resume")
    else:
        tokenizer = build_tokenizer(data)
    config.validate()

    device = torch.device(config.device)
    train_ids = torch.from_numpy(tokenizer.encode(data.train_text))
    val_ids = torch.from_numpy(tokenizer.encode(data.val_text))
    check_block_size(train_ids, config.block_size, "train split")
    check_block_size(val_ids, config.block_size, "val split")
    train_ids, val_ids = train_ids.to(device), val_ids.to(device)

    torch.manual_seed(config.seed)  # model initialisation
    model_config = {**(model_config or {}), "vocab_size": tokenizer.vocab_size, "block_size": config.block_size}
    model = build_model(model_name, model_config).to(device)
    configure_cpu_threads(model, device)  # tiny models: 1 thread is ~10x faster per step
    run_config = {
        "format_version": 1,
        "bigramlm_version": __version__,
        "model": {"name": model_name, "config": model_config_dict(model)},
        "training": asdict(config),
        "data": data.spec,
        "tokenizer": {"type": tokenizer.kind, "vocab_size": tokenizer.vocab_size},
    }
    metrics_path = out_dir / METRICS

    def evaluate_val() -> EvalResult:
        return evaluate_ids(model, val_ids, "val", block_size=config.block_size)

    if config.method == "counts":
        if model_name != "bigram":
            raise BigramLMError("--method counts fits the bigram only; use --method sgd for other models")
        model.load_log_probs(fit_counts(train_ids, tokenizer.vocab_size, config.alpha))
        val = evaluate_val()
        run_config["training"]["steps"] = 0
        save_run_files(out_dir, run_config, model, tokenizer)
        metrics_path.unlink(missing_ok=True)
        _append_metrics(metrics_path, [{"step": 0, "val_loss": val.loss}])
        atomic_write_text(out_dir / "eval.json", json.dumps(val.to_dict(), indent=2))
        return TrainResult(out_dir, 0, val, time.perf_counter() - started)

    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    generator = torch.Generator().manual_seed(config.seed)
    step, ema = 0, None
    history: list[dict[str, Any]] = []
    if resume:
        trainer_state, rng = load_resume(out_dir, model, optimizer)
        _restore_rng(generator, rng)
        step, ema = trainer_state["step"], trainer_state.get("ema")
        _truncate_metrics(metrics_path, step)
        history = [json.loads(l) for l in metrics_path.read_text(encoding="utf-8").splitlines() if l] if metrics_path.exists() else []
        log(f"resuming {out_dir} at step {step} of {config.steps}")
    else:
        save_run_files(out_dir, run_config, model, tokenizer)
        metrics_path.unlink(missing_ok=True)
        (out_dir / RESUME).unlink(missing_ok=True)

    pending: list[dict[str, Any]] = []
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=config.steps, initial=step, desc="train", unit="step", mininterval=0.25, dynamic_ncols=True)
    model.train()
    val: EvalResult | None = None
    try:
        while step < config.steps:
            x, y = get_batch(train_ids, config.batch_size, config.block_size, generator)
            _, loss = model(x, y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
            raw = loss.item()
            ema = raw if ema is None else config.ema_decay * ema + (1 - config.ema_decay) * raw
            if on_step is not None:
                on_step(step, raw)
            if step % config.log_every == 0 or step == config.steps:
                pending.append({"step": step, "loss": raw, "ema_loss": ema})
            if step % config.eval_every == 0 or step == config.steps:
                val = evaluate_val()
                pending.append({"step": step, "val_loss": val.loss, "val_bits_per_char": val.bits_per_char})
                if bar is None:
                    log(f"step {step}: loss {raw:.4f} (smoothed {ema:.4f}), val {val.loss:.4f}")
            if step % config.checkpoint_every == 0 or step == config.steps:
                _append_metrics(metrics_path, pending)
                history.extend(pending)
                pending = []
                save_resume(out_dir, model, optimizer, {"step": step, "ema": ema}, _rng_state(generator))
            if bar is not None:
                bar.update(1)
                if step % config.log_every == 0:
                    post = {"loss": f"{raw:.3f}", "smoothed": f"{ema:.3f}"}
                    if val is not None:
                        post["val"] = f"{val.loss:.3f}"
                    bar.set_postfix(post, refresh=False)
    finally:
        if bar is not None:
            bar.close()

    if val is None:  # resumed a run that had already finished
        val = evaluate_val()
    save_weights(out_dir, model)
    atomic_write_text(out_dir / "eval.json", json.dumps(val.to_dict(), indent=2))
    try:
        from .plotting import plot_loss_curve

        plot_loss_curve(history, out_dir / "loss.png", title=f"{model_name} on {data.spec.get('source', 'data')}")
    except ImportError:  # matplotlib is a declared dependency; never fail a finished run on a plot
        pass
    return TrainResult(out_dir, step, val, time.perf_counter() - started, history)

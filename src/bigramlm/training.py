"""Fitting models: AdamW on random batches (``sgd``) or the closed-form bigram (``counts``).

``train`` owns the run directory: it writes the config and tokenizer first (so a killed
run can be resumed), a resume checkpoint every ``checkpoint_every`` steps, metrics as
JSON lines, and at the end the weights, the final evaluation and a loss-curve PNG.

The defaults of ``TrainConfig`` are the notebook's (plain AdamW, constant lr), which
the bigram keeps. ``--model gpt`` starts from ``GPT_TRAIN_DEFAULTS`` instead: decay and
no-decay parameter groups, linear warmup then cosine decay, gradient clipping, and a
schedule that can be sized to a wall-clock budget (``time_limit``). Under ``torchrun``
the model is wrapped in DistributedDataParallel (see ``bigramlm.distributed``).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
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
    WEIGHTS,
    atomic_write_text,
    load_resume,
    read_config,
    save_resume,
    save_run_files,
    save_weights,
    unwrap,
)
from .datasets import TextData
from .distributed import Dist, setup as setup_distributed
from .errors import BigramLMError
from .evaluation import EvalResult, summarize, total_nats
from .models import build_model, model_config_dict
from .optim import LeanAdamW, wants_lean_optimizer
from .threads import configure_cpu_threads
from .tokenization import CharTokenizer, Tokenizer, load_tokenizer

_IMPORTED_AT = time.time()


def process_start_time() -> float:
    """Wall-clock time (as ``time.time()``) at which this process started.

    ``--time-limit`` counts from here, so interpreter start-up and imports are inside
    the budget. Linux knows it (``/proc``); elsewhere the import of this module is the
    closest point we can see.
    """
    try:
        with open("/proc/self/stat", encoding="ascii") as f:
            stat = f.read()
        # Field 22 (starttime, in clock ticks after boot); the command name in field 2
        # may contain spaces, so count from its closing parenthesis.
        started_ticks = int(stat[stat.rindex(")") + 2 :].split()[19])
        with open("/proc/uptime", encoding="ascii") as f:
            uptime = float(f.read().split()[0])
        return time.time() - (uptime - started_ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return _IMPORTED_AT


@dataclass
class TrainConfig:
    """How to fit a model. Defaults are the notebook's: lr 1e-3, batch 32, block 8, 10k steps."""

    method: str = "sgd"  # "sgd" or "counts"
    steps: int = 10_000  # with time_limit: an upper bound
    learning_rate: float = 1e-3
    batch_size: int = 32  # windows per micro-batch, per rank
    block_size: int = 8
    weight_decay: float = 0.01  # torch's AdamW default, which the notebook uses
    seed: int = 1337
    eval_every: int = 1000
    checkpoint_every: int = 1000
    log_every: int = 10
    alpha: float = 1.0  # additive smoothing of the counts fit
    ema_decay: float = 0.98  # smoothing of the displayed train loss
    device: str = "cpu"
    beta1: float = 0.9
    beta2: float = 0.999  # torch's default, as the notebook
    grad_clip: float = 0.0  # max global gradient norm; 0 disables clipping
    grad_accum: int = 1  # micro-batches per optimizer step
    warmup_steps: int = 0
    lr_schedule: str = "constant"  # "constant", "cosine" or "linear" (down to min_lr_ratio * lr)
    min_lr_ratio: float = 0.1
    time_limit: float | None = None  # seconds of wall time, process start included
    eval_tokens: int = 0  # periodic evals use this many val tokens; 0 = the whole split
    keep_best: bool = False  # model.safetensors = the weights of the best periodic eval
    tokenizer: str = "char"  # "char" or "bpe"
    vocab_size: int | None = None  # BPE vocabulary size
    amp: str = "none"  # "none", "bf16" (autocast), or "auto": bf16 where the hardware has fast bf16
    compile: bool = False  # torch.compile the training forward
    threads: int | None = None  # intra-op CPU threads; None = by model size

    def validate(self) -> None:
        if self.method not in ("sgd", "counts"):
            raise BigramLMError(f"unknown method {self.method!r} (use sgd or counts)")
        for name in ("steps", "batch_size", "block_size", "eval_every", "checkpoint_every", "log_every", "grad_accum"):
            if getattr(self, name) < 1:
                raise BigramLMError(f"{name.replace('_', '-')} must be at least 1 (got {getattr(self, name)})")
        if not self.learning_rate > 0:
            raise BigramLMError(f"learning rate must be positive (got {self.learning_rate})")
        if self.alpha < 0:
            raise BigramLMError(f"--alpha must be non-negative (got {self.alpha})")
        if self.lr_schedule not in ("constant", "cosine", "linear"):
            raise BigramLMError(f"unknown lr schedule {self.lr_schedule!r} (use constant, cosine or linear)")
        if self.warmup_steps < 0 or self.grad_clip < 0 or self.eval_tokens < 0 or self.weight_decay < 0:
            raise BigramLMError("--warmup, --grad-clip, --eval-tokens and --weight-decay must not be negative")
        if not 0.0 <= self.min_lr_ratio <= 1.0:
            raise BigramLMError(f"min lr ratio must be in [0, 1] (got {self.min_lr_ratio})")
        if self.time_limit is not None and not 0 < self.time_limit < 1e7:
            raise BigramLMError(f"--time-limit must be a positive number of seconds (got {self.time_limit})")
        if self.tokenizer not in ("char", "bpe"):
            raise BigramLMError(f"unknown tokenizer {self.tokenizer!r} (use char or bpe)")
        if self.amp not in ("none", "bf16", "auto"):
            raise BigramLMError(f"unknown --amp {self.amp!r} (use none, bf16 or auto)")
        if self.threads is not None and self.threads < 1:
            raise BigramLMError(f"--threads must be at least 1 (got {self.threads})")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


#: The CPU recipe of ``--model gpt`` with the ``cpu`` model preset (4 layers), which a
#: run without ``--time-limit`` (or with 600 s and more) trains; shorter budgets resize it
#: (``GPT_BUDGET_RECIPES``). For this model short runs are limited by optimizer steps,
#: not tokens: at equal wall time batch 16 beat 8, 24 and 32, and lr 8e-3 beat
#: 2e-3..6e-3 (1e-2 and up diverged); at 600 steps a linear decay to 0 beat cosine to
#: 0.1 (full val 1.969 vs 1.986). The step itself is tuned in
#: benchmarks/gpt_cpu_tuning.py. Anything not listed keeps the notebook's.
GPT_TRAIN_DEFAULTS: dict[str, Any] = {
    "steps": 2000,
    "learning_rate": 8e-3,
    "batch_size": 16,
    "block_size": 64,
    "weight_decay": 0.1,
    "beta2": 0.99,
    "grad_clip": 1.0,
    "warmup_steps": 50,
    "lr_schedule": "linear",
    "min_lr_ratio": 0.0,
    "eval_every": 250,
    "checkpoint_every": 250,
    "eval_tokens": 16384,
    "keep_best": True,
    "amp": "auto",
}


#: Under ``--time-limit`` with no size given, the GPT is sized to the budget: a short
#: budget on a small CPU buys few tokens, and a shallow model makes more of them (its
#: steps are cheaper and it needs fewer tokens per parameter). Full-val losses of whole
#: ``bigramlm train --time-limit T`` processes on 2 cores, measured in one session:
#:
#:   T      1 layer, batch 32   2 layers, batch 32   4 layers (cpu preset), batch 16
#:   36 s   1.706, 1.729        1.809                1.975, 2.054
#:   64 s   1.672               1.716                1.879
#:   128 s  1.605               1.597                1.693
#:   600 s                      1.513                1.510
#:
#: (1 layer at 36 s: lr 1.5e-2 1.718, batch 48 1.710, width 192 1.746.) Each row is
#: (budget below which it applies, model overrides, training overrides); budgets past
#: the last row keep the ``cpu`` preset and ``GPT_TRAIN_DEFAULTS``.
GPT_BUDGET_RECIPES: list[tuple[float, dict[str, Any], dict[str, Any]]] = [
    (100.0, {"n_layer": 1}, {"batch_size": 32, "learning_rate": 1e-2}),
    (600.0, {"n_layer": 2}, {"batch_size": 32, "learning_rate": 1e-2}),
]


def gpt_budget_recipe(time_limit: float | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """(model overrides, training overrides) of the GPT recipe for a wall-clock budget.

    Both are empty without a time limit or past the table's last budget.
    """
    if time_limit is not None:
        for below, model, training in GPT_BUDGET_RECIPES:
            if time_limit < below:
                return dict(model), dict(training)
    return {}, {}


def cpu_has_fast_bf16() -> bool:
    """True on CPUs with AMX-BF16 tiles (Sapphire Rapids and later), where bf16
    matmuls were measured ~3.5x faster than fp32. Without them bf16 is emulated and slower."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    return "amx_bf16" in line.split()
    except OSError:
        pass
    return False


def resolve_amp(amp: str, device: torch.device) -> str:
    """``auto`` becomes ``bf16`` on CUDA GPUs with bf16 and on CPUs with AMX, else ``none``."""
    if amp != "auto":
        return amp
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "none"
    return "bf16" if device.type == "cpu" and cpu_has_fast_bf16() else "none"


def default_train_config(model_name: str, **overrides: Any) -> TrainConfig:
    """The defaults for ``model_name`` (the notebook's for the bigram), then ``overrides``."""
    base = dict(GPT_TRAIN_DEFAULTS) if model_name == "gpt" else {}
    base.update({k: v for k, v in overrides.items() if v is not None})
    return TrainConfig(**base)


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


def build_tokenizer(data: TextData, config: TrainConfig | None = None) -> Tokenizer:
    config = config or TrainConfig()
    if config.tokenizer == "bpe":
        from .bpe import BPETokenizer

        # Merges come from the training split only, so val text is never peeked at.
        return BPETokenizer.train(data.train_text, config.vocab_size or 512)
    return CharTokenizer.from_text(data.vocab_text)


def lr_factor(config: TrainConfig, step: int, progress: float) -> float:
    """Multiplier of the base learning rate for optimizer step ``step`` (0-based).

    Linear warmup over ``warmup_steps``, times a cosine from 1 down to
    ``min_lr_ratio`` as ``progress`` goes from 0 to 1. ``progress`` is the fraction of
    steps done, or of the training time budget under ``time_limit``; the product keeps
    the curve smooth where warmup ends.
    """
    warm = min(1.0, (step + 1) / config.warmup_steps) if config.warmup_steps else 1.0
    if config.lr_schedule == "constant":
        return warm
    p = min(max(progress, 0.0), 1.0)
    shape = 1.0 - p if config.lr_schedule == "linear" else 0.5 * (1.0 + math.cos(math.pi * p))
    return warm * (config.min_lr_ratio + (1.0 - config.min_lr_ratio) * shape)


def make_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer | LeanAdamW:
    groups_of = getattr(model, "optimizer_groups", None)
    params = groups_of(config.weight_decay) if groups_of is not None else model.parameters()
    betas = (config.beta1, config.beta2)
    if wants_lean_optimizer(config.device):
        # The same AdamW update, bit for bit, without torch.optim's 1.4-2.3 s import of
        # the compiler (see bigramlm.optim): most of a bigram run, 5% of the GPT's 36 s.
        return LeanAdamW(params, lr=config.learning_rate, betas=betas, weight_decay=config.weight_decay)
    return torch.optim.AdamW(params, lr=config.learning_rate, betas=betas, weight_decay=config.weight_decay)


def _rng_state(generator: torch.Generator) -> dict[str, torch.Tensor]:
    return {"batches": generator.get_state(), "torch": torch.get_rng_state()}


def _restore_rng(generator: torch.Generator, rng: dict[str, torch.Tensor]) -> None:
    generator.set_state(rng["batches"])
    torch.set_rng_state(rng["torch"])


def _gather_rng(dist: Dist, generator: torch.Generator) -> dict[str, torch.Tensor]:
    """Every rank's RNG states, keyed for rank 0's resume file (rank 0 keeps the plain keys)."""
    states = dist.all_gather_object(_rng_state(generator))
    rng = dict(states[0])
    for rank, state in enumerate(states[1:], start=1):
        rng.update({f"{k}_{rank}": v for k, v in state.items()})
    return rng


def _rank_rng(rng: dict[str, torch.Tensor], rank: int) -> dict[str, torch.Tensor] | None:
    if rank == 0:
        return rng
    mine = {k[: -len(f"_{rank}")]: v for k, v in rng.items() if k.endswith(f"_{rank}")}
    return mine if {"batches", "torch"} <= set(mine) else None


def _characters(tokenizer: Tokenizer, text: str, ids: torch.Tensor) -> int:
    """Characters spelled by the targets (every token but the first), for bits/char."""
    return len(text) - len(tokenizer.decode(ids[:1].tolist()))


class _Evaluator:
    """Exact loss over a split, cut into block-size windows and shared among ranks.

    Each rank scores a contiguous run of whole windows and the summed nats are
    all-reduced, so the figure equals the single-process one.
    """

    def __init__(self, dist: Dist, ids: torch.Tensor, block_size: int, characters: int, amp: str):
        self.dist, self.block_size, self.characters, self.amp = dist, block_size, characters, amp
        self.tokens = len(ids) - 1
        windows = self.tokens // block_size
        per_rank = -(-windows // dist.world_size) if windows else 0
        lo = min(dist.rank * per_rank, windows) * block_size
        hi = self.tokens if dist.rank == dist.world_size - 1 else min((dist.rank + 1) * per_rank, windows) * block_size
        self.ids = ids[lo : hi + 1]

    def __call__(self, model: nn.Module, split: str = "val") -> EvalResult:
        nats, count = 0.0, 0
        if len(self.ids) > 1:
            with _autocast(self.amp, self.ids.device):
                nats, count = total_nats(model, self.ids, block_size=self.block_size)
        nats, count = self.dist.all_reduce_sum([nats, float(count)])
        return summarize(split, nats, int(count), self.characters)


def _autocast(amp: str, device: torch.device) -> contextlib.AbstractContextManager:
    if amp == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


class _Clock:
    """Training progress in [0, 1] by steps, or by wall time under ``time_limit``.

    The time budget ends ``reserve`` seconds before the deadline, which is kept for
    the final evaluation and writing the run; ``reserve`` is re-estimated from the
    speed of the periodic evaluations.
    """

    def __init__(self, config: TrainConfig, budget_start: float, done_seconds: float = 0.0):
        self.config = config
        self.started = time.time()
        self.done_before = done_seconds  # training seconds of earlier (resumed) processes
        # A resumed run gets what its earlier processes left of the budget.
        self.deadline = budget_start + config.time_limit - done_seconds if config.time_limit else None
        self.reserve = 0.0
        self.end = self.deadline

    def seconds(self) -> float:
        return self.done_before + time.time() - self.started

    def set_reserve(self, seconds: float) -> None:
        if self.deadline is not None:
            self.reserve = seconds
            self.end = self.deadline - seconds

    def progress(self, step: int) -> float:
        if self.end is None:
            return step / self.config.steps
        # Fraction of this run's training window: earlier processes' seconds count as done.
        window = self.end - self.started + self.done_before
        return self.seconds() / window if window > 0 else 1.0

    def out_of_time(self) -> bool:
        return self.end is not None and time.time() >= self.end


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


#: Seconds kept at the end of a time-limited run, on top of the final eval, for writing
#: the weights, the metrics and the loss plot (measured 0.15-0.3 s; matplotlib is
#: imported before training) and for the interpreter's exit, which the budget counts too.
FINISH_SECONDS = 1.25


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
    after_step: Callable[[int, nn.Module], None] | None = None,
    started_at: float | None = None,
) -> TrainResult:
    """Train a model on ``data`` into ``out_dir``; see the module docstring.

    ``on_step(step, loss)`` sees the loss of each optimizer step (the mean over ranks
    under torchrun); ``after_step(step, model)`` sees the bare model after the update.
    ``started_at`` (a ``time.time()``) is where ``time_limit`` counts from: the call
    by default; the CLI passes ``process_start_time()``.
    """
    started_at = time.time() if started_at is None else started_at
    out_dir = Path(out_dir)
    config = config or TrainConfig()
    if resume:
        saved = read_config(out_dir)
        config = TrainConfig.from_dict(saved["training"])
        model_name = saved["model"]["name"]
        model_config = saved["model"]["config"]
        if not (out_dir / RESUME).exists():
            raise BigramLMError(f"{out_dir} has no resume checkpoint ({RESUME}); nothing to resume")
    config.validate()
    dist, device_name = setup_distributed(config.device)
    try:
        return _train(data, out_dir, model_name, model_config, config, resume, progress, on_step, log, after_step, dist, device_name, started_at)
    finally:
        dist.close()


def _train(
    data: TextData,
    out_dir: Path,
    model_name: str,
    model_config: dict[str, Any] | None,
    config: TrainConfig,
    resume: bool,
    progress: bool,
    on_step: Callable[[int, float], None] | None,
    log: Callable[[str], None] | None,
    after_step: Callable[[int, nn.Module], None] | None,
    dist: Dist,
    device_name: str,
    started_at: float,
) -> TrainResult:
    started = time.perf_counter()
    main = dist.is_main
    log = log if (log is not None and main) else (lambda message: None)
    if resume:
        from .checkpoint import check_tokenizer_matches

        tokenizer = load_tokenizer(out_dir / "tokenizer.json")
        saved = read_config(out_dir)  # the weights must not be resumed under another vocabulary
        check_tokenizer_matches(saved["model"].get("config", {}), tokenizer, out_dir, (saved.get("tokenizer") or {}).get("sha256"))
    elif dist.enabled:
        # Rank 0 builds the vocabulary (BPE training is not cheap); the others receive it.
        from .tokenization import tokenizer_from_dict

        spec = dist.broadcast_object(build_tokenizer(data, config).to_dict() if main else None)
        tokenizer = tokenizer_from_dict(spec)
    else:
        tokenizer = build_tokenizer(data, config)

    device = torch.device(device_name)
    config.amp = resolve_amp(config.amp, device)  # config.json records what ran
    train_ids = torch.from_numpy(tokenizer.encode(data.train_text))
    val_ids = torch.from_numpy(tokenizer.encode(data.val_text))
    check_block_size(train_ids, config.block_size, "train split")
    check_block_size(val_ids, config.block_size, "val split")
    val_characters = _characters(tokenizer, data.val_text, val_ids)
    train_ids, val_ids = train_ids.to(device), val_ids.to(device)

    torch.manual_seed(config.seed)  # model initialisation: identical on every rank
    model_config = {**(model_config or {}), "vocab_size": tokenizer.vocab_size, "block_size": config.block_size}
    model = build_model(model_name, model_config).to(device)
    if config.threads is not None and device.type == "cpu":
        torch.set_num_threads(config.threads)
    else:
        configure_cpu_threads(model, device)  # tiny models: 1 thread (see threads.py)
    if dist.enabled:
        torch.manual_seed(config.seed + 1 + dist.rank)  # different dropout masks per rank
    run_config = {
        "format_version": 1,
        "bigramlm_version": __version__,
        "model": {"name": model_name, "config": model_config_dict(model)},
        "training": asdict(config),
        "data": data.spec,
        "tokenizer": {"type": tokenizer.kind, "vocab_size": tokenizer.vocab_size},
        "distributed": {"world_size": dist.world_size},
    }
    metrics_path = out_dir / METRICS

    full_eval = _Evaluator(dist, val_ids, config.block_size, val_characters, config.amp)
    periodic_eval = full_eval
    if config.eval_tokens and config.eval_tokens < len(val_ids) - 1:
        # A fixed prefix of val: cheap enough to evaluate often, the same text every time.
        subset = val_ids[: config.eval_tokens + 1]
        subset_chars = len(tokenizer.decode(subset[1:].tolist()))
        periodic_eval = _Evaluator(dist, subset, config.block_size, subset_chars, config.amp)

    if config.method == "counts":
        if model_name != "bigram":
            raise BigramLMError("--method counts fits the bigram only; use --method sgd for other models")
        model.load_log_probs(fit_counts(train_ids, tokenizer.vocab_size, config.alpha))
        val = full_eval(model)
        run_config["training"]["steps"] = 0
        if main:
            save_run_files(out_dir, run_config, model, tokenizer)
            metrics_path.unlink(missing_ok=True)
            _append_metrics(metrics_path, [{"step": 0, "val_loss": val.loss}])
            atomic_write_text(out_dir / "eval.json", json.dumps(val.to_dict(), indent=2))
        return TrainResult(out_dir, 0, val, time.perf_counter() - started)

    optimizer = make_optimizer(model, config)
    generator = torch.Generator().manual_seed(config.seed + dist.rank)  # each rank its own batches
    step, ema, best, done_seconds = 0, None, math.inf, 0.0
    best_state: dict[str, torch.Tensor] | None = None
    history: list[dict[str, Any]] = []
    if resume:
        trainer_state, rng = load_resume(out_dir, model, optimizer)
        step, ema = trainer_state["step"], trainer_state.get("ema")
        best, done_seconds = trainer_state.get("best_val", math.inf), trainer_state.get("train_seconds", 0.0)
        mine = _rank_rng(rng, dist.rank)
        if mine is not None:
            _restore_rng(generator, mine)
        else:  # a checkpoint from a smaller world: give this rank a fresh, distinct stream
            generator.manual_seed(config.seed + dist.rank + 7919 * step)
        if config.keep_best and math.isfinite(best) and (out_dir / WEIGHTS).exists():
            from safetensors.torch import load_file

            best_state = load_file(str(out_dir / WEIGHTS))
        dist.barrier()  # every rank has read the files before rank 0 rewrites metrics
        if main:
            _truncate_metrics(metrics_path, step)
            history = [json.loads(l) for l in metrics_path.read_text(encoding="utf-8").splitlines() if l] if metrics_path.exists() else []
        log(f"resuming {out_dir} at step {step} of {config.steps}")
    elif main:
        save_run_files(out_dir, run_config, model, tokenizer)
        metrics_path.unlink(missing_ok=True)
        (out_dir / RESUME).unlink(missing_ok=True)

    train_model: nn.Module = model
    if dist.enabled:
        from torch.nn.parallel import DistributedDataParallel

        train_model = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    if config.compile:
        train_model = torch.compile(train_model)

    clock = _Clock(config, started_at, done_seconds)
    if config.time_limit:
        if main:
            # Pay matplotlib's import (seconds on a busy machine) now, not inside the
            # reserve at the end where it would overrun the budget.
            with contextlib.suppress(ImportError):
                import matplotlib.figure  # noqa: F401
        # What runs after the clock says stop: the last periodic eval (unless it is the
        # full one), then the full eval.
        finish_tokens = full_eval.tokens + (periodic_eval.tokens if periodic_eval is not full_eval else 0)
        clock.set_reserve(_estimate_finish(model, val_ids, config, dist, finish_tokens))
        log(f"time limit {config.time_limit:g} s: training until {clock.end - clock.started + done_seconds:.1f} s, "
            f"{clock.reserve:.1f} s kept for the final evaluation")

    pending: list[dict[str, Any]] = []
    bar = None
    if progress and main:
        from tqdm.auto import tqdm

        total = None if config.time_limit else config.steps
        bar = tqdm(total=total, initial=step, desc="train", unit="step", mininterval=0.25, dynamic_ncols=True)
    model.train()
    val: EvalResult | None = None
    best_result: EvalResult | None = None
    # What every rank must agree on comes from rank 0: the schedule's progress and when to stop.
    progress_now, stop = _agree(dist, clock.progress(step), step >= config.steps or clock.out_of_time())
    accum = config.grad_accum
    try:
        while not stop:
            lr = config.learning_rate * lr_factor(config, step, progress_now)
            for group in optimizer.param_groups:
                group["lr"] = lr
            optimizer.zero_grad(set_to_none=True)
            raw = 0.0
            for micro in range(accum):
                x, y = get_batch(train_ids, config.batch_size, config.block_size, generator)
                # Under DDP only the last micro-batch all-reduces the accumulated gradients.
                sync = train_model.no_sync() if dist.enabled and micro < accum - 1 else contextlib.nullcontext()
                with sync:
                    with _autocast(config.amp, device):
                        _, loss = train_model(x, y)
                    (loss / accum if accum > 1 else loss).backward()
                raw += loss.item() / accum
            if config.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            optimizer.step()
            step += 1
            if dist.enabled:
                total_loss, progress_now, out = dist.all_reduce_sum(
                    [raw, clock.progress(step) if main else 0.0, float(clock.out_of_time()) if main else 0.0]
                )
                raw, out_of_time = total_loss / dist.world_size, out > 0
            else:
                progress_now, out_of_time = clock.progress(step), clock.out_of_time()
            stop = step >= config.steps or out_of_time
            ema = raw if ema is None else config.ema_decay * ema + (1 - config.ema_decay) * raw
            if on_step is not None:
                on_step(step, raw)
            if after_step is not None:
                after_step(step, model)
            if step % config.log_every == 0 or stop:
                pending.append({"step": step, "loss": raw, "ema_loss": ema, "lr": lr})
            if step % config.eval_every == 0 or stop:
                eval_started = time.time()
                val = periodic_eval(model)
                if config.time_limit:
                    rate = periodic_eval.tokens / max(time.time() - eval_started, 1e-6)
                    clock.set_reserve(_finish_seconds(finish_tokens / dist.world_size, rate))
                pending.append({"step": step, "val_loss": val.loss, "val_bits_per_char": val.bits_per_char})
                if config.keep_best and val.loss < best:
                    best, best_result = val.loss, val
                    best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
                    if main:
                        save_weights(out_dir, model)
                if bar is None:
                    log(f"step {step}: loss {raw:.4f} (smoothed {ema:.4f}), val {val.loss:.4f}")
            if step % config.checkpoint_every == 0 or stop:
                rng = _gather_rng(dist, generator)
                if main:
                    _append_metrics(metrics_path, pending)
                    state = {"step": step, "ema": ema, "train_seconds": clock.seconds()}
                    if math.isfinite(best):
                        state["best_val"] = best
                    save_resume(out_dir, model, optimizer, state, rng)
                history.extend(pending)
                pending = []
            if bar is not None:
                bar.update(1)
                if step % config.log_every == 0:
                    post = {"loss": f"{raw:.3f}", "smoothed": f"{ema:.3f}", "lr": f"{lr:.2g}"}
                    if val is not None:
                        post["val"] = f"{val.loss:.3f}"
                    bar.set_postfix(post, refresh=False)
    finally:
        if bar is not None:
            bar.close()

    if val is None:  # resumed a run that had already finished
        val = periodic_eval(model)
    final = val if periodic_eval is full_eval else None
    if config.keep_best and best_state is not None and best < val.loss:
        # An earlier evaluation was better: the run keeps those weights.
        model.load_state_dict(best_state)
        final = best_result if periodic_eval is full_eval else None
    if final is None:
        final = full_eval(model)
    if main:
        record = {"step": step, "final_val_loss": final.loss, "final_val_bits_per_char": final.bits_per_char}
        _append_metrics(metrics_path, [record])
        history.append(record)
        save_weights(out_dir, model)
        atomic_write_text(out_dir / "eval.json", json.dumps(final.to_dict(), indent=2))
        try:
            from .plotting import plot_loss_curve

            plot_loss_curve(history, out_dir / "loss.png", title=f"{model_name} on {data.spec.get('source', 'data')}")
        except ImportError:  # matplotlib is a declared dependency; never fail a finished run on a plot
            pass
    dist.barrier()
    return TrainResult(out_dir, step, final, time.perf_counter() - started, history)


def _agree(dist: Dist, progress: float, stop: bool) -> tuple[float, bool]:
    if not dist.enabled:
        return progress, stop
    progress, stop_votes = dist.broadcast_object((progress, stop))
    return progress, bool(stop_votes)


def _finish_seconds(tokens: float, eval_tokens_per_second: float) -> float:
    # 15% margin: the machine is shared and the last eval must still fit.
    return 1.15 * tokens / eval_tokens_per_second + FINISH_SECONDS


def _estimate_finish(model: nn.Module, val_ids: torch.Tensor, config: TrainConfig, dist: Dist, tokens: int) -> float:
    """Seconds the final evaluation and write-out will take, from timing a few windows.

    The first timed call also pays one-off warm-up costs, so this errs long; the
    periodic evaluations replace it with a measured rate.
    """
    windows = max(1, min(64, (len(val_ids) - 1) // config.block_size))
    sample = val_ids[: windows * config.block_size + 1]
    with _autocast(config.amp, val_ids.device):
        total_nats(model, sample[: config.block_size + 1], block_size=config.block_size)  # warm-up
        t0 = time.time()
        total_nats(model, sample, block_size=config.block_size)
    rate = (len(sample) - 1) / max(time.time() - t0, 1e-6)
    return _finish_seconds(tokens / dist.world_size, rate)

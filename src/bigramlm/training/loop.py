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
import dataclasses
import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn as nn

from bigramlm._fs import atomic_write_text
from bigramlm.checkpoint import METRICS, RESUME, WEIGHTS, ModelSpec, RunConfig, TokenizerSpec, read_config, save_run_files, save_weights
from bigramlm.checkpoint.resume import load_resume, save_resume
from bigramlm.checkpoint.run import check_tokenizer_matches
from bigramlm.data.batching import check_block_size, get_batch
from bigramlm.data.text import TextData
from bigramlm.errors import BigramLMError
from bigramlm.evaluation.lm import EvalResult, total_nats
from bigramlm.models import build_model, model_config_dict
from bigramlm.tokenization import Tokenizer, build_tokenizer, load_tokenizer, tokenizer_from_dict
from bigramlm.training.amp import autocast, resolve_amp
from bigramlm.training.clock import TrainingClock
from bigramlm.config import TrainConfig
from bigramlm.training.counts import fit_counts
from bigramlm.training.distributed import Dist, setup as setup_distributed
from bigramlm.training.evaluator import SplitEvaluator
from bigramlm.training.metrics import append_metrics, truncate_metrics
from bigramlm.training.optim import make_optimizer
from bigramlm.training.schedule import lr_factor
from bigramlm.training.threads import configure_cpu_threads


@dataclass
class TrainResult:
    run_dir: Path
    steps: int
    val: EvalResult
    seconds: float
    history: list[dict[str, Any]] = field(default_factory=list)


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
        config = saved.training
        model_name = saved.model.name
        model_config = saved.model.config
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
    def new_tokenizer() -> Tokenizer:
        return build_tokenizer(config.tokenizer, data.train_text, data.vocab_text, config.vocab_size)

    if resume:
        tokenizer = load_tokenizer(out_dir / "tokenizer.json")
        # the weights must not be resumed under another vocabulary
        check_tokenizer_matches(read_config(out_dir), tokenizer, out_dir)
    elif dist.enabled:
        # Rank 0 builds the vocabulary (BPE training is not cheap); the others receive it.
        spec = dist.broadcast_object(new_tokenizer().to_dict() if main else None)
        tokenizer = tokenizer_from_dict(spec)
    else:
        tokenizer = new_tokenizer()

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
    run_config = RunConfig(
        model=ModelSpec(model_name, model_config_dict(model)),
        training=config,
        data=data.spec,
        tokenizer=TokenizerSpec(tokenizer.kind, tokenizer.vocab_size),
        world_size=dist.world_size,
    )
    metrics_path = out_dir / METRICS

    full_eval = SplitEvaluator(dist, val_ids, config.block_size, val_characters, config.amp)
    periodic_eval = full_eval
    if config.eval_tokens and config.eval_tokens < len(val_ids) - 1:
        # A fixed prefix of val: cheap enough to evaluate often, the same text every time.
        subset = val_ids[: config.eval_tokens + 1]
        subset_chars = len(tokenizer.decode(subset[1:].tolist()))
        periodic_eval = SplitEvaluator(dist, subset, config.block_size, subset_chars, config.amp)

    if config.method == "counts":
        if model_name != "bigram":
            raise BigramLMError("method counts fits the bigram only; use method sgd for other models", param="method")
        model.load_log_probs(fit_counts(train_ids, tokenizer.vocab_size, config.alpha))
        val = full_eval(model)
        run_config.training = dataclasses.replace(config, steps=0)  # the closed form takes no step
        if main:
            save_run_files(out_dir, run_config, model, tokenizer)
            data.write_run_files(out_dir)
            metrics_path.unlink(missing_ok=True)
            append_metrics(metrics_path, [{"step": 0, "val_loss": val.loss}])
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
            truncate_metrics(metrics_path, step)
            history = [json.loads(l) for l in metrics_path.read_text(encoding="utf-8").splitlines() if l] if metrics_path.exists() else []
        log(f"resuming {out_dir} at step {step} of {config.steps}")
    elif main:
        save_run_files(out_dir, run_config, model, tokenizer)
        data.write_run_files(out_dir)
        metrics_path.unlink(missing_ok=True)
        (out_dir / RESUME).unlink(missing_ok=True)

    train_model: nn.Module = model
    if dist.enabled:
        from torch.nn.parallel import DistributedDataParallel

        train_model = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    if config.compile:
        train_model = torch.compile(train_model)

    clock = TrainingClock(config.steps, config.time_limit, started_at, done_seconds)
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
                    with autocast(config.amp, device):
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
                    append_metrics(metrics_path, pending)
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
        append_metrics(metrics_path, [record])
        history.append(record)
        save_weights(out_dir, model)
        atomic_write_text(out_dir / "eval.json", json.dumps(final.to_dict(), indent=2))
        try:
            from bigramlm.training.plotting import plot_loss_curve

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
    with autocast(config.amp, val_ids.device):
        total_nats(model, sample[: config.block_size + 1], block_size=config.block_size)  # warm-up
        t0 = time.time()
        total_nats(model, sample, block_size=config.block_size)
    rate = (len(sample) - 1) / max(time.time() - t0, 1e-6)
    return _finish_seconds(tokens / dist.world_size, rate)

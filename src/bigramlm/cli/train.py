"""``bigramlm train``: the bigram's notebook flags, the GPT's size, BPE tokens, the
optimizer schedule, time limits and CPU speed switches.

Training flags whose default depends on the model default to ``None`` here; they are
filled from ``training.default_train_config(model)`` (the notebook's settings for the
bigram, the fast CPU recipe for the GPT) and the model preset.
"""

from __future__ import annotations

import argparse
import os
import re
from pathlib import Path
from typing import Any

from bigramlm.cli.common import add_threads_flag, print_json, stderr_log
from bigramlm.cli.data import add_column_args, add_exclude_intents_flag, add_labels_flag, check_column_flags, column_options
from bigramlm.errors import BigramLMError

#: Upper bound on steps when only ``--time-limit`` ends a run.
UNBOUNDED_STEPS = 1_000_000_000

#: Flags that only make sense for the GPT.
GPT_ONLY = ("preset", "n_layer", "n_head", "n_embd", "dropout")


def add_train_parser(sub: argparse._SubParsersAction) -> None:
    from bigramlm.config import TrainConfig
    from bigramlm.training.recipes import GPT_TRAIN_DEFAULTS as g

    d = TrainConfig()
    p = sub.add_parser("train", help="train a model on a corpus", description="Train a model and write a run directory.")
    p.add_argument("--data", required=True, help="a named corpus (tinyshakespeare, bitext) or a file path")
    p.add_argument("--model", default=None, help="model to train: bigram (default) or gpt (the default of --recipe support)")
    p.add_argument("--recipe", choices=["support"], default=None,
                   help="support: the assistant's model from scratch within --time-limit (default 1200 s): the "
                        "understanding, then the GPT (or --model bigram) on the labelled rows; see docs/assistant.md")
    p.add_argument("--method", default=None, choices=["sgd", "counts"],
                   help="sgd: AdamW on batches (default); counts: closed-form bigram (the default of --recipe support --model bigram)")
    p.add_argument("--out", required=True, type=Path, help="run directory to write")
    p.add_argument("--steps", type=int, default=None, help=f"optimizer steps (default {d.steps}; gpt: {g['steps']}, or until --time-limit)")
    p.add_argument("--lr", type=float, default=None, help=f"learning rate (default {d.learning_rate}; gpt: {g['learning_rate']})")
    p.add_argument("--batch-size", type=int, default=None, help=f"windows per batch (default {d.batch_size}; gpt: {g['batch_size']})")
    p.add_argument("--block-size", type=int, default=None, help=f"window length in tokens (default {d.block_size}; gpt: the preset's)")
    p.add_argument("--weight-decay", type=float, default=None, help=f"AdamW weight decay (default {d.weight_decay}; gpt: {g['weight_decay']}, matrices only)")
    p.add_argument("--alpha", type=float, default=d.alpha, help="additive smoothing for --method counts (default 1: add-one)")
    p.add_argument("--seed", type=int, default=d.seed, help=f"random seed (default {d.seed})")
    p.add_argument("--eval-every", type=int, default=None, help=f"steps between evaluations (default {d.eval_every}; gpt: {g['eval_every']})")
    p.add_argument("--checkpoint-every", type=int, default=None, help=f"steps between resume checkpoints (default {d.checkpoint_every}; gpt: {g['checkpoint_every']})")
    p.add_argument("--device", default=d.device, help="torch device: cpu, cuda, cuda:N, mps, or auto")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run in --out with its own settings; with --steps above its own, extend a finished step-sized run")
    p.add_argument("--overwrite", action="store_true", help="replace a finished run in --out")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true", help="print the final result as one JSON object")
    columns = add_column_args(p)
    add_labels_flag(columns)
    add_exclude_intents_flag(columns)
    _add_gpt_args(p)
    _add_speed_args(p)
    p.set_defaults(func=cmd_train)


def _add_gpt_args(p: argparse.ArgumentParser) -> None:
    from bigramlm.models.presets import PRESETS

    g = p.add_argument_group("GPT model (--model gpt)")
    g.add_argument("--preset", choices=sorted(PRESETS), default=None, help="named size (default for --model gpt: cpu, or under --time-limit a size for the budget)")
    g.add_argument("--n-layer", type=int, default=None, help="transformer blocks")
    g.add_argument("--n-head", type=int, default=None, help="attention heads per block")
    g.add_argument("--n-embd", type=int, default=None, help="embedding width")
    g.add_argument("--dropout", type=float, default=None, help="dropout probability")

    t = p.add_argument_group("tokens")
    t.add_argument("--tokenizer", choices=["char", "bpe"], default=None, help="char (default) or byte-level BPE trained on the train split")
    t.add_argument("--vocab-size", type=int, default=None, help="BPE vocabulary size (default 512)")


def _add_speed_args(p: argparse.ArgumentParser) -> None:
    o = p.add_argument_group("optimisation and speed")
    o.add_argument("--time-limit", type=float, default=None, metavar="SECONDS",
                   help="train until this much wall time (process start and final eval included) is used; the lr schedule, and the GPT's depth and batch unless given, are sized to it")
    o.add_argument("--grad-accum", type=int, default=None, help="micro-batches per optimizer step (default 1)")
    o.add_argument("--warmup", type=int, default=None, help="linear lr warmup steps (gpt default 50, bigram 0)")
    o.add_argument("--lr-schedule", choices=["constant", "cosine", "linear"], default=None, help="after warmup: gpt default linear (to --min-lr-ratio), bigram constant")
    o.add_argument("--min-lr-ratio", type=float, default=None, help="where the decay ends, as a fraction of --lr (gpt default 0, else 0.1)")
    o.add_argument("--grad-clip", type=float, default=None, help="max gradient norm, 0 = off (gpt default 1)")
    o.add_argument("--beta2", type=float, default=None, help="AdamW beta2 (gpt default 0.99, bigram 0.999)")
    o.add_argument("--eval-tokens", type=int, default=None, help="val tokens of periodic evals, 0 = whole split (the final eval always uses the whole split)")
    o.add_argument("--keep-best", action=argparse.BooleanOptionalAction, default=None, help="keep the best periodic-eval weights (gpt default on)")
    o.add_argument("--amp", choices=["none", "bf16", "auto"], default=None, help="bf16 autocast; gpt default auto (bf16 on AMX CPUs and bf16 GPUs), bigram none")
    o.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None, help="torch.compile the model (default off)")
    o.add_argument("--batching", choices=["windows", "rows"], default=None,
                   help="windows: anywhere in the text (default); rows: every window starts where an instruction row starts")
    add_threads_flag(o, "by model size")


# --- from flags to configs -------------------------------------------------------------


def train_config_from_args(args: argparse.Namespace) -> tuple[Any, dict[str, Any]]:
    """(TrainConfig, model config) from parsed ``train`` arguments."""
    from bigramlm.training.recipes import default_train_config, gpt_budget_recipe

    if args.model != "gpt":
        given = [f"--{name.replace('_', '-')}" for name in GPT_ONLY if getattr(args, name, None) is not None]
        if given:
            raise BigramLMError(f"{', '.join(given)} only apply to --model gpt")
    if args.vocab_size is not None and (args.tokenizer or "char") != "bpe":
        raise BigramLMError("--vocab-size applies to --tokenizer bpe only")
    budget_model, budget_training = gpt_budget_recipe(args.time_limit) if sized_by_budget(args) else ({}, {})
    model_config, block_size = _model_config(args, budget_model)
    overrides = _training_overrides(args, block_size)
    for name, value in budget_training.items():  # the budget's recipe, where no flag says otherwise
        if overrides.get(name) is None:
            overrides[name] = value
    try:
        config = default_train_config(args.model, **overrides)
    except TypeError as exc:  # a flag the config does not know: a bug, but say it in one line
        raise BigramLMError(str(exc)) from None
    return config, model_config


def _model_config(args: argparse.Namespace, budget_model: dict[str, Any]) -> tuple[dict[str, Any], int | None]:
    """The GPT's size (preset, budget, then flags) and the block size it implies."""
    from bigramlm.models.presets import preset as gpt_preset

    if args.model != "gpt":
        return {}, args.block_size
    model_config = {**gpt_preset(args.preset or "cpu"), **budget_model}
    preset_block = model_config.pop("block_size", None)
    for name in ("n_layer", "n_head", "n_embd", "dropout"):
        if getattr(args, name) is not None:
            model_config[name] = getattr(args, name)
    return model_config, args.block_size or preset_block


def _training_overrides(args: argparse.Namespace, block_size: int | None) -> dict[str, Any]:
    """TrainConfig fields as the flags give them; None means "the model's default"."""
    steps = args.steps
    if steps is None and args.time_limit is not None:
        steps = UNBOUNDED_STEPS  # the clock ends the run
    same_name = ("method", "batch_size", "weight_decay", "alpha", "seed", "eval_every", "checkpoint_every",
                 "tokenizer", "vocab_size", "time_limit", "grad_accum", "lr_schedule", "min_lr_ratio",
                 "grad_clip", "beta2", "eval_tokens", "keep_best", "amp", "compile", "threads", "batching")
    return {
        **{name: getattr(args, name) for name in same_name},
        "steps": steps,
        "learning_rate": args.lr,
        "block_size": block_size,
        "warmup_steps": args.warmup,
    }


def sized_by_budget(args: argparse.Namespace) -> bool:
    """A GPT run whose size follows ``--time-limit``: no preset or size flag was given."""
    return (
        args.model == "gpt"
        and args.time_limit is not None
        and all(getattr(args, name) is None for name in ("preset", "n_layer", "n_head", "n_embd"))
    )


def budget_note(args: argparse.Namespace, model_config: dict[str, Any], config: Any) -> str | None:
    """One line saying which size ``--time-limit`` chose, when it chose one."""
    if not sized_by_budget(args) or getattr(args, "resume", False):
        return None
    return (
        f"--time-limit {args.time_limit:g}: {model_config['n_layer']}-layer GPT, batch {config.batch_size}, "
        f"lr {config.learning_rate:g} (sized to the budget; --preset or --n-layer choose the size)"
    )


def resolve_device(name: str) -> str:
    """``--device``: ``auto`` picks CUDA when torch sees a GPU; a GPU this machine lacks is
    an error now rather than a torch traceback after the data has loaded."""
    cuda = re.fullmatch(r"cuda(?::(\d+))?", name)
    if name != "auto" and not cuda and name != "mps":
        return name  # TrainConfig.validate names what is wrong with it
    import torch  # here, not at the top: --help must not wait for torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "mps":
        if not torch.backends.mps.is_available():
            raise BigramLMError("device 'mps' is not available: torch finds no Apple GPU here (use cpu or auto)", param="device")
        return name
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    assert cuda is not None  # the name is cuda or cuda:N
    index = int(cuda.group(1) or 0)
    if index >= count:
        found = f"{count} CUDA GPU(s)" if count else "no CUDA GPU"
        raise BigramLMError(f"device {name!r} is not available: torch finds {found} here (use cpu or auto)", param="device")
    return name


# --- the command ---------------------------------------------------------------------------


def cmd_train(args: argparse.Namespace) -> int:
    from bigramlm._fs import check_writable

    out: Path = args.out
    check_writable(out, "out_dir", directory=True)
    if not args.resume and (out / "config.json").exists() and not args.overwrite:
        raise BigramLMError(f"{out} already holds a run; use --resume to continue it or --overwrite to replace it")
    args.model = args.model or ("gpt" if args.recipe else "bigram")
    if args.recipe is not None:
        return _train_support(args)
    config, model_config = train_config_from_args(args)
    config.device = resolve_device(args.device)
    config.validate()
    data = _load_training_data(args)
    log = stderr_log(args)
    note = budget_note(args, model_config, config)
    if note and log is not None and is_main_process():
        log(note)
    from bigramlm.training import train
    from bigramlm.training.clock import process_start_time

    result = train(
        data, out, model_name=args.model, model_config=model_config, config=config,
        started_at=process_start_time(),  # --time-limit counts from process start
        resume=args.resume, steps=args.steps if args.resume else None,
        progress=not (args.no_progress or args.json), log=log,
    )
    return _report(args, result)


def _train_support(args: argparse.Namespace) -> int:
    """``--recipe support``: the recipe's settings, where no flag says otherwise."""
    if args.resume:
        raise BigramLMError("--recipe support trains a new run; resume one with --resume alone")
    if args.model not in ("gpt", "bigram"):
        raise BigramLMError(f"--recipe support trains --model gpt or bigram (got {args.model})")
    overrides = {k: v for k, v in _training_overrides(args, args.block_size).items() if v is not None}
    overrides.pop("time_limit", None)
    if args.time_limit is None:
        overrides.pop("steps", None)
    overrides["device"] = resolve_device(args.device)
    model_overrides = {n: getattr(args, n) for n in ("n_layer", "n_head", "n_embd", "dropout") if getattr(args, n) is not None}
    from bigramlm.data import load_data
    from bigramlm.support.recipe import train_support
    from bigramlm.training.clock import process_start_time

    check_column_flags(args.data, args)
    data = load_data(args.data, **{**column_options(args), "labels": True})
    result = train_support(data, args.out, model_name=args.model, time_limit=args.time_limit, overrides=overrides,
                           model_overrides=model_overrides, started_at=process_start_time(),
                           progress=not (args.no_progress or args.json), log=stderr_log(args))
    return _report(args, result)


def _report(args: argparse.Namespace, result: Any) -> int:
    out = args.out
    if not is_main_process():  # under torchrun only rank 0 reports
        return 0
    if args.json:
        print_json({"run_dir": str(out), "steps": result.steps, "seconds": round(result.seconds, 3), **result.val.to_dict()})
    else:
        v = result.val
        print(f"val loss {v.loss:.4f} nats | {v.bits_per_char:.4f} bits/char | perplexity {v.perplexity:.2f} | {v.tokens:,} tokens")
        print(f"run written to {out} ({result.seconds:.1f} s)")
    return 0


def _load_training_data(args: argparse.Namespace) -> Any:
    """The run's own data when resuming, else ``--data`` with its column flags."""
    if args.resume:
        from bigramlm.checkpoint import read_config
        from bigramlm.data import load_run_data

        return load_run_data(read_config(args.out).data)
    from bigramlm.data import load_data

    check_column_flags(args.data, args)
    return load_data(args.data, **column_options(args))


def is_main_process() -> bool:
    """False on the ranks other than 0 that torchrun starts."""
    return int(os.environ.get("RANK", "0")) == 0

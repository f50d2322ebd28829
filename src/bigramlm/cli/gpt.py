"""``bigramlm train`` options beyond the bigram: the GPT's size, BPE tokens, the
optimizer schedule, time limits and CPU speed switches.

Training flags whose default depends on the model default to ``None`` here; they are
filled from ``training.default_train_config(model)`` (the notebook's settings for the
bigram, the fast CPU recipe for the GPT) and the model preset.
"""

from __future__ import annotations

import argparse
from typing import Any

from bigramlm.errors import BigramLMError

#: Upper bound on steps when only ``--time-limit`` ends a run.
UNBOUNDED_STEPS = 1_000_000_000

#: Flags that only make sense for the GPT.
GPT_ONLY = ("preset", "n_layer", "n_head", "n_embd", "dropout")


def add_gpt_train_args(p: argparse.ArgumentParser) -> None:
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
    o.add_argument("--threads", type=int, default=None, help="intra-op CPU threads (default: by model size)")


def train_config_from_args(args: argparse.Namespace) -> tuple[Any, dict[str, Any]]:
    """(TrainConfig, model config) from parsed ``train`` arguments."""
    from bigramlm.models.presets import preset as gpt_preset
    from bigramlm.training.recipes import default_train_config, gpt_budget_recipe

    model = args.model
    if model != "gpt":
        given = [f"--{name.replace('_', '-')}" for name in GPT_ONLY if getattr(args, name, None) is not None]
        if given:
            raise BigramLMError(f"{', '.join(given)} only apply to --model gpt")
    model_config: dict[str, Any] = {}
    block_size = args.block_size
    budget_model, budget_training = gpt_budget_recipe(args.time_limit) if sized_by_budget(args) else ({}, {})
    if model == "gpt":
        model_config = {**gpt_preset(args.preset or "cpu"), **budget_model}
        block_size = block_size or model_config.pop("block_size")
        model_config.pop("block_size", None)
        for name in ("n_layer", "n_head", "n_embd", "dropout"):
            if getattr(args, name) is not None:
                model_config[name] = getattr(args, name)
    steps = args.steps
    if steps is None and args.time_limit is not None:
        steps = UNBOUNDED_STEPS  # the clock ends the run
    overrides = {
        "method": args.method,
        "steps": steps,
        "learning_rate": args.lr,
        "batch_size": args.batch_size,
        "block_size": block_size,
        "weight_decay": args.weight_decay,
        "alpha": args.alpha,
        "seed": args.seed,
        "eval_every": args.eval_every,
        "checkpoint_every": args.checkpoint_every,
        "tokenizer": args.tokenizer,
        "vocab_size": args.vocab_size,
        "time_limit": args.time_limit,
        "grad_accum": args.grad_accum,
        "warmup_steps": args.warmup,
        "lr_schedule": args.lr_schedule,
        "min_lr_ratio": args.min_lr_ratio,
        "grad_clip": args.grad_clip,
        "beta2": args.beta2,
        "eval_tokens": args.eval_tokens,
        "keep_best": args.keep_best,
        "amp": args.amp,
        "compile": args.compile,
        "threads": args.threads,
    }
    for name, value in budget_training.items():  # the budget's recipe, where no flag says otherwise
        if overrides.get(name) is None:
            overrides[name] = value
    if args.vocab_size is not None and (args.tokenizer or "char") != "bpe":
        raise BigramLMError("--vocab-size applies to --tokenizer bpe only")
    try:
        config = default_train_config(model, **overrides)
    except TypeError as exc:  # a flag the config does not know: a bug, but say it in one line
        raise BigramLMError(str(exc)) from None
    return config, model_config


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


def budget_start() -> float:
    """Where ``--time-limit`` counts from on the command line: the process's start."""
    from bigramlm.training.clock import process_start_time

    return process_start_time()


def is_main_process() -> bool:
    """False on the ranks other than 0 that torchrun starts."""
    import os

    return int(os.environ.get("RANK", "0")) == 0

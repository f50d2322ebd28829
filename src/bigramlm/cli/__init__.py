"""The ``bigramlm`` command line: a thin layer over the library.

Bad input ends in one line, ``error: ...``, and exit code 2; no traceback.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import Any, Callable

from bigramlm.cli.serve import add_serve_parser  # light: fastapi is imported only when serving
from bigramlm.cli.support import add_assist_parser, add_brand_parser, add_learn_parser
from bigramlm.errors import BigramLMError

EXIT_USAGE = 2


def _print_json(obj: Any) -> None:
    print(json.dumps(obj, ensure_ascii=False))


def _positive_int(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {value!r}") from None
    return number


# --- train --------------------------------------------------------------------


def add_train_parser(sub: argparse._SubParsersAction) -> None:
    from bigramlm.cli.gpt import add_gpt_train_args
    from bigramlm.config import TrainConfig
    from bigramlm.training.recipes import GPT_TRAIN_DEFAULTS

    d = TrainConfig()
    p = sub.add_parser("train", help="train a model on a corpus", description="Train a model and write a run directory.")
    p.add_argument("--data", required=True, help="a named corpus (tinyshakespeare, bitext) or a file path")
    p.add_argument("--model", default="bigram", help="model to train: bigram (default) or gpt")
    p.add_argument("--method", default=d.method, choices=["sgd", "counts"], help="sgd: AdamW on batches; counts: closed-form bigram")
    p.add_argument("--out", required=True, type=Path, help="run directory to write")
    # Defaults of None are filled per model (cli_gpt.train_config_from_args): the
    # notebook's for the bigram, the fast CPU recipe for the GPT (shown as gpt: ...).
    g = GPT_TRAIN_DEFAULTS
    p.add_argument("--steps", type=_positive_int, default=None, help=f"optimizer steps (default {d.steps}; gpt: {g['steps']}, or until --time-limit)")
    p.add_argument("--lr", type=float, default=None, help=f"learning rate (default {d.learning_rate}; gpt: {g['learning_rate']})")
    p.add_argument("--batch-size", type=_positive_int, default=None, help=f"windows per batch (default {d.batch_size}; gpt: {g['batch_size']})")
    p.add_argument("--block-size", type=_positive_int, default=None, help=f"window length in tokens (default {d.block_size}; gpt: the preset's)")
    p.add_argument("--weight-decay", type=float, default=None, help=f"AdamW weight decay (default {d.weight_decay}; gpt: {g['weight_decay']}, matrices only)")
    p.add_argument("--alpha", type=float, default=d.alpha, help="additive smoothing for --method counts (default 1: add-one)")
    p.add_argument("--seed", type=int, default=d.seed, help=f"random seed (default {d.seed})")
    p.add_argument("--eval-every", type=_positive_int, default=None, help=f"steps between evaluations (default {d.eval_every}; gpt: {g['eval_every']})")
    p.add_argument("--checkpoint-every", type=_positive_int, default=None, help=f"steps between resume checkpoints (default {d.checkpoint_every}; gpt: {g['checkpoint_every']})")
    p.add_argument("--device", default=d.device, help="torch device: cpu, cuda, or auto")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run in --out")
    p.add_argument("--overwrite", action="store_true", help="replace a finished run in --out")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true", help="print the final result as one JSON object")
    from bigramlm.cli.support import add_instruction_args

    add_instruction_args(p)
    add_gpt_train_args(p)
    p.set_defaults(func=cmd_train)


def _resolve_device(name: str) -> str:
    if name == "auto":
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    return name


def cmd_train(args: argparse.Namespace) -> int:
    from bigramlm.data import load_data
    from bigramlm.training import train

    out: Path = args.out
    if out.exists() and not out.is_dir():
        raise BigramLMError(f"--out {out} exists and is not a directory")
    if not args.resume and (out / "config.json").exists() and not args.overwrite:
        raise BigramLMError(f"{out} already holds a run; use --resume to continue it or --overwrite to replace it")
    from bigramlm.cli.gpt import budget_note, budget_start, is_main_process, train_config_from_args

    config, model_config = train_config_from_args(args)
    config.device = _resolve_device(args.device)
    config.validate()
    data = None
    if args.resume:
        from bigramlm.checkpoint import read_config
        from bigramlm.data import load_run_data

        data = load_run_data(read_config(out).data)
    else:
        from bigramlm.cli.support import check_instruction_flags, instruction_options

        check_instruction_flags(args.data, args)
        data = load_data(args.data, **instruction_options(args))
    log = (lambda m: print(m, file=sys.stderr)) if not args.json else None
    note = budget_note(args, model_config, config)
    if note and log is not None and is_main_process():
        log(note)
    result = train(
        data,
        out,
        model_name=args.model,
        model_config=model_config,
        config=config,
        started_at=budget_start(),  # --time-limit counts from process start
        resume=args.resume,
        progress=not (args.no_progress or args.json),
        log=log,
    )
    if not is_main_process():  # under torchrun only rank 0 reports
        return 0
    summary = {"run_dir": str(out), "steps": result.steps, "seconds": round(result.seconds, 3), **result.val.to_dict()}
    if args.json:
        _print_json(summary)
    else:
        v = result.val
        print(f"val loss {v.loss:.4f} nats | {v.bits_per_char:.4f} bits/char | perplexity {v.perplexity:.2f} | {v.tokens:,} tokens")
        print(f"run written to {out} ({result.seconds:.1f} s)")
    return 0


# --- eval ---------------------------------------------------------------------


def add_eval_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="evaluate a run on a whole split", description="Mean next-token cross-entropy over a whole split.")
    p.add_argument("run_dir", type=Path, help="run directory")
    p.add_argument("--split", default="val", choices=["train", "val", "test"], help="split to evaluate (default val)")
    p.add_argument("--data", default=None, help="read the run's data from here instead of where it was trained")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    from bigramlm.cli.support import add_support_eval_args

    add_support_eval_args(p)
    p.set_defaults(func=cmd_eval)


def cmd_eval(args: argparse.Namespace) -> int:
    if getattr(args, "task", "lm") == "support":
        from bigramlm.cli.support import cmd_eval_support

        return cmd_eval_support(args)
    from bigramlm.api import evaluate_run

    result = evaluate_run(args.run_dir, split=args.split, data=args.data)
    if args.json:
        _print_json(result.to_dict())
    else:
        print(f"{result.split}: loss {result.loss:.4f} nats | {result.bits_per_char:.4f} bits/char | perplexity {result.perplexity:.3f} | {result.tokens:,} tokens")
    return 0


# --- sample -------------------------------------------------------------------


def add_sample_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sample", help="stream generated text", description="Generate text from a trained run.")
    p.add_argument("run_dir", type=Path, help="run directory")
    p.add_argument("--prompt", default="", help="text to continue (not repeated in the output)")
    p.add_argument("--tokens", type=int, default=500, help="new tokens to generate (default 500)")
    p.add_argument("--temperature", type=float, default=1.0, help="sampling temperature; 0 is greedy (default 1)")
    p.add_argument("--top-k", type=int, default=None, help="sample only from the k likeliest tokens")
    p.add_argument("--top-p", type=float, default=None, help="nucleus sampling mass")
    p.add_argument("--seed", type=int, default=None, help="random seed for reproducible samples")
    p.set_defaults(func=cmd_sample, flag_names={"max_new_tokens": "--tokens"})


def cmd_sample(args: argparse.Namespace) -> int:
    from bigramlm.checkpoint import load_run
    from bigramlm.generation import check_new_tokens, generate_text

    check_new_tokens(args.tokens)
    run = load_run(args.run_dir)
    out = sys.stdout
    for chunk in generate_text(run.model, run.tokenizer, args.prompt, args.tokens, args.temperature, args.top_k, args.top_p, args.seed):
        out.write(chunk)
        out.flush()
    out.write("\n")
    return 0


# --- data ---------------------------------------------------------------------


def add_data_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("data", help="inspect data sources", description="Look at a corpus as the lecture does.")
    data_sub = p.add_subparsers(dest="data_command", metavar="COMMAND", required=True)
    info = data_sub.add_parser("info", help="length, vocabulary, preview and context/target pairs")
    info.add_argument("source", help="a named corpus or a file path")
    info.add_argument("--block-size", type=_positive_int, default=8, help="window for the context -> target pairs (default 8)")
    info.add_argument("--preview", type=int, default=500, help="characters of preview (default 500)")
    info.add_argument("--json", action="store_true", help="print one JSON object")
    info.set_defaults(func=cmd_data_info)
    from bigramlm.cli.support import add_data_export_parser

    add_data_export_parser(data_sub)


def cmd_data_info(args: argparse.Namespace) -> int:
    from bigramlm.data import data_info

    if args.block_size < 1:
        raise BigramLMError("--block-size must be at least 1")
    info = dataclasses.asdict(data_info(args.source, args.block_size, max(args.preview, 0)))
    if args.json:
        _print_json(info)
        return 0
    print(f"source: {info['source']} ({info['kind']})")
    print(f"length: {info['characters']:,} characters (train {info['train_characters']:,}, val {info['val_characters']:,})")
    print(f"vocabulary ({info['vocab_size']}): {info['vocab']!r}")
    print(f"vocab_size = {info['vocab_size']}")
    print("preview:")
    print(info["preview"])
    print(f"\ncontext -> target pairs of the first window (block_size={info['block_size']}):")
    for pair, text in zip(info["pairs"], info["pairs_text"]):
        print(f"when input is {pair['context']} the target is: {pair['target']}    ({text['context']!r} -> {text['target']!r})")
    return 0


# --- entry point ----------------------------------------------------------------

#: Subcommand registrars, in --help order; each module owns its commands' flags.
PARSERS: list[Callable[[argparse._SubParsersAction], None]] = [
    add_train_parser,
    add_eval_parser,
    add_sample_parser,
    add_data_parser,
    add_assist_parser,
    add_brand_parser,
    add_learn_parser,
    add_serve_parser,
]


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2, like BigramLMError
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    from bigramlm import __version__

    parser = _Parser(prog="bigramlm", description="Character-level language models, from the bigram up, with a support-agent assistant.")
    parser.add_argument("--version", action="version", version=f"bigramlm {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True, parser_class=_Parser)
    for add in PARSERS:
        add(sub)
    return parser


#: Library parameters whose flag is not simply ``--`` + the name with dashes.
FLAG_NAMES = {
    "learning_rate": "--lr",
    "warmup_steps": "--warmup",
    "max_new_tokens": "--max-tokens",
    "data": "--data",
}


def flag_names(params: tuple[str, ...], command_names: dict[str, str] | None = None) -> dict[str, str]:
    """How the user typed each parameter on this command's line."""
    names = {p: "--" + p.replace("_", "-") for p in params}
    names.update({p: f for p, f in FLAG_NAMES.items() if p in names})
    names.update({p: f for p, f in (command_names or {}).items() if p in names})
    return names


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args) or 0
    except BigramLMError as exc:
        message = exc.with_names(flag_names(exc.params, getattr(args, "flag_names", None)))
        print(f"error: {message}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `bigramlm sample ... | head`
        return 0


if __name__ == "__main__":
    sys.exit(main())

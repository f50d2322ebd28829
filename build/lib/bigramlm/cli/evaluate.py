"""``bigramlm eval RUN_DIR``: the exact loss over a whole split, or with ``--task support``
the assistant's intent and reply metrics (``cli.support``)."""

from __future__ import annotations

import argparse
from pathlib import Path

from bigramlm.cli.common import add_json_flag, add_threads_flag, apply_threads, print_json
from bigramlm.cli.support import add_support_eval_args, cmd_eval_support


def add_eval_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="evaluate a run on a whole split", description="Mean next-token cross-entropy over a whole split.")
    p.add_argument("run_dir", type=Path, help="run directory")
    p.add_argument("--split", default="val", choices=["train", "val", "test"], help="split to evaluate (default val)")
    p.add_argument("--data", default=None, help="read the run's data from here instead of where it was trained")
    add_json_flag(p)
    add_threads_flag(p)
    add_support_eval_args(p)
    p.set_defaults(func=cmd_eval)


def cmd_eval(args: argparse.Namespace) -> int:
    if args.task == "support":
        return cmd_eval_support(args)
    from bigramlm.api import evaluate_run
    from bigramlm.checkpoint import load_run

    run = load_run(args.run_dir)
    apply_threads(args.threads, run.model)
    result = evaluate_run(run, split=args.split, data=args.data)
    if args.json:
        print_json(result.to_dict())
    else:
        print(f"{result.split}: loss {result.loss:.4f} nats | {result.bits_per_char:.4f} bits/char | perplexity {result.perplexity:.3f} | {result.tokens:,} tokens")
    return 0

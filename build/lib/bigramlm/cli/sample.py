"""``bigramlm sample RUN_DIR``: stream generated text to stdout."""

from __future__ import annotations

import argparse
import codecs
import sys
from pathlib import Path

from bigramlm.cli.common import add_threads_flag, apply_threads


def add_sample_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sample", help="stream generated text", description="Generate text from a trained run.")
    p.add_argument("run_dir", type=Path, help="run directory")
    p.add_argument("--prompt", default="", help="text to continue (not repeated in the output)")
    p.add_argument("--tokens", type=int, default=500, help="new tokens to generate (default 500)")
    p.add_argument("--temperature", type=float, default=1.0, help="sampling temperature; 0 is greedy (default 1)")
    p.add_argument("--top-k", type=int, default=None, help="sample only from the k likeliest tokens")
    p.add_argument("--top-p", type=float, default=None, help="nucleus sampling mass")
    p.add_argument("--seed", type=int, default=None, help="random seed for reproducible samples")
    p.add_argument("--stop", action="append", default=[], metavar="TEXT",
                   help="end the sample before this text (repeatable; backslash escapes such as \\n are understood)")
    add_threads_flag(p)
    p.set_defaults(func=cmd_sample, flag_names={"max_new_tokens": "--tokens"})


def cmd_sample(args: argparse.Namespace) -> int:
    from bigramlm.generation.checks import check_new_tokens, check_sampling, check_seed

    # Before loading anything: a bad flag fails at once, not after import torch.
    check_new_tokens(args.tokens)
    check_sampling(args.temperature, args.top_k, args.top_p)
    check_seed(args.seed)
    from bigramlm.checkpoint import load_run
    from bigramlm.generation import generate_text

    run = load_run(args.run_dir)
    apply_threads(args.threads, run.model)
    stop = [codecs.decode(s, "unicode_escape") for s in args.stop]
    chunks = generate_text(run.model, run.tokenizer, args.prompt, args.tokens, args.temperature, args.top_k, args.top_p,
                           args.seed, stop=stop)
    out = sys.stdout
    for chunk in chunks:
        out.write(chunk)
        out.flush()
    out.write("\n")
    return 0

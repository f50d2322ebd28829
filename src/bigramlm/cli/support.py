"""Command-line pieces of the support assistant: ``assist``, ``brand init``, ``learn``,
``data export``, ``eval --task support`` and the instruction-column flags of ``train``.

``cli.py`` stays the one entry point: it appends ``add_assist_parser``,
``add_brand_parser`` and ``add_learn_parser`` to its ``PARSERS`` list, and calls the
small hooks below from its ``train``, ``eval`` and ``data`` parsers.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from bigramlm.errors import BigramLMError


def _print_json(obj: Any) -> None:
    print(json.dumps(obj, ensure_ascii=False))


# --- shared flags -----------------------------------------------------------------------


def add_instruction_args(p: argparse.ArgumentParser) -> None:
    """Column names of an instruction dataset (CSV/JSONL/Parquet)."""
    g = p.add_argument_group("instruction datasets (.csv, .jsonl, .parquet, or --data bitext)")
    g.add_argument("--instruction-col", default=None, help="column with the customer message (default: instruction)")
    g.add_argument("--response-col", default=None, help="column with the reply (default: response)")
    g.add_argument("--intent-col", default=None, help="column with the intent label (default: intent, when present)")
    g.add_argument("--category-col", default=None, help="column with the category label (default: category, when present)")
    g.add_argument("--no-labels", dest="labels", action="store_false", default=None,
                   help="train on the notebook's plain blocks, without the intent/category lines")


def instruction_options(args: argparse.Namespace) -> dict[str, Any]:
    """The keyword options ``load_data`` passes on to ``load_instruction_data``."""
    options = {
        "instruction_col": getattr(args, "instruction_col", None),
        "response_col": getattr(args, "response_col", None),
        "intent_col": getattr(args, "intent_col", None),
        "category_col": getattr(args, "category_col", None),
        "labels": getattr(args, "labels", None),
    }
    return {k: v for k, v in options.items() if v is not None}


def check_instruction_flags(source: str, args: argparse.Namespace) -> None:
    """Column flags only make sense for an instruction dataset; say so instead of ignoring them."""
    from bigramlm.data.registry import is_instruction_source

    given = instruction_options(args)
    if given and not is_instruction_source(source):
        flags = ", ".join("--" + k.replace("_", "-") if k != "labels" else "--no-labels" for k in given)
        raise BigramLMError(f"{flags} apply to instruction datasets (.csv/.jsonl/.parquet or bitext), not {source}")


def _add_generation_args(p: argparse.ArgumentParser) -> None:
    from bigramlm.support.assistant import DEFAULTS

    p.add_argument("--n", type=int, default=DEFAULTS["n"], help=f"candidate replies (default {DEFAULTS['n']})")
    p.add_argument("--max-tokens", type=int, default=DEFAULTS["max_new_tokens"],
                   help=f"length limit of a reply in tokens (default {DEFAULTS['max_new_tokens']})")
    p.add_argument("--temperature", type=float, default=DEFAULTS["temperature"], help=f"sampling temperature (default {DEFAULTS['temperature']})")
    p.add_argument("--top-k", type=int, default=DEFAULTS["top_k"], help="sample from the k likeliest tokens only")
    p.add_argument("--top-p", type=float, default=DEFAULTS["top_p"], help=f"nucleus mass (default {DEFAULTS['top_p']})")


# --- assist -------------------------------------------------------------------------------


def add_assist_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("assist", help="understand a customer message and suggest replies",
                       description="Predict intent, suggest brand-filled replies and show similar resolved cases.")
    p.add_argument("run_dir", type=Path, help="an instruction run directory")
    p.add_argument("message", help="the customer's message")
    _add_generation_args(p)
    p.add_argument("--seed", type=int, default=None, help="random seed for reproducible suggestions")
    p.add_argument("--similar", type=int, default=3, help="similar past cases to show (default 3)")
    p.add_argument("--brand", type=Path, default=None, help="brand profile TOML (see `bigramlm brand init`)")
    p.add_argument("--data", default=None, help="read the run's dataset from here instead of where it was trained")
    p.add_argument("--baseline", action="store_true",
                   help="also show the TF-IDF + logistic-regression intent (fitted on the run's train rows; takes seconds)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_assist)


def cmd_assist(args: argparse.Namespace) -> int:
    from bigramlm.support.assistant import Assistant

    assistant = Assistant.load(args.run_dir, brand_path=args.brand, data=args.data, baseline=args.baseline)
    result = assistant.suggest(
        args.message, n=args.n, max_new_tokens=args.max_tokens, temperature=args.temperature,
        top_k=args.top_k, top_p=args.top_p, seed=args.seed, k_similar=args.similar,
    ).to_dict()
    if args.json:
        _print_json(result)
        return 0
    prob = result["intent_probability"]
    print(f"intent: {result['intent']} ({result['category']}), p = {prob:.3f}" if prob is not None else "intent: unknown")
    if "baseline" in result:
        b = result["baseline"]
        print(f"baseline (TF-IDF + logistic regression): {b['intent']} ({b['category']}), p = {b['probability']:.3f}")
    if result["replaced_characters"]:
        print(f"({result['replaced_characters']} character(s) outside the model's vocabulary were replaced)")
    for rank, s in enumerate(result["suggestions"], start=1):
        print(f"\n--- suggestion {rank} (score {s['score']:.3f} nats/char) ---")
        print(s["filled_text"])
        if s["unfilled_placeholders"]:
            print("unfilled: " + ", ".join("{{" + name + "}}" for name in s["unfilled_placeholders"]))
        if s["mangled_placeholders"]:
            print("MANGLED placeholders: " + "; ".join(repr(m["text"]) for m in s["mangled_placeholders"]))
    if result["similar_cases"]:
        print("\n--- similar resolved cases ---")
        for case in result["similar_cases"]:
            reply = " ".join(case["reply"].split())
            print(f"[{case['score']:.2f}] {case['intent']}: {case['message']}\n    -> {reply[:160]}{'...' if len(reply) > 160 else ''}")
    return 0


# --- brand init -------------------------------------------------------------------------------


def add_brand_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("brand", help="brand profiles for the assistant", description="Brand profiles (TOML).")
    brand_sub = p.add_subparsers(dest="brand_command", metavar="COMMAND", required=True)
    init = brand_sub.add_parser("init", help="write a template listing every placeholder in the data")
    init.add_argument("--data", required=True, help="instruction dataset: bitext or a .csv/.jsonl/.parquet file")
    init.add_argument("--out", required=True, type=Path, help="TOML file to write")
    init.add_argument("--force", action="store_true", help="overwrite an existing file")
    add_instruction_args(init)
    init.set_defaults(func=cmd_brand_init)


def cmd_brand_init(args: argparse.Namespace) -> int:
    from bigramlm.support.brand import brand_template, count_placeholders
    from bigramlm._fs import atomic_write_text
    from bigramlm.data.table import read_table
    from bigramlm.data.registry import resolve_source

    if args.out.exists() and not args.force:
        raise BigramLMError(f"{args.out} exists; use --force to overwrite it")
    path, _ = resolve_source(args.data)
    table = read_table(path, args.instruction_col, args.response_col, args.intent_col, args.category_col)
    counts = count_placeholders(r.response for r in table.rows)
    atomic_write_text(args.out, brand_template(counts, args.data))
    print(f"wrote {args.out}: {len(counts)} placeholders, {sum(counts.values()):,} occurrences")
    return 0


# --- learn -------------------------------------------------------------------------------------


def add_learn_parser(sub: argparse._SubParsersAction) -> None:
    from bigramlm.support.learning import DEFAULT_STEPS

    p = sub.add_parser("learn", help="learn from resolved cases (store, index, fine-tune)",
                       description="Add resolved cases to the run's store and retrieval index, and continue training on them.")
    p.add_argument("run_dir", type=Path, help="an instruction run directory")
    p.add_argument("--cases", type=Path, default=None,
                   help="cases file with the dataset's columns; without it, the store's cases since the last learn")
    p.add_argument("--steps", type=int, default=DEFAULT_STEPS, help=f"fine-tuning steps (default {DEFAULT_STEPS})")
    p.add_argument("--lr", type=float, default=None, help="learning rate (default: the run's)")
    p.add_argument("--batch-size", type=int, default=None, help="windows per batch (default: the run's)")
    p.add_argument("--replay", type=float, default=0.5, help="share of each batch drawn from the training text (default 0.5)")
    p.add_argument("--seed", type=int, default=1337, help="random seed (default 1337)")
    p.add_argument("--data", default=None, help="read the run's dataset from here instead of where it was trained")
    p.add_argument("--undo", action="store_true",
                   help="restore the weights from before the last learn and mark its cases not learned again")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_learn, flag_names={"cases_path": "--cases"})


def cmd_learn(args: argparse.Namespace) -> int:
    from bigramlm.support.learning import learn, undo_learn

    if args.undo:
        if args.cases is not None:
            raise BigramLMError("--undo takes no --cases: it only puts back the weights from before the last learn")
        undone = undo_learn(args.run_dir)
        if args.json:
            _print_json(undone.to_dict())
        else:
            print(f"restored the weights from before learn {undone.learn_id}; {undone.cases_unmarked} cases marked not learned")
        return 0
    log = (lambda m: print(m, file=sys.stderr)) if not args.json else None
    summary = learn(args.run_dir, cases_path=args.cases, steps=args.steps, learning_rate=args.lr,
                    batch_size=args.batch_size, replay=args.replay, seed=args.seed, data=args.data, log=log).to_dict()
    if args.json:
        _print_json(summary)
    elif summary["steps"] or summary["cases"]:
        extra = ""
        if "case_loss_before" in summary:
            extra = f"; loss on the cases {summary['case_loss_before']:.4f} -> {summary['case_loss_after']:.4f} nats"
        print(f"learned {summary['cases']} cases in {summary['steps']} steps{extra}")
    else:
        print(summary.get("message", "nothing to learn"))
    return 0


# --- data export --------------------------------------------------------------------------------


def add_data_export_parser(data_sub: argparse._SubParsersAction) -> None:
    p = data_sub.add_parser("export", help="write an instruction dataset as the notebook's formatted text")
    p.add_argument("source", help="bitext or a .csv/.jsonl/.parquet file")
    p.add_argument("--out", required=True, type=Path, help="text file to write (customer_support_data.txt)")
    p.add_argument("--with-labels", action="store_true", help="add the intent/category lines to each block")
    add_instruction_args(p)
    p.set_defaults(func=cmd_data_export)


def cmd_data_export(args: argparse.Namespace) -> int:
    from bigramlm.data.formats import format_rows
    from bigramlm.data.instructions import write_export
    from bigramlm.data.table import read_table
    from bigramlm.data.registry import resolve_source

    columns = {k: v for k, v in instruction_options(args).items() if k != "labels"}
    path, _ = resolve_source(args.source)
    table = read_table(path, **columns, require_labels=args.with_labels)
    text = format_rows(table.rows, labels=args.with_labels)
    write_export(text, args.out)
    skipped = f"; skipped {table.skipped} rows with an empty instruction or response" if table.skipped else ""
    print(f"wrote {args.out}: {len(table.rows):,} rows, {len(text):,} characters, {len(set(text))} distinct{skipped}")
    return 0


# --- eval --task support ---------------------------------------------------------------------------


def add_support_eval_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--task", default="lm", choices=["lm", "support"],
                   help="lm: exact loss over the split; support: the assistant's intent and reply metrics")
    g = p.add_argument_group("--task support")
    g.add_argument("--n", type=int, default=None, help="candidate replies per message (default 3)")
    g.add_argument("--max-tokens", type=int, default=None, help="length limit of a reply (default 400)")
    g.add_argument("--temperature", type=float, default=None, help="sampling temperature (default 0.8)")
    g.add_argument("--top-k", type=int, default=None, help="top-k sampling")
    g.add_argument("--top-p", type=float, default=None, help="nucleus mass (default 0.95)")
    g.add_argument("--seed", type=int, default=1337, help="base seed; row i uses seed + i (default 1337)")
    g.add_argument("--limit", type=int, default=None, help="evaluate only the first N rows of the split")
    g.add_argument("--paraphrases", default=None, help="JSONL of hand-written messages (default: the packaged file)")


def cmd_eval_support(args: argparse.Namespace) -> int:
    from bigramlm.support.assistant import DEFAULTS
    from bigramlm.support.evaluation import evaluate_support

    options = {
        "n": args.n if args.n is not None else DEFAULTS["n"],
        "max_new_tokens": args.max_tokens if args.max_tokens is not None else DEFAULTS["max_new_tokens"],
        "temperature": args.temperature if args.temperature is not None else DEFAULTS["temperature"],
        "top_k": args.top_k,
        "top_p": args.top_p if args.top_p is not None else DEFAULTS["top_p"],
    }
    log = (lambda m: print(m, file=sys.stderr)) if not args.json else None
    result = evaluate_support(args.run_dir, data=args.data, split=args.split, seed=args.seed, limit=args.limit,
                              paraphrases=args.paraphrases, log=log, **options).to_dict()
    if args.json:
        _print_json(result)
        return 0
    b = result["baselines"]

    def pct(x: float | None) -> str:
        return "n/a" if x is None else f"{100 * x:.1f}%"

    print(f"support eval of {result['run_dir']} on {result['n_test']} {result['split']} rows ({result['seconds']} s)")
    print(f"  intent accuracy      {pct(result['intent_accuracy'])}   (TF-IDF + logreg {pct(b['tfidf_logreg_intent_accuracy'])})")
    print(f"  category accuracy    {pct(result['category_accuracy'])}")
    print(f"  paraphrase intent    {pct(result['paraphrase_intent_accuracy'])}   (TF-IDF + logreg {pct(b['tfidf_logreg_paraphrase_intent_accuracy'])}, {result['n_paraphrases']} messages)")
    print(f"  chrF {result['chrf']:.2f}  BLEU {result['bleu']:.2f}  ROUGE-L {result['rouge_l']:.3f}   "
          f"(retrieval: chrF {b['retrieval_chrf']:.2f}  BLEU {b['retrieval_bleu']:.2f}  ROUGE-L {b['retrieval_rouge_l']:.3f})")
    print(f"  bits/char on responses {result['bits_per_char']:.4f}")
    return 0

"""The support assistant's commands: ``assist``, ``brand init``, ``learn`` and the pieces
of ``eval --task support``.

The generation flags are built from ``support.settings.SuggestSettings`` (its defaults,
bounds and help; torch-free), default to None and are passed on only when given; the
settings are checked before the assistant loads (torch and the run take seconds).
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Any

from bigramlm.cli.common import (
    add_json_flag,
    add_speculate_flag,
    add_store_argument,
    add_threads_flag,
    apply_threads,
    print_json,
    require,
    stderr_log,
)
from bigramlm.cli.data import add_column_args
from bigramlm.errors import BigramLMError
from bigramlm.support.settings import DEFAULTS, EVAL_SEED, INTEGERS, LEARN_STEPS, LEARN_TIME_LIMIT, SIMILAR_CASES, SuggestSettings, bounds

#: The settings every generating command takes as flags (``assist`` adds ``--length``).
GENERATION_SETTINGS = ("n", "drafts", "max_new_tokens", "temperature", "top_k", "top_p")


def _add_setting_flag(p: argparse.ArgumentParser | argparse._ArgumentGroup, name: str) -> None:
    b, default = bounds(name), DEFAULTS[name]
    flag = b.flag or "--" + name.replace("_", "-")
    shown_default = "" if default is None else f"; default {default}"
    if b.choices is not None:
        p.add_argument(flag, dest=name, choices=b.choices, default=None, help=f"{b.help}")
    else:
        p.add_argument(flag, dest=name, type=int if name in INTEGERS else float, default=None,
                       metavar=flag.lstrip("-").replace("-", "_").upper(), help=f"{b.help} ({b.describe()}{shown_default})")


def _add_generation_args(p: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    for name in GENERATION_SETTINGS:
        _add_setting_flag(p, name)
    add_speculate_flag(p)


def settings_from_args(args: argparse.Namespace) -> SuggestSettings:
    """The settings the flags give (the library's defaults for those not given), checked
    here, before the assistant loads."""
    given = {name: getattr(args, name, None) for name in (*GENERATION_SETTINGS, "length")}
    return SuggestSettings(**{k: v for k, v in given.items() if v is not None}, seed=args.seed).check()


# --- assist ------------------------------------------------------------------------------


def add_assist_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("assist", help="understand a customer message and suggest replies",
                       description="Predict intent, suggest brand-filled replies and show similar resolved cases.")
    p.add_argument("run_dir", type=Path, help="an instruction run directory")
    p.add_argument("message", help="the customer's message")
    _add_generation_args(p)
    p.add_argument("--seed", type=int, default=None, help=bounds("seed").help)
    p.add_argument("--similar", type=int, default=SIMILAR_CASES, help=f"similar past cases to show (default {SIMILAR_CASES})")
    p.add_argument("--brand", type=Path, default=None, help="brand profile TOML (see `bigramlm brand init`)")
    _add_setting_flag(p, "length")
    p.add_argument("--data", default=None, help="read the run's dataset from here instead of where it was trained")
    p.add_argument("--baseline", action="store_true",
                   help="also show the TF-IDF + logistic-regression intent (fitted on the run's train rows; takes seconds)")
    add_store_argument(p)
    add_json_flag(p)
    add_threads_flag(p)
    p.set_defaults(func=cmd_assist)


def cmd_assist(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    require(args.similar >= 0, f"k_similar must not be negative (got {args.similar})", "k_similar")
    from bigramlm.support.assistant import Assistant

    assistant = Assistant.load(args.run_dir, brand=args.brand, data=args.data, baseline=args.baseline,
                               speculate=args.speculate, store=args.store)
    if assistant.degraded:
        print(f"warning: {assistant.degraded}", file=sys.stderr)
    apply_threads(args.threads, assistant.model)
    result = assistant.suggest(args.message, settings, k_similar=args.similar).to_dict()
    if args.json:
        print_json(result)
    else:
        _print_assist(result)
    return 0


#: Control characters (but newline and tab) and bidirectional overrides: a terminal would
#: act on them (an ANSI escape, a right-to-left override) instead of showing them.
_UNPRINTABLE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def shown(value: Any) -> str:
    """``value`` as text a terminal shows as it is: the characters above escaped (``\\x1b``)."""
    return _UNPRINTABLE.sub(lambda m: m.group(0).encode("unicode_escape").decode("ascii"), str(value))


def _print_assist(result: dict[str, Any]) -> None:
    print(shown(_assist_text(result)))


def _assist_text(result: dict[str, Any]) -> str:
    lines: list[str] = []
    out = lines.append
    prob = result["intent_probability"]
    if result.get("out_of_scope"):
        closest = ", ".join(i["intent"] for i in result["intents"][:3])
        out(f"intent: OUT OF SCOPE - no intent of this run fits (closest: {closest}); no reply is suggested as an answer")
    elif prob is None:
        out("intent: unknown")
    elif result.get("intent_unsure"):
        out(f"intent: UNSURE - best guess {result['intent']} ({result['category']}), p = {prob:.3f}; check before replying")
    else:
        out(f"intent: {result['intent']} ({result['category']}), p = {prob:.3f}")
    if "baseline" in result:
        b = result["baseline"]
        out(f"baseline (TF-IDF + logistic regression): {b['intent']} ({b['category']}), p = {b['probability']:.3f}")
    if result["replaced_characters"]:
        out(f"({result['replaced_characters']} character(s) outside the model's vocabulary were replaced)")
    for rank, s in enumerate(result["suggestions"], start=1):
        agreement = "" if s.get("source") == "brand" else f" (agreement {s['score']:.1f}/100)"  # a holding reply ranks nothing
        out(f"\n--- suggestion {rank}: {s.get('label', 'model draft')}{agreement} ---")
        out(s["filled_text"])
        for edit in s.get("team_edits") or []:
            out(edit["description"])
        if s["unfilled_placeholders"]:
            out("unfilled: " + ", ".join("{{" + name + "}}" for name in s["unfilled_placeholders"]))
        if s["mangled_placeholders"]:
            out("MANGLED placeholders: " + "; ".join(repr(m["text"]) for m in s["mangled_placeholders"]))
    if result["similar_cases"]:
        out("\n--- similar resolved cases" + (" (a loose match: no intent fits) ---" if result.get("out_of_scope") else " ---"))
        for case in result["similar_cases"]:
            reply = " ".join(case["reply"].split())
            out(f"[{case['score']:.2f}] {case['intent']}: {case['message']}\n    -> {reply[:160]}{'...' if len(reply) > 160 else ''}")
    return "\n".join(lines)


# --- brand init ------------------------------------------------------------------------------


def add_brand_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("brand", help="brand profiles for the assistant", description="Brand profiles (TOML).")
    brand_sub = p.add_subparsers(dest="brand_command", metavar="COMMAND")
    init = brand_sub.add_parser("init", help="write a template listing every placeholder in the data")
    init.add_argument("--data", required=True, help="instruction dataset: bitext or a .csv/.jsonl/.parquet file")
    init.add_argument("--out", required=True, type=Path, help="TOML file to write")
    init.add_argument("--force", action="store_true", help="overwrite an existing file")
    add_column_args(init)
    init.set_defaults(func=cmd_brand_init)


def cmd_brand_init(args: argparse.Namespace) -> int:
    from bigramlm._fs import atomic_write_text, check_writable
    from bigramlm.data.registry import resolve_source
    from bigramlm.data.table import read_table
    from bigramlm.support.brand import brand_template, count_placeholders, coverage

    check_writable(args.out, "out")
    if args.out.exists() and not args.force:
        raise BigramLMError(f"{args.out} exists; use --force to overwrite it")
    path, _ = resolve_source(args.data)
    table = read_table(path, args.instruction_col, args.response_col, args.intent_col, args.category_col)
    counts = count_placeholders(r.reply for r in table.rows)
    atomic_write_text(args.out, brand_template(counts, args.data))
    print(f"wrote {args.out}: {len(counts)} placeholders, {sum(counts.values()):,} occurrences; {coverage(counts)}")
    return 0


# --- learn -----------------------------------------------------------------------------------


def add_learn_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("learn", help="learn from resolved cases (store, index, fine-tune)",
                       description="Add resolved cases to the run's store and retrieval index, and continue training on them.")
    p.add_argument("run_dir", type=Path, help="an instruction run directory")
    p.add_argument("--cases", type=Path, default=None,
                   help="cases file with the dataset's columns; without it, the store's cases since the last learn")
    p.add_argument("--steps", type=int, default=None, help=f"fine-tuning steps (default {LEARN_STEPS})")
    p.add_argument("--lr", type=float, default=None, help="learning rate (default: a tenth of the run's)")
    p.add_argument("--batch-size", type=int, default=None, help="windows per batch (default: the run's)")
    p.add_argument("--replay", type=float, default=0.5, help="share of each batch drawn from the training text (default 0.5)")
    p.add_argument("--seed", type=int, default=1337, help="random seed (default 1337)")
    p.add_argument("--time-limit", type=float, default=None, metavar="SECONDS",
                   help=f"stop fine-tuning after this many seconds, whatever --steps says (default {LEARN_TIME_LIMIT:g})")
    p.add_argument("--data", default=None, help="read the run's dataset from here instead of where it was trained")
    p.add_argument("--force", action="store_true",
                   help="keep the new weights even if they make the other intents worse on held-out rows (the learn gate)")
    p.add_argument("--undo", action="store_true",
                   help="restore the weights from before the last learn and mark its cases not learned again")
    add_store_argument(p)
    add_json_flag(p)
    add_threads_flag(p)
    p.set_defaults(func=cmd_learn, flag_names={"cases_path": "--cases", "time_limit": "--time-limit"})


def cmd_learn(args: argparse.Namespace) -> int:
    from bigramlm.support.learning import learn
    from bigramlm.support.publish import undo_learn

    if args.undo:
        if args.cases is not None:
            raise BigramLMError("--undo takes no --cases: it only puts back the weights from before the last learn")
        undone = undo_learn(args.run_dir, args.store)
        if args.json:
            print_json(undone.to_dict())
        else:
            print(undone.message)
        return 0
    steps = {} if args.steps is None else {"steps": args.steps}
    if args.time_limit is not None:
        steps["time_limit"] = args.time_limit
    summary = learn(args.run_dir, cases_path=args.cases, learning_rate=args.lr, batch_size=args.batch_size,
                    replay=args.replay, seed=args.seed, data=args.data, log=stderr_log(args), threads=args.threads,
                    force=args.force, store=args.store, **steps).to_dict()
    if args.json:
        print_json(summary)
    elif summary["steps"] or summary["cases"]:
        extra = ""
        if "case_loss_before" in summary:
            extra = f"; loss on the cases {summary['case_loss_before']:.4f} -> {summary['case_loss_after']:.4f} nats"
        print(f"learned {summary['cases']} cases in {summary['steps']} steps{extra}")
        if summary.get("weights_kept") is False:
            print(summary.get("message") or "kept the old weights")
    else:
        print(summary.get("message", "nothing to learn"))
    return 0


# --- eval --task support --------------------------------------------------------------------


def add_support_eval_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--task", default="lm", choices=["lm", "support"],
                   help="lm: exact loss over the split; support: the assistant's intent and reply metrics")
    g = p.add_argument_group("--task support")
    _add_generation_args(g)
    g.add_argument("--seed", type=int, default=EVAL_SEED, help=f"the decode's seed (default {EVAL_SEED})")
    g.add_argument("--limit", type=int, default=None, help="evaluate only the first N rows of the split")
    g.add_argument("--paraphrases", default=None, help="JSONL of hand-written messages (default: the packaged file)")


def cmd_eval_support(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    from bigramlm.support.evaluation import evaluate_support

    result = evaluate_support(args.run_dir, settings, data=args.data, split=args.split, limit=args.limit,
                              paraphrases=args.paraphrases, log=stderr_log(args), threads=args.threads,
                              speculate=args.speculate).to_dict()
    if args.json:
        print_json(result)
    else:
        _print_support_eval(result)
    return 0


def _print_support_eval(result: dict[str, Any]) -> None:
    b = result["baselines"]

    def pct(x: float | None) -> str:
        return "n/a" if x is None else f"{100 * x:.1f}%"

    def num(x: float | None, digits: int = 3) -> str:
        return "n/a" if x is None else f"{x:.{digits}f}"

    print(f"support eval of {result['run_dir']} on {result['n_test']} {result['split']} rows ({result['seconds']} s)")
    print(f"  intent accuracy      {pct(result['intent_accuracy'])}   (model alone {pct(result['model_intent_accuracy'])}; "
          f"TF-IDF + logreg {pct(b['tfidf_logreg_intent_accuracy'])}; {result['intent_method']})")
    print(f"  category accuracy    {pct(result['category_accuracy'])}   calibration error {num(result['calibration_error'])}, "
          f"unsure {pct(result['unsure_rate'])}")
    print(f"  paraphrase intent    {pct(result['paraphrase_intent_accuracy'])}   (model alone "
          f"{pct(result['model_paraphrase_intent_accuracy'])}; TF-IDF + logreg {pct(b['tfidf_logreg_paraphrase_intent_accuracy'])}; "
          f"{result['n_paraphrases']} messages)")
    s = result["shown"]
    print("  replies (micro / macro over intents)       chrF            ROUGE-L")
    for name, chrf, chrf_macro, rouge, rouge_macro in (
        ("top suggestion shown", result["chrf"], s["chrf_macro"], result["rouge_l"], s["rouge_l_macro"]),
        ("the model's own draft", s["draft_chrf"], s["draft_chrf_macro"], s["draft_rouge_l"], s["draft_rouge_l_macro"]),
        ("retrieval: nearest reply", b["retrieval_chrf"], b["retrieval_chrf_macro"], b["retrieval_rouge_l"], b["retrieval_rouge_l_macro"]),
        ("retrieval: consensus of 10", b["retrieval_consensus_chrf"], b["retrieval_consensus_chrf_macro"],
         b["retrieval_consensus_rouge_l"], b["retrieval_consensus_rouge_l_macro"]),
    ):
        print(f"    {name:38s} {num(chrf, 2):>6} / {num(chrf_macro, 2):<6}  {num(rouge)} / {num(rouge_macro)}")
    print(f"  intents where the top suggestion beats retrieval: {s['intents_beating_retrieval']} of {s['intents']}, "
          f"the consensus: {s['intents_beating_consensus']} of {s['intents']}; top suggestion from the model "
          f"{pct(s['top_from_model'])}")
    print(f"  non-words / loops: drafts {pct(s['draft_non_word_rate'])} / {pct(s['draft_loop_rate'])}, shown "
          f"{pct(s['shown_non_word_rate'])} / {pct(s['shown_loop_rate'])}")
    f = result.get("fluency")
    if f:
        print(f"  fluency (floor {f['floor']:.2f}): drafts below it {pct(f['draft_disfluent_rate'])}, refused "
              f"{pct(f['draft_rejected_rate'])} ({f['rejected_only_for_fluency']} for fluency alone); shown drafts below "
              f"it {pct(f['shown_below_floor'])} of {f['shown_drafts']}")
    print(f"  suggestions: {result['suggestions_per_message']:.2f} a message, distinctness {num(result['suggestion_distinctness'])}")
    print(f"  bits/char on responses {num(result['bits_per_char'], 4)}")
    d = result.get("decode") or {}
    if d:
        print(f"  decode {d['seconds']} s, {d['passes']} passes for {d['tokens']} tokens"
              + (f"; drafts kept {pct(d['acceptance'])}, greedy rows {num(d['greedy_tokens_per_pass'], 2)} tokens a pass"
                 if d.get("speculate") else " (--no-speculate)"))

"""``bigramlm rules RUN [list | disable ID | enable ID]``: the team's edit rules of a run.

A rule is an edit most of an intent's recent accepts made (learned from the store at
once, with no ``learn``), or one the brand profile writes (``--brand``). Disabling one
stops new suggestions from carrying it; the store keeps the switch for every desk. A
learned rule no agent has switched is listed as new; one that adds a link, email address
or phone number the run's replies never hold is off until an agent enables it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from bigramlm.cli.common import add_json_flag, add_store_argument, print_json
from bigramlm.errors import BigramLMError


def add_rules_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("rules", help="the team's edit rules: list, disable, enable",
                       description="List the edit rules new suggestions carry (learned from agents' accepted edits, "
                                   "or written in the brand profile); disable or enable one.")
    p.add_argument("run_dir", type=Path, help="an instruction run directory")
    p.add_argument("action", nargs="?", default="list", choices=["list", "disable", "enable"], help="default: list")
    p.add_argument("rule_id", nargs="?", default=None, help="the rule's id (from the list), for disable and enable")
    p.add_argument("--brand", type=Path, default=None, help="brand profile TOML whose [[rules]] count too")
    add_store_argument(p)
    add_json_flag(p)
    p.set_defaults(func=cmd_rules)


def cmd_rules(args: argparse.Namespace) -> int:
    from bigramlm.checkpoint import read_config
    from bigramlm.data.instructions import load_run_files
    from bigramlm.support.brand import BrandProfile
    from bigramlm.support.rulebook import RuleBook, current_rules, known_to_run
    from bigramlm.support.store import CaseStore

    config = read_config(args.run_dir)  # a run directory, or a one-line error
    # The run's intents and replies: what learned rules are checked against, as on the desk.
    book = RuleBook(known_to_run(load_run_files(args.run_dir, config.data) if config.is_instruction_run else None))
    written = BrandProfile.load(args.brand).rules if args.brand else []
    with CaseStore.for_run(args.run_dir, args.store) as store:
        rules = current_rules(store, book, written)
        if args.action != "list":
            rule = next((r for r in rules if r.id == args.rule_id), None)
            if rule is None:
                raise BigramLMError(f"no rule with id {args.rule_id!r} in {args.run_dir} (see `bigramlm rules {args.run_dir}`)",
                                    param="rule_id")
            store.set_rule(rule.id, args.action == "enable", rule.describe())
            rules = current_rules(store, book, written)
    if args.json:
        print_json({"rules": [r.to_dict() for r in rules]})
        return 0
    if not rules:
        print("no rules: agents have not made one edit often enough, and the brand profile writes none")
    for r in rules:
        mark = " (new)" if r.unreviewed else ""
        print(f"{r.id}  {'on ' if r.enabled else 'off'}  {r.describe()}{mark}" + (f"; {r.review}" if r.review and not r.enabled else ""))
    return 0

"""``bigramlm store``: where a run's case store is, and moving it to another database.

``store info RUN`` says which store a command on RUN uses (``--store``, ``BIGRAMLM_STORE``
or the run's SQLite file), its schema version and what it holds; ``store copy RUN --to
URL`` moves it (``support.store.transfer``), checked by counts and checksums.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from bigramlm.cli.common import add_json_flag, add_store_argument, print_json
from bigramlm.errors import BigramLMError


def add_store_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("store", help="the run's case store: info, copy to another database",
                       description="Say which case store a run uses and what it holds, or copy it to another database "
                                   "(a team's PostgreSQL), checked by row counts and content checksums.")
    p.add_argument("action", choices=["info", "copy"])
    p.add_argument("run_dir", type=Path, help="an instruction run directory")
    p.add_argument("--to", default=None, metavar="URL",
                   help="copy: the empty store to copy into (postgresql://USER@HOST/DATABASE, or a SQLite file)")
    add_store_argument(p)
    add_json_flag(p)
    p.set_defaults(func=cmd_store, flag_names={"target": "--to"})


def cmd_store(args: argparse.Namespace) -> int:
    from bigramlm.checkpoint import read_config
    from bigramlm.support.store import CaseStore
    from bigramlm.support.store.transfer import copy_store

    read_config(args.run_dir)  # a run directory, or a one-line error
    if args.action == "info":
        if args.to is not None:
            raise BigramLMError("--to is for `store copy`")
        with CaseStore.for_run(args.run_dir, args.store) as store:
            info = {"store": store.name, "schema_version": store.schema_version(), **store.desk_stats().to_dict()}
        if args.json:
            print_json(info)
        else:
            print(f"{info['store']}: schema {info['schema_version']}, {info['cases']} cases "
                  f"({info['cases_since_last_learn']} not learned), {info['suggestions_shown']} suggestions shown, "
                  f"{info['accepted']} accepted, {info['dismissed']} dismissed")
        return 0
    if not args.to:
        raise BigramLMError("store copy needs --to URL: the empty store it copies into")
    with CaseStore.for_run(args.run_dir, args.store) as source:
        try:
            target = CaseStore(args.to)
        except BigramLMError as exc:  # named as --to here, not as --store
            raise BigramLMError(exc.with_names({"store": "--to"})) from None
        with target:
            result = copy_store(source, target)
    if args.json:
        print_json(result.to_dict())
    else:
        for t in result.tables:
            mark = "same" if t.same else "DIFFERENT"
            print(f"{t.table:<14} {t.rows:>8} rows -> {t.target_rows:>8}  sha256 {t.sha256[:16]}  {mark}")
        print(f"copied {result.source} to {result.target}" if result.same else "the copy differs from its source")
    if not result.same:
        raise BigramLMError(f"the copy in {result.target} differs from {result.source}; do not switch to it")
    return 0

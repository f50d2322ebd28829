"""``bigramlm store``: where a run's case store is, and moving it to another database.

``store info RUN`` says which store a command on RUN uses (``--store``, ``BIGRAMLM_STORE``
or the run's SQLite file), its schema version and what it holds; ``store copy RUN
--to-env VAR`` (or ``--to-file PATH``, ``--to URL``) moves it (``support.store.transfer``),
checked by counts and checksums, and leaves the old store refusing writes.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from bigramlm.cli.common import add_json_flag, add_store_argument, first_line, print_json
from bigramlm.errors import BigramLMError


def add_store_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("store", help="the run's case store: info, copy to another database",
                       description="Say which case store a run uses and what it holds, or copy it to another database "
                                   "(a team's PostgreSQL), checked by row counts and content checksums. After a copy "
                                   "the old store refuses writes: restart every desk on the new one.")
    p.add_argument("action", choices=["info", "copy"])
    p.add_argument("run_dir", type=Path, help="an instruction run directory")
    to = p.add_mutually_exclusive_group()
    to.add_argument("--to-env", default=None, metavar="VAR",
                    help="copy: the environment variable holding the empty store to copy into (a postgresql:// URL with "
                         "its password; preferred, like --to-file, since --to is visible to every user in ps)")
    to.add_argument("--to-file", type=Path, default=None, metavar="PATH",
                    help="copy: a file whose first line is the empty store to copy into")
    to.add_argument("--to", default=None, metavar="URL",
                    help="copy: the empty store to copy into (postgresql://USER@HOST/DATABASE, or a SQLite file)")
    add_store_argument(p)
    add_json_flag(p)
    p.set_defaults(func=cmd_store)


def _target(args: argparse.Namespace) -> tuple[str, str] | None:
    """The store to copy into, and how the user named it (for messages), or None."""
    if args.to_env is not None:
        value = os.environ.get(args.to_env, "").strip()
        if not value:
            raise BigramLMError(f"--to-env {args.to_env}: no such environment variable, or it is empty")
        return value, f"--to-env {args.to_env}"
    if args.to_file is not None:
        return first_line(args.to_file, "--to-file", "store"), f"--to-file {args.to_file}"
    return (args.to, "--to") if args.to else None


def cmd_store(args: argparse.Namespace) -> int:
    from bigramlm.checkpoint import read_config

    read_config(args.run_dir)  # a run directory, or a one-line error
    target = _target(args)
    if args.action == "info":
        if target is not None:
            raise BigramLMError(f"{target[1]} is for `store copy`")
        return _info(args)
    if target is None:
        raise BigramLMError("store copy needs --to-env VAR, --to-file PATH or --to URL: the empty store it copies into")
    return _copy(args, *target)


def _info(args: argparse.Namespace) -> int:
    from bigramlm.support.store import CaseStore

    with CaseStore.for_run(args.run_dir, args.store, moved_ok=True) as store:
        info = {"store": store.name, "schema_version": store.schema_version(), "moved_to": store.moved_to,
                **store.desk_stats().to_dict()}
    if args.json:
        print_json(info)
        return 0
    print(f"{info['store']}: schema {info['schema_version']}, {info['cases']} cases "
          f"({info['cases_since_last_learn']} not learned), {info['suggestions_shown']} suggestions shown, "
          f"{info['accepted']} accepted, {info['dismissed']} dismissed")
    if info["moved_to"] is not None:
        print(f"copied to {info['moved_to']}: it takes no more writes; every desk belongs on the new store")
    return 0


def _copy(args: argparse.Namespace, to: str, named: str) -> int:
    from bigramlm.support.store import STORE_ENV, CaseStore, store_path
    from bigramlm.support.store.transfer import copy_store

    # With BIGRAMLM_STORE already naming the team's store (the move in docs/deployment.md), the store to
    # copy is the run's own file, not the target itself.
    origin = args.store or (str(store_path(args.run_dir)) if os.environ.get(STORE_ENV) == to else None)
    with CaseStore.for_run(args.run_dir, origin, moved_ok=True) as source:
        try:  # the target named as the user gave it (--to, --to-env VAR), not as --store
            with CaseStore(to) as target:
                result = copy_store(source, target)
        except BigramLMError as exc:
            if not {"store", "target"} & set(exc.params):
                raise
            raise BigramLMError(exc.with_names({"store": named, "target": named})) from None
    if args.json:
        print_json(result.to_dict())
    else:
        for t in result.tables:
            mark = "same" if t.same else "DIFFERENT"
            print(f"{t.table:<14} {t.rows:>8} rows -> {t.target_rows:>8}  sha256 {t.sha256[:16]}  {mark}")
    if not result.same:
        raise BigramLMError(f"the copy in {result.target} differs from {result.source}; do not switch to it")
    if not args.json:
        print(f"copied {result.source} to {result.target}; the old store now refuses writes: restart every desk "
              f"(and point learn, agents, rules) with --store or BIGRAMLM_STORE naming {result.target}")
    return 0

"""How long ``store copy`` holds a busy desk's writes: a SQLite store of ``--rows`` cases and as
many suggestions shown, copied to a new SQLite file and (``--team``) to PostgreSQL.

The copy holds its source's write lock throughout (``support.store.transfer``): a desk's
write waits for it up to the store's busy timeout (``BUSY_TIMEOUT_MS``, 10 s), then answers
503 "try again", storing nothing. So the figure that matters is the copy's seconds against
that timeout, and the rows a copy moves within it. The reference of the ratios is the copy
to SQLite, measured in the same run.

    python benchmarks/store_copy.py --rows 20000 --team throwaway [--json]
"""

from __future__ import annotations

import contextlib
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

from _common import parser, report
from bench_server_load import team_store


def fill(path: str, rows: int) -> None:
    from bigramlm.data.cases import Case
    from bigramlm.support.store import CaseStore, StoredCase

    with CaseStore(path) as store:
        store.record_suggestions([(f"s{i}", f"Suggested reply number {i}, as a desk shows it. " * 2, -1.0)
                                  for i in range(rows)], "r")
        store.add_cases([StoredCase(Case(f"Where is my order {i}?", f"Order {i} ships today. " * 4, "track_order", "ORDER"),
                                    suggestion_id=f"s{i}") for i in range(rows)])


def copy_seconds(source: str, targets: Callable[[], str], repeats: int) -> float:
    """Median seconds of ``copy_store`` from ``source`` into a new target each time."""
    import statistics

    from sqlalchemy import text

    from bigramlm.support.store import CaseStore
    from bigramlm.support.store.database import MOVED_KEY
    from bigramlm.support.store.transfer import copy_store

    times = []
    for _ in range(repeats):
        with CaseStore(source, moved_ok=True) as src, CaseStore(targets()) as dst:
            start = time.perf_counter()
            assert copy_store(src, dst).same
            times.append(time.perf_counter() - start)
            with src.db.write(moved_ok=True) as conn:  # to be copied again, as if never moved
                conn.execute(text("DELETE FROM meta WHERE key = :key"), {"key": MOVED_KEY})
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    from bigramlm.support.store.database import BUSY_TIMEOUT_MS

    p = parser(__doc__.split("\n\n")[0])
    p.add_argument("--rows", type=int, default=20_000, help="cases, and suggestions shown (default 20000)")
    p.add_argument("--team", default=None, metavar="throwaway|URL", help="also to PostgreSQL")
    args = p.parse_args(argv)
    timeout = BUSY_TIMEOUT_MS / 1000
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp, \
            (team_store(args.team) if args.team else contextlib.nullcontext(None)) as new_database:
        source = str(Path(tmp) / "source.sqlite")
        fill(source, args.rows)
        files = iter(range(1_000_000))
        kinds = [("sqlite", lambda: str(Path(tmp) / f"target-{next(files)}.sqlite"))]
        if new_database is not None:
            kinds.append(("postgresql", new_database))
        for kind, targets in kinds:
            seconds = copy_seconds(source, targets, args.repeats)
            results.append({"target": kind, "seconds": round(seconds, 3),
                            "rows_within_busy_timeout": int(2 * args.rows * timeout / seconds)})
    for r in results:
        r["vs_sqlite"] = round(r["seconds"] / results[0]["seconds"], 2)
        r["vs_busy_timeout"] = round(r["seconds"] / timeout, 3)
    lines = [f"{args.rows} cases + {args.rows} suggestions -> {r['target']:<10} {r['seconds']:>7.2f} s "
             f"({r['vs_sqlite']:.2f}x sqlite, {r['vs_busy_timeout']:.2f}x the {timeout:g} s busy timeout: "
             f"~{r['rows_within_busy_timeout']} rows fit in it)" for r in results]
    report("store_copy", {"rows": args.rows, "busy_timeout_s": timeout, "results": results}, args.json, lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())

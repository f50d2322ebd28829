"""One similar-case search in the store at a year's size, against the query before (issue 30).

Fills a throwaway PostgreSQL database (or a SQLite file) with ``--cases`` synthetic cases
(``store_scale.fill``: the run's train rows, each with a reference number appended) and times
``CaseStore.similar`` for the benchmark's messages and five everyday ones, with each message's
trigrams as the desk picks them (``CaseSearch.grams``). The reference, on the same store in
the same run: PostgreSQL's query before its row window, which ranked the newest ``WINDOW``
matches and so walked the primary key backwards until that many matched. Prints each
one's median and slowest search and the ratio of the medians, and on PostgreSQL the same
with other windows (``--windows``).

    python benchmarks/store_search.py --run RUN --cases 1000000 --json
"""

from __future__ import annotations

import contextlib
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

from _common import parser, report
from bench_server_load import MESSAGES, team_store
from store_scale import fill

EVERYDAY = ["I was charged twice for my order 1234", "my package says delivered but it's not here",
            "cancel my subscription now", "how do I change the email on my account",
            "You guys are the worst, nothing ever arrives on time"]


def before(conn: Any, grams: list[tuple[str, float]], limit: int) -> list[Any]:
    """PostgreSQL's search before the row window: the newest ``WINDOW`` matches, ranked."""
    from sqlalchemy import text

    from bigramlm.support.store.search import WINDOW

    args: dict[str, Any] = {"n": limit, "window": WINDOW}
    for i, (g, w) in enumerate(grams):
        args[f"g{i}"], args[f"w{i}"] = f"%{g}%", float(w)
    matches = " OR ".join(f"c.message ILIKE :g{i}" for i in range(len(grams)))
    weight = " + ".join(f"CASE WHEN c.message ILIKE :g{i} THEN :w{i} ELSE 0 END" for i in range(len(grams)))
    newest = f"SELECT c.id FROM cases c WHERE ({matches}) ORDER BY c.id DESC LIMIT :window"
    sql = f"SELECT c.id FROM cases c WHERE c.id IN ({newest}) ORDER BY {weight} DESC, c.id LIMIT :n"
    return list(conn.execute(text(sql), args).fetchall())


def timed(search: Callable[[list[tuple[str, float]]], Any], grams: dict[str, list[tuple[str, float]]],
          repeats: int) -> dict[str, float]:
    """Median and slowest over the messages of each message's median of ``repeats`` searches."""
    per_message = []
    for message_grams in grams.values():
        search(message_grams)  # warm the cache
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            search(message_grams)
            times.append(time.perf_counter() - start)
        per_message.append(statistics.median(times) * 1000)
    return {"median_ms": round(statistics.median(per_message), 1), "max_ms": round(max(per_message), 1)}


def windowed(store: Any, window: int, grams: dict[str, list[tuple[str, float]]], args: Any) -> dict[str, float]:
    """``timed`` with another ``POSTGRESQL_WINDOW``: what a larger or smaller window costs."""
    from bigramlm.support.store import search

    kept = search.POSTGRESQL_WINDOW
    search.POSTGRESQL_WINDOW = window
    try:
        return timed(lambda g: store.similar(g, args.limit), grams, args.repeats)
    finally:
        search.POSTGRESQL_WINDOW = kept


def main() -> int:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--run", required=True, help="support run directory (its train rows fill the store; not written)")
    p.add_argument("--cases", type=int, default=1_000_000, help="synthetic cases in the store (default 1000000)")
    p.add_argument("--backend", choices=("sqlite", "postgresql"), default="postgresql",
                   help="a throwaway PostgreSQL server (default), or a SQLite file (no reference)")
    p.add_argument("--windows", type=lambda v: [int(w) for w in v.split(",")], default=[5000, 20000],
                   help="other PostgreSQL windows to time, comma-separated (default 5000,20000)")
    p.add_argument("--limit", type=int, default=50, help="candidates a search asks for (the desk's default 50)")
    args = p.parse_args()
    from sqlalchemy import text

    from bigramlm.support.assistant import Assistant
    from bigramlm.support.store import CaseStore

    searcher = Assistant.load(args.run, use_store=False).index
    grams = {m: searcher.grams(m) for m in MESSAGES + EVERYDAY}
    with tempfile.TemporaryDirectory(prefix="store-search-") as tmp, \
            (team_store("throwaway") if args.backend == "postgresql" else contextlib.nullcontext(None)) as new_database:
        target = new_database() if new_database else str(Path(tmp) / "cases.sqlite")
        fill_s = fill(args.run, target, args.cases)
        with CaseStore(target) as store:
            if args.backend == "postgresql":  # the statistics autovacuum gathers after a bulk insert, now
                with store.db.write() as conn:
                    conn.execute(text("ANALYZE cases"))
            result: dict[str, Any] = {"backend": args.backend, "cases": args.cases, "messages": len(grams),
                                      "fill_s": round(fill_s, 1),
                                      "new": timed(lambda g: store.similar(g, args.limit), grams, args.repeats)}
            if args.backend == "postgresql":
                result["windows"] = {w: windowed(store, w, grams, args) for w in args.windows}

                def old(g: list[tuple[str, float]]) -> Any:
                    with store.db.read() as conn:
                        return before(conn, g, args.limit)
                result["before"] = timed(old, grams, args.repeats)
                result["median_ratio"] = round(result["before"]["median_ms"] / result["new"]["median_ms"], 1)
    lines = [f"{args.backend}, {args.cases} cases, {len(grams)} messages: a search {result['new']['median_ms']} ms median, "
             f"{result['new']['max_ms']} ms at most"]
    for w, t in result.get("windows", {}).items():
        lines.append(f"with a window of {w} cases: {t['median_ms']} ms median, {t['max_ms']} ms at most")
    if "before" in result:
        lines.append(f"before (the newest matches): {result['before']['median_ms']} ms median, "
                     f"{result['before']['max_ms']} ms at most; {result['median_ratio']}x at the median")
    report("store_search", result, args.json, lines)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

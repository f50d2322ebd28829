"""The store's share of a desk request: its reads and writes, per request, on each back-end.

One desk request asks the store who the agent is, for the cases after its high-water mark,
the latest dismissals and the rule switches, and records the suggestions it showed; a third
of them accept one (a case), a sixth dismiss one, and every tenth reads the figures. This
replays that mix ``--requests`` times in its own process for each store:

- this checkout on SQLite (the run's file, the default), and on PostgreSQL (``--team``:
  a throwaway server from the installed binaries, or an empty database's URL);
- with ``--before-src``, an older checkout's SQLite store (e.g. a ``git worktree`` of the
  commit before the SQLAlchemy store), the reference of the ratios.

    git worktree add ../before 2bd94aa
    python benchmarks/store_ops.py --before-src ../before/src --team throwaway [--json]

The figures are milliseconds of store work per desk request (median of ``--repeats``
rounds); a suggestion itself takes hundreds (``benchmarks/desk_latency.py``).
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from _common import parser, report
from bench_server_load import team_store


def worker(target: str, requests: int, repeats: int) -> dict[str, Any]:
    from bigramlm.data.cases import Case
    from bigramlm.support.store import CaseStore, StoredCase

    store = CaseStore(target)
    token = store.add_agent(f"bench-{uuid.uuid4().hex[:8]}").encode()
    seen, rounds = 0, []
    for _ in range(repeats):
        start = time.perf_counter()
        for n in range(requests):
            _, agent = store.identify(token)
            new = store.list_cases(after_id=seen, limit=1 << 30)
            seen = max([seen] + [int(c.id or 0) for c in new])
            store.dismissed_texts(200)
            store.rule_settings()
            ids = [uuid.uuid4().hex for _ in range(3)]
            store.record_suggestions([(i, f"Suggestion {i}", -1.0) for i in ids], agent=agent)
            if n % 3 == 0:
                store.accept([StoredCase(Case(f"message {n}", f"reply {n}"), suggestion_id=ids[0], agent=agent)])
            elif n % 6 == 1:
                store.dismiss_suggestion(ids[1], agent=agent)
            if n % 10 == 0:
                store.desk_stats(agent)
        rounds.append((time.perf_counter() - start) * 1000 / requests)
    store.close()
    rounds.sort()
    return {"ms_per_request": round(rounds[len(rounds) // 2], 3), "rounds_ms": [round(r, 3) for r in rounds]}


def measure(label: str, target: str, src: str | None, requests: int, repeats: int) -> dict[str, Any]:
    """``worker`` in a fresh process of the tree at ``src`` (this checkout when None)."""
    env = dict(os.environ)
    if src is not None:
        env["PYTHONPATH"] = str(Path(src).resolve()) + os.pathsep + env.get("PYTHONPATH", "")
    code = (f"import json, store_ops; print(json.dumps(store_ops.worker({target!r}, {requests}, {repeats})))")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         cwd=Path(__file__).parent, timeout=1800)
    if out.returncode != 0:
        raise SystemExit(f"{label} failed: {out.stderr.strip().splitlines()[-1] if out.stderr.strip() else out.returncode}")
    return {"store": label, **json.loads(out.stdout.strip().splitlines()[-1])}


def main(argv: list[str] | None = None) -> int:
    p = parser(__doc__.split("\n\n")[0])
    p.add_argument("--requests", type=int, default=300, help="desk requests per round (default 300)")
    p.add_argument("--before-src", default=None, help="the src/ folder of an older checkout, the reference")
    p.add_argument("--team", default=None, metavar="throwaway|URL", help="also on PostgreSQL")
    args = p.parse_args(argv)
    results = []
    with tempfile.TemporaryDirectory() as tmp, \
            (team_store(args.team) if args.team else contextlib.nullcontext(None)) as new_database:
        if args.before_src:
            results.append(measure("before: sqlite3", str(Path(tmp) / "before.sqlite"), args.before_src,
                                   args.requests, args.repeats))
        results.append(measure("sqlite (SQLAlchemy)", str(Path(tmp) / "now.sqlite"), None, args.requests, args.repeats))
        if new_database is not None:
            results.append(measure("postgresql (SQLAlchemy, psycopg)", new_database(), None, args.requests, args.repeats))
    reference = results[0]["ms_per_request"]
    for r in results:
        r["vs_first"] = round(r["ms_per_request"] / reference, 2)
    lines = [f"{r['store']:<34} {r['ms_per_request']:>7.3f} ms of store work per desk request  "
             f"({r['vs_first']:.2f}x the first)" for r in results]
    report("store_ops", {"requests": args.requests, "repeats": args.repeats, "results": results}, args.json, lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())

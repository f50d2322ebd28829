"""The similar cases shown, on the whole test split, with the store's search against the code before (issue 30).

Both trees get a copy of the run with a store of ``--cases`` synthetic cases (the train rows
with a reference number appended, ``store_scale.fill``, written by each tree's own code) and
ask, for every test message, the ``--similar`` similar cases the desk shows
(``understand_many``): this checkout searches the store's own engine (FTS5 / pg_trgm) and
re-scores the candidates; the code before (``--before-src``) holds every case in one
in-memory TF-IDF matrix. It prints for each:

- ``hit_rate``: the share of messages whose first similar case has the message's intent;
- ``any_hit_rate``: ... whose similar cases include one of its intent;
- ``reply_chrf``: the first similar case's reply against the reference reply (chrF);

and ``same_as_before``: the share of this checkout's similar cases (as message and reply)
that the code before shows too. The shown chrF of both is ``bigramlm eval RUN --task support``.

``--backend postgresql`` puts this checkout's store on a throwaway PostgreSQL server (the
code before always reads its run's SQLite file).

    python benchmarks/case_search_quality.py --run RUN --before-src ../before/src --cases 100000 --json
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from _common import parser, report
from bench_server_load import team_store


def worker(run: str, k: int, store: str | None) -> list[dict[str, Any]]:
    from bigramlm.data.instructions import read_split_rows
    from bigramlm.support.assistant import Assistant

    assistant = Assistant.load(run, store=store)
    rows = read_split_rows(assistant.spec, assistant.data, "test", None)
    found = assistant.understand_many([r.message for r in rows], k_similar=k)
    return [{"intent": r.intent, "reference": r.reply,
             "similar": [[s.case.message, s.case.reply, s.case.intent] for s in u.similar_cases]} for r, u in zip(rows, found)]


def shown(src: str | None, run_dir: str, work: Path, name: str, cases: int, k: int,
          store: str | None = None) -> list[dict[str, Any]]:
    """The similar cases shown for every test message by the code at ``src`` (None: this
    checkout), with a store of ``cases`` synthetic cases at ``store`` (None: the run's file)."""
    from store_scale import fill_in

    run = shutil.copytree(run_dir, work / name, ignore=shutil.ignore_patterns("cases.sqlite*"))
    fill_in(src, str(run), store or str(Path(run) / "cases.sqlite"), cases)
    env = {**os.environ, **({"PYTHONPATH": src} if src else {})}
    out = subprocess.run([sys.executable, __file__, "--worker", str(run), str(k), *([store] if store else [])], env=env,
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def figures(rows: list[dict[str, Any]]) -> dict[str, float]:
    from bigramlm.support.metrics import reply_metrics

    first = [r["similar"][0] if r["similar"] else ["", "", None] for r in rows]
    chrf = reply_metrics([f[1] for f in first], [r["reference"] for r in rows])["chrf"]
    return {"hit_rate": round(sum(f[2] == r["intent"] for f, r in zip(first, rows)) / len(rows), 4),
            "any_hit_rate": round(sum(any(s[2] == r["intent"] for s in r["similar"]) for r in rows) / len(rows), 4),
            "reply_chrf": round(chrf, 2)}


def main() -> int:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--run", required=True, help="support run directory (copied)")
    p.add_argument("--before-src", required=True, help="the src/ of the code before issue 30")
    p.add_argument("--cases", type=int, default=100_000, help="synthetic cases in each store (default 100000)")
    p.add_argument("--similar", type=int, default=3, help="similar cases shown per message (default 3)")
    p.add_argument("--backend", choices=("sqlite", "postgresql"), default="sqlite",
                   help="this checkout's store: the run's SQLite file, or a throwaway PostgreSQL server (default sqlite)")
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="case-search-") as tmp, \
            (team_store("throwaway") if args.backend == "postgresql" else contextlib.nullcontext(None)) as new_database:
        store = new_database() if new_database else None
        new = shown(None, args.run, Path(tmp), "new", args.cases, args.similar, store)
        before = shown(args.before_src, args.run, Path(tmp), "before", args.cases, args.similar)
    pairs = [(tuple(s[:2]) in {tuple(b[:2]) for b in rb["similar"]}) for rn, rb in zip(new, before) for s in rn["similar"]]
    result = {"backend": args.backend, "messages": len(new), "cases": args.cases, "similar": args.similar, "new": figures(new),
              "before": figures(before), "same_as_before": round(sum(pairs) / max(len(pairs), 1), 4)}
    result["ratio"] = {k: round(v / result["before"][k], 4) if result["before"][k] else None for k, v in result["new"].items()}
    report("case_search_quality", result, args.json, [
        f"{len(new)} test messages, {args.cases} store cases, {args.similar} similar cases each",
        f"store search (new, {args.backend}): {result['new']}", f"in-memory (before): {result['before']}",
        f"new / before: {result['ratio']}; new's similar cases also shown before: {result['same_as_before']}"])
    return 0


if __name__ == "__main__":
    if len(sys.argv) in (4, 5) and sys.argv[1] == "--worker":
        print(json.dumps(worker(sys.argv[2], int(sys.argv[3]), sys.argv[4] if len(sys.argv) == 5 else None)))
        raise SystemExit(0)
    raise SystemExit(main())

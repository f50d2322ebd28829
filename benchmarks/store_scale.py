"""A year of a team's cases: what a desk costs as the store grows (issue 30).

For each store size N (``--sizes``, by default 0, 100k, 300k and 1M) and each back-end
(``--backends``: the run's SQLite file, a throwaway PostgreSQL server from
``tests/pg_cluster.py``), it fills a fresh store with N synthetic resolved cases (the run's
train rows, each with a reference number appended, as a year of accepts repeats the
same intents), then starts a real ``bigramlm serve`` on it and measures:

- ``fill_s``: writing the N cases (one transaction per 10,000; the store's search index
  is kept by the database as it goes);
- ``ready_s``: from the process's start to ``/healthz`` answering 200 (the desk listens
  only once it has read what it needs of the store);
- ``first_suggest_s``: the first ``POST /api/suggest`` after that;
- ``rss_mib``: the desk's resident memory after the warm requests (``VmRSS``);
- warm ``p50``/``p95`` of ``/api/suggest`` (n = 3), one agent;
- ``propagation``: from a case acknowledged by one desk to its being among another desk's
  similar cases (a second desk on the same store; ``visibility_lags``).

The reference, measured in the same run: the same figures of today's way, every store case
held in memory by each desk in one TF-IDF matrix (``--reference-code``: a checkout of the
code before issue 30, run on a copy of the same SQLite store; its desk reads every case
into memory on the first request). The ratios new/reference are printed per size.

Then ``--clients`` agents on one desk (closed loop, ``--duration`` s) on the largest SQLite
store: p50, p95, errors.

    python benchmarks/store_scale.py --run RUN --sizes 0,100000 --backends sqlite,postgresql --json
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterator

import httpx

from _common import parser, report
from bench_server_load import MESSAGES, drive, percentile, serving, team_store, visibility_lags

FILL_BATCH = 10_000


def synthetic_rows(run_dir: str, n: int) -> Iterator[dict[str, Any]]:
    """N store rows: the run's train rows in turn, each message with a reference number appended."""
    from bigramlm.data.cases import DESK, Case
    from bigramlm.data.run_files import InstructionRunFiles
    from bigramlm.support.store import StoredCase
    from bigramlm.support.store.cases import row_values

    files = InstructionRunFiles.load(run_dir)
    if files is None or not files.train_rows:
        raise SystemExit(f"{run_dir} has no saved train rows (train it with --recipe support)")
    rows, now = files.train_rows, time.time()
    for i in range(n):
        row = rows[i % len(rows)]
        case = Case(f"{row.message} (ref {100000 + i})", row.reply, row.intent, row.category, DESK)
        yield row_values(StoredCase(case), now)


def fill(run_dir: str, target: str, n: int) -> float:
    """Write ``n`` synthetic cases to the store at ``target``; seconds it took."""
    from sqlalchemy import text

    from bigramlm.support.store import CaseStore
    from bigramlm.support.store.cases import _INSERT

    start = time.perf_counter()
    with CaseStore(target) as store:
        batch: list[dict[str, Any]] = []
        for values in synthetic_rows(run_dir, n):
            batch.append(values)
            if len(batch) == FILL_BATCH:
                with store.db.write() as conn:
                    conn.execute(text(_INSERT), batch)
                batch = []
        if batch:
            with store.db.write() as conn:
                conn.execute(text(_INSERT), batch)
    return time.perf_counter() - start

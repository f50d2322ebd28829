"""The resolved-case store: one SQLite database in WAL mode inside the run directory.

Both the agent desk (``serve``) and ``learn`` go through this module, so there is one
schema and one notion of "cases since the last learn".

Durability: every write is its own transaction with ``synchronous=FULL``, and the
methods return only after ``COMMIT``. A caller that got an id back can rely on the row
surviving a crash of the process (and, with FULL, of the machine).

Thread safety: each thread gets its own connection (SQLite connections must not be
shared across threads without care); WAL lets readers run beside the one writer, and
``busy_timeout`` makes a second writer (``learn`` in another process) wait instead of
failing.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import numpy as np

from bigramlm.errors import BigramLMError

STORE_FILE = "cases.sqlite"
SCHEMA_VERSION = 1
BUSY_TIMEOUT_MS = 10_000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS cases (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at    REAL    NOT NULL,
    message       TEXT    NOT NULL,
    reply         TEXT    NOT NULL,
    intent        TEXT,
    category      TEXT,
    suggestion_id TEXT,
    edited        INTEGER NOT NULL DEFAULT 0,
    edit_distance REAL,
    source        TEXT    NOT NULL DEFAULT 'desk'
);
-- One row per suggestion shown to an agent, so that acceptance can be measured
-- against what was offered, and edit distance computed against the real original.
CREATE TABLE IF NOT EXISTS suggestions (
    id         TEXT PRIMARY KEY,
    request_id TEXT NOT NULL,
    created_at REAL NOT NULL,
    text       TEXT NOT NULL,
    score      REAL
);
CREATE INDEX IF NOT EXISTS suggestions_request ON suggestions(request_id);
"""

_CASE_COLUMNS = "id, created_at, message, reply, intent, category, suggestion_id, edited, edit_distance, source"


def store_path(run_dir: str | os.PathLike[str]) -> Path:
    """Where a run keeps its resolved cases."""
    return Path(run_dir) / STORE_FILE


def normalized_edit_distance(a: str, b: str) -> float:
    """Levenshtein distance divided by the longer length: 0 for equal, 1 for nothing shared.

    One numpy pass per character of ``a``. The insertion term of the recurrence,
    ``row[j] = min(row[j], row[j-1] + 1)``, is a running minimum of ``row[j] - j``,
    which ``np.minimum.accumulate`` computes without a Python loop over ``b``.
    """
    if a == b:
        return 0.0
    if not a or not b:
        return 1.0
    aa = np.frombuffer(a.encode("utf-32-le"), dtype=np.uint32)
    bb = np.frombuffer(b.encode("utf-32-le"), dtype=np.uint32)
    offsets = np.arange(len(b) + 1, dtype=np.int64)
    prev = offsets.copy()
    for i, code in enumerate(aa, start=1):
        cur = np.empty_like(prev)
        cur[0] = i
        # substitution (or match) from the diagonal, deletion from above
        cur[1:] = np.minimum(prev[:-1] + (bb != code), prev[1:] + 1)
        cur = np.minimum.accumulate(cur - offsets) + offsets
        prev = cur
    return float(prev[-1]) / max(len(a), len(b))


class CaseStore:
    """Resolved cases and desk feedback in ``path`` (created on first use)."""

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)
        if self.path.exists() and self.path.is_dir():
            raise BigramLMError(f"case store {self.path} is a directory, not a database file")
        if not self.path.parent.is_dir():
            raise BigramLMError(f"cannot create case store {self.path}: no directory {self.path.parent}")
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._all_lock = threading.Lock()
        conn = self._conn()
        try:
            conn.executescript(_SCHEMA)
            with self._write() as tx:
                tx.execute("INSERT OR IGNORE INTO meta(key, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
                tx.execute("INSERT OR IGNORE INTO meta(key, value) VALUES ('last_learned_id', '0')")
        except sqlite3.DatabaseError as exc:
            raise BigramLMError(f"case store {self.path} is not a usable SQLite database: {exc}") from None

    @classmethod
    def for_run(cls, run_dir: str | os.PathLike[str]) -> "CaseStore":
        return cls(store_path(run_dir))

    # --- connections ------------------------------------------------------------

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            try:
                # isolation_level=None: we issue BEGIN/COMMIT ourselves through `with`.
                conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False)
                conn.row_factory = sqlite3.Row
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=FULL")
                conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            except sqlite3.DatabaseError as exc:
                raise BigramLMError(f"cannot open case store {self.path}: {exc}") from None
            self._local.conn = conn
            with self._all_lock:
                self._all.append(conn)
        return conn

    def _write(self):
        """A transaction that takes the write lock at once (no upgrade deadlocks)."""
        return _Transaction(self._conn())

    def close(self) -> None:
        with self._all_lock:
            for conn in self._all:
                try:
                    conn.close()
                except sqlite3.ProgrammingError:
                    pass  # closed from its own thread already
            self._all.clear()
        self._local = threading.local()

    def __enter__(self) -> "CaseStore":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # --- cases --------------------------------------------------------------------

    def add_case(
        self,
        message: str,
        reply: str,
        intent: str | None = None,
        category: str | None = None,
        suggestion_id: str | None = None,
        edited: bool = False,
        edit_distance: float | None = None,
        source: str = "desk",
    ) -> int:
        """Store one resolved case; returns its id after the transaction has committed."""
        return self.add_cases([dict(message=message, reply=reply, intent=intent, category=category,
                                    suggestion_id=suggestion_id, edited=edited, edit_distance=edit_distance,
                                    source=source)])[0]

    def add_cases(self, cases: Iterable[dict[str, Any]]) -> list[int]:
        """Store many cases in one transaction (``learn --cases FILE``); all or none."""
        now = time.time()
        rows = []
        for case in cases:
            message, reply = case.get("message"), case.get("reply")
            if not isinstance(message, str) or not isinstance(reply, str):
                raise BigramLMError("a case needs a message and a reply, both text")
            suggestion_id = case.get("suggestion_id")
            rows.append((
                now, message, reply, case.get("intent"), case.get("category"),
                None if suggestion_id is None else str(suggestion_id),
                1 if case.get("edited") else 0, case.get("edit_distance"), case.get("source") or "desk",
            ))
        ids: list[int] = []
        with self._write() as conn:
            for row in rows:
                cur = conn.execute(
                    "INSERT INTO cases(created_at, message, reply, intent, category, suggestion_id, edited, edit_distance, source)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    row,
                )
                ids.append(int(cur.lastrowid))
        return ids

    def get_case(self, case_id: int) -> dict[str, Any] | None:
        row = self._conn().execute(f"SELECT {_CASE_COLUMNS} FROM cases WHERE id = ?", (case_id,)).fetchone()
        return self._case(row) if row else None

    def list_cases(self, offset: int = 0, limit: int = 50) -> list[dict[str, Any]]:
        """Cases oldest first, ``limit`` of them after skipping ``offset``."""
        if offset < 0 or limit < 0:
            raise BigramLMError("offset and limit must not be negative")
        rows = self._conn().execute(
            f"SELECT {_CASE_COLUMNS} FROM cases ORDER BY id LIMIT ? OFFSET ?", (limit, offset)
        ).fetchall()
        return [self._case(r) for r in rows]

    def iter_cases(self, batch: int = 1000) -> Iterator[dict[str, Any]]:
        """Every case, oldest first (for building a retrieval index)."""
        last = 0
        while True:
            rows = self._conn().execute(
                f"SELECT {_CASE_COLUMNS} FROM cases WHERE id > ? ORDER BY id LIMIT ?", (last, batch)
            ).fetchall()
            if not rows:
                return
            for r in rows:
                yield self._case(r)
            last = rows[-1]["id"]

    def count(self) -> int:
        return int(self._conn().execute("SELECT COUNT(*) FROM cases").fetchone()[0])

    def last_learned_id(self) -> int:
        row = self._conn().execute("SELECT value FROM meta WHERE key = 'last_learned_id'").fetchone()
        return int(row[0]) if row else 0

    def cases_since_last_learn(self) -> list[dict[str, Any]]:
        """The cases added after the last ``mark_learned``, oldest first."""
        rows = self._conn().execute(
            f"SELECT {_CASE_COLUMNS} FROM cases WHERE id > ? ORDER BY id", (self.last_learned_id(),)
        ).fetchall()
        return [self._case(r) for r in rows]

    def mark_learned(self, up_to_id: int) -> None:
        """Record that ``learn`` has used every case with id <= ``up_to_id``.

        The mark never moves backwards, so a slow ``learn`` that finishes after a newer
        one cannot make already-learned cases look new again.
        """
        with self._write() as conn:
            conn.execute(
                "UPDATE meta SET value = CAST(MAX(CAST(value AS INTEGER), ?) AS TEXT) WHERE key = 'last_learned_id'",
                (int(up_to_id),),
            )

    # --- feedback -------------------------------------------------------------------

    def record_suggestions(self, suggestions: Sequence[tuple[str, str, float | None]], request_id: str | None = None) -> str:
        """Remember the suggestions (id, text, score) shown for one request; returns the request id."""
        request_id = request_id or uuid.uuid4().hex
        now = time.time()
        with self._write() as conn:
            conn.executemany(
                "INSERT OR REPLACE INTO suggestions(id, request_id, created_at, text, score) VALUES (?, ?, ?, ?, ?)",
                [(str(sid), request_id, now, text, score) for sid, text, score in suggestions],
            )
        return request_id

    def get_suggestion(self, suggestion_id: str) -> dict[str, Any] | None:
        row = self._conn().execute(
            "SELECT id, request_id, created_at, text, score FROM suggestions WHERE id = ?", (str(suggestion_id),)
        ).fetchone()
        return dict(row) if row else None

    def stats(self) -> dict[str, Any]:
        """Desk figures: how often a shown set of suggestions led to an accepted reply, and how much agents edit.

        - ``acceptance_rate``: requests whose suggestions were shown and of which one
          was accepted (a case stored with its ``suggestion_id``), over requests shown;
        - ``unedited_rate``: accepted suggestions sent as they were, over accepted ones;
        - ``mean_edit_distance``: mean normalised edit distance of the accepted ones.
        """
        conn = self._conn()
        total = self.count()
        shown = int(conn.execute("SELECT COUNT(DISTINCT request_id) FROM suggestions").fetchone()[0])
        accepted_requests = int(conn.execute(
            "SELECT COUNT(DISTINCT s.request_id) FROM cases c JOIN suggestions s ON s.id = c.suggestion_id"
        ).fetchone()[0])
        accepted, edited, mean_distance = conn.execute(
            "SELECT COUNT(*), COALESCE(SUM(edited), 0), AVG(edit_distance) FROM cases WHERE suggestion_id IS NOT NULL"
        ).fetchone()
        last = self.last_learned_id()
        since = int(conn.execute("SELECT COUNT(*) FROM cases WHERE id > ?", (last,)).fetchone()[0])
        return {
            "cases": total,
            "cases_since_last_learn": since,
            "last_learned_id": last,
            "suggestion_requests": shown,
            "accepted": int(accepted),
            "accepted_edited": int(edited),
            "acceptance_rate": accepted_requests / shown if shown else None,
            "unedited_rate": (accepted - edited) / accepted if accepted else None,
            "mean_edit_distance": float(mean_distance) if mean_distance is not None else None,
        }

    def integrity_check(self) -> str:
        return str(self._conn().execute("PRAGMA integrity_check").fetchone()[0])

    @staticmethod
    def _case(row: sqlite3.Row) -> dict[str, Any]:
        case = dict(row)
        case["edited"] = bool(case["edited"])
        return case


class _Transaction:
    """``BEGIN IMMEDIATE`` ... ``COMMIT`` (or ``ROLLBACK`` on error) on one connection."""

    def __init__(self, conn: sqlite3.Connection):
        self.conn = conn

    def __enter__(self) -> sqlite3.Connection:
        self.conn.execute("BEGIN IMMEDIATE")
        return self.conn

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.conn.execute("COMMIT")
        else:
            self.conn.execute("ROLLBACK")

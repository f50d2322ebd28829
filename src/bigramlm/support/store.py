"""The resolved-case store: one SQLite database in WAL mode inside the run directory.

Both the agent desk (``serve``) and ``learn`` go through this module, so there is one
schema and one notion of "cases since the last learn".

Durability: every write is its own transaction with ``synchronous=FULL``, and the
methods return only after ``COMMIT``. A caller that got an id back can rely on the row
surviving a crash of the process (and, with FULL, of the machine).

Learning: each case records the ``learn`` that trained on it (``learn_id``; NULL: not
learned yet), and ``learns`` keeps one row per learn with the sha256 of the weights
before and after, so ``undo_learn`` can restore the weights and the marks together.
``learn --cases FILE`` adds its cases only after the new weights are written, in the
same transaction that marks them learned, and a file's case is stored once however
often it is learned (a unique index on its content's sha256).

Schema versions (``store_schema``): 1 had one ``last_learned_id`` mark; 2 adds
``cases.learn_id``, ``cases.content_sha256`` and ``learns``; 3 adds ``feedback``
(dismissed suggestions). Opening a store of an earlier version migrates it in place
(version 1: cases up to the old mark count as learned by learn 0, "before version 2");
``last_learned_id`` is still kept, as the newest learned case.

Feedback (``store_feedback``): a suggestion shown on the desk is accepted (a case naming
it), dismissed (negative feedback), or neither; never both, so a dismissed suggestion's
text never becomes a case, and ``learn``, which reads cases only, never trains on it.

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
from bigramlm.support.store_feedback import (  # noqa: F401 (SuggestionConflict: re-exported)
    Dismissal,
    StoreStats,
    SuggestionConflict,
    insert_dismissal,
    read_stats,
    recent_dismissed_texts,
    refuse_dismissed,
)
from bigramlm.support.store_schema import (  # noqa: F401 (SCHEMA_VERSION, case_digest: re-exported)
    CASE_COLUMNS,
    INSERT_COLUMNS,
    INSERT_MARKS,
    SCHEMA,
    SCHEMA_VERSION,
    SUGGESTION_AT,
    case_digest,
    case_row,
    insert_learn,
    migrate,
    refresh_last_learned,
)

STORE_FILE = "cases.sqlite"
BUSY_TIMEOUT_MS = 10_000


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
            conn.executescript(SCHEMA)
            with self._write() as tx:
                tx.execute("INSERT OR IGNORE INTO meta(key, value) VALUES ('last_learned_id', '0')")
                migrate(tx)
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

    def _write(self) -> "_Transaction":
        """A transaction that takes the write lock at once (no upgrade deadlocks)."""
        return _Transaction(self._conn())

    def _read(self) -> "_Transaction":
        """A read transaction: its statements see one snapshot of the database."""
        return _Transaction(self._conn(), "BEGIN DEFERRED")

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
        """Store many cases in one transaction; all or none."""
        now = time.time()
        rows = [case_row(case, now) for case in cases]
        ids: list[int] = []
        with self._write() as conn:
            refuse_dismissed(conn, [row[SUGGESTION_AT] for row in rows if row[SUGGESTION_AT] is not None])
            for row in rows:
                ids.append(int(conn.execute(f"INSERT INTO cases({INSERT_COLUMNS}) VALUES ({INSERT_MARKS})", row).lastrowid))
        return ids

    def get_case(self, case_id: int) -> dict[str, Any] | None:
        row = self._conn().execute(f"SELECT {CASE_COLUMNS} FROM cases WHERE id = ?", (case_id,)).fetchone()
        return self._case(row) if row else None

    def list_cases(self, offset: int = 0, limit: int = 50) -> list[dict[str, Any]]:
        """Cases oldest first, ``limit`` of them after skipping ``offset``."""
        if offset < 0 or limit < 0:
            raise BigramLMError("offset and limit must not be negative")
        rows = self._conn().execute(
            f"SELECT {CASE_COLUMNS} FROM cases ORDER BY id LIMIT ? OFFSET ?", (limit, offset)
        ).fetchall()
        return [self._case(r) for r in rows]

    def iter_cases(self, batch: int = 1000) -> Iterator[dict[str, Any]]:
        """Every case, oldest first (for building a retrieval index)."""
        last = 0
        while True:
            rows = self._conn().execute(
                f"SELECT {CASE_COLUMNS} FROM cases WHERE id > ? ORDER BY id LIMIT ?", (last, batch)
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
        """The cases no ``learn`` has trained on yet, oldest first."""
        rows = self._conn().execute(f"SELECT {CASE_COLUMNS} FROM cases WHERE learn_id IS NULL ORDER BY id").fetchall()
        return [self._case(r) for r in rows]

    def mark_learned(self, up_to_id: int) -> None:
        """Record that a ``learn`` (without weights to undo) used every case with id <= ``up_to_id``.

        Cases already learned keep their learn, so the mark never moves backwards.
        """
        with self._write() as conn:
            learn_id = insert_learn(conn, 0, None, None)
            cur = conn.execute("UPDATE cases SET learn_id = ? WHERE learn_id IS NULL AND id <= ?", (learn_id, int(up_to_id)))
            conn.execute("UPDATE learns SET cases = ? WHERE id = ?", (cur.rowcount, learn_id))
            refresh_last_learned(conn)

    def record_learn(self, new_cases: Sequence[dict[str, Any]], learned_ids: Iterable[int],
                     weights_before: str | None, weights_after: str | None) -> tuple[list[int], int]:
        """After a ``learn`` wrote its weights: store its file's cases and mark every case it
        trained on, in one transaction. Returns the ids of ``new_cases`` and how many of
        them were new to the store.

        A file case already stored (same message, reply and labels) is not stored again;
        a case an earlier learn trained on keeps that learn (its weights include it).
        """
        rows = [case_row(dict(case, source="learn"), time.time()) for case in new_cases]
        stored = 0
        with self._write() as conn:
            ids = []
            for row in rows:
                stored += conn.execute(f"INSERT OR IGNORE INTO cases({INSERT_COLUMNS}) VALUES ({INSERT_MARKS})", row).rowcount
                ids.append(int(conn.execute("SELECT id FROM cases WHERE source = 'learn' AND content_sha256 = ?",
                                            (row[-1],)).fetchone()[0]))
            trained = sorted(set(ids) | {int(i) for i in learned_ids})
            learn_id = insert_learn(conn, len(trained), weights_before, weights_after)
            conn.executemany("UPDATE cases SET learn_id = ? WHERE id = ? AND learn_id IS NULL", [(learn_id, i) for i in trained])
            refresh_last_learned(conn)
        return ids, stored

    def last_weights_learn(self) -> dict[str, Any] | None:
        """The latest learn that changed the weights and was not undone, or None."""
        row = self._conn().execute(
            "SELECT id, created_at, cases, weights_before, weights_after FROM learns"
            " WHERE undone_at IS NULL AND weights_after IS NOT NULL ORDER BY id DESC LIMIT 1"
        ).fetchone()
        return dict(row) if row else None

    def undo_learn(self, learn_id: int) -> int:
        """Mark the cases of one learn as not learned, and that learn as undone; returns how many cases."""
        with self._write() as conn:
            cur = conn.execute("UPDATE cases SET learn_id = NULL WHERE learn_id = ?", (int(learn_id),))
            conn.execute("UPDATE learns SET undone_at = ? WHERE id = ?", (time.time(), int(learn_id)))
            refresh_last_learned(conn)
            return cur.rowcount

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

    def dismiss_suggestion(self, suggestion_id: str, reason: str | None = None) -> Dismissal | None:
        """Record that an agent dismissed a suggestion; returns after the commit, or None
        when no suggestion with that id was shown. Dismissing one twice keeps the first
        record (``created`` False); dismissing an accepted one raises ``SuggestionConflict``."""
        with self._write() as conn:
            return insert_dismissal(conn, str(suggestion_id), reason)

    def dismissed_texts(self, limit: int = 200) -> list[str]:
        """The texts of the latest ``limit`` dismissed suggestions, newest first, each once."""
        if limit < 0:
            raise BigramLMError("limit must not be negative", param="limit")
        return recent_dismissed_texts(self._conn(), limit)

    def desk_stats(self) -> StoreStats:
        """The desk's figures, read from one snapshot (see ``StoreStats``)."""
        with self._read() as conn:
            return read_stats(conn)

    def stats(self) -> dict[str, Any]:
        """Desk figures as a dict (``GET /api/stats``): how often a shown set of suggestions
        led to an accepted reply, how much agents edit, how often they dismiss.

        - ``acceptance_rate``: requests whose suggestions were shown and of which one
          was accepted (a case stored with its ``suggestion_id``), over requests shown;
        - ``light_edit_acceptance_rate``: the same, counting only acceptances edited by
          less than 40 % normalised edit distance (unedited: 0), as agent-assist
          products usually count acceptance;
        - ``unedited_rate``: accepted suggestions sent as they were, over accepted ones;
        - ``mean_edit_distance``: mean normalised edit distance of the accepted ones;
        - ``dismissed``, ``dismissal_rate``: suggestions dismissed, over suggestions shown.
        """
        return self.desk_stats().to_dict()

    def integrity_check(self) -> str:
        return str(self._conn().execute("PRAGMA integrity_check").fetchone()[0])

    @staticmethod
    def _case(row: sqlite3.Row) -> dict[str, Any]:
        case = dict(row)
        case["edited"] = bool(case["edited"])
        return case


class _Transaction:
    """``BEGIN IMMEDIATE`` (or ``begin``) ... ``COMMIT`` (or ``ROLLBACK`` on error) on one connection."""

    def __init__(self, conn: sqlite3.Connection, begin: str = "BEGIN IMMEDIATE"):
        self.conn = conn
        self.begin = begin

    def __enter__(self) -> sqlite3.Connection:
        self.conn.execute(self.begin)
        return self.conn

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.conn.execute("COMMIT")
        else:
            self.conn.execute("ROLLBACK")

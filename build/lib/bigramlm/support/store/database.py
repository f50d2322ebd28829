"""The SQLite database under the case store: per-thread connections and transactions.

Durability: every write is its own transaction with ``synchronous=FULL``, and a writer
returns only after ``COMMIT``; a caller that got an id back can rely on the row
surviving a crash of the process (and, with FULL, of the machine). WAL lets readers run
beside the one writer, and ``busy_timeout`` makes a second writer (``learn`` in another
process) wait instead of failing. Each thread gets its own connection: SQLite
connections must not be shared across threads without care.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from pathlib import Path
from types import TracebackType

from bigramlm.errors import BigramLMError
from bigramlm.support.store.schema import migrate

BUSY_TIMEOUT_MS = 10_000


class Database:
    """The store's file: opened (and migrated) once, then one connection per thread."""

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)
        if self.path.exists() and self.path.is_dir():
            raise BigramLMError(f"case store {self.path} is a directory, not a database file")
        if not self.path.parent.is_dir():
            raise BigramLMError(f"cannot create case store {self.path}: no directory {self.path.parent}")
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._all_lock = threading.Lock()
        try:
            with self.write() as tx:
                migrate(tx)
        except sqlite3.DatabaseError as exc:
            raise BigramLMError(f"case store {self.path} is not a usable SQLite database: {exc}") from None

    def connection(self) -> sqlite3.Connection:
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

    def write(self) -> "Transaction":
        """A transaction that takes the write lock at once (no upgrade deadlocks)."""
        return Transaction(self.connection())

    def read(self) -> "Transaction":
        """A read transaction: its statements see one snapshot of the database."""
        return Transaction(self.connection(), "BEGIN DEFERRED")

    def close(self) -> None:
        with self._all_lock:
            for conn in self._all:
                try:
                    conn.close()
                except sqlite3.ProgrammingError:
                    pass  # closed from its own thread already
            self._all.clear()
        self._local = threading.local()


class Transaction:
    """``BEGIN IMMEDIATE`` (or ``begin``) ... ``COMMIT`` (or ``ROLLBACK`` on error) on one connection."""

    def __init__(self, conn: sqlite3.Connection, begin: str = "BEGIN IMMEDIATE"):
        self.conn = conn
        self.begin = begin

    def __enter__(self) -> sqlite3.Connection:
        self.conn.execute(self.begin)
        return self.conn

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if exc_type is None:
            self.conn.execute("COMMIT")
        else:
            self.conn.execute("ROLLBACK")

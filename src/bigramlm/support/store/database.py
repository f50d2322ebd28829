"""The database under the case store: SQLite in the run directory, or a PostgreSQL server.

One ``Database`` is a SQLAlchemy engine (a pool of connections, each thread taking its own)
for either back-end, migrated on open to ``SCHEMA_VERSION`` by Alembic
(``migrations/`` beside this module, its README says how to add one). Callers see only ``read()`` and ``write()``, each one
transaction on one connection:

- Durability: a writer returns only after ``COMMIT``; a caller that got an id back can
  rely on the row surviving a crash of the process (SQLite with ``synchronous=FULL``, and
  PostgreSQL's default ``synchronous_commit``, also of the machine).
- Writers go one at a time, on both back-ends: SQLite's ``BEGIN IMMEDIATE`` takes its write
  lock at once; on PostgreSQL each write transaction first takes one transaction-level
  advisory lock. So the checks inside a write (a suggestion accepted once, never both
  accepted and dismissed) hold across desks as they do in one process, and case ids
  become visible in the order they were given: a desk that reads "the cases after id N"
  (its high-water mark) never skips one committed late. A write is a few rows, so one
  at a time costs little next to the seconds a suggestion takes to decode.
- A read of several statements that must agree (the desk's figures, a copy's checks) sees
  one snapshot (SQLite's deferred transaction, PostgreSQL's REPEATABLE READ); a one-query
  read runs on its own, without the round trips of a transaction.
- A store that ``bigramlm store copy`` copied elsewhere keeps a ``moved_to`` row in
  ``meta``; every write checks it under the write lock and refuses (``StoreMoved``), so a
  desk still running on the old store answers 503 instead of acknowledging a case that
  the new store never gets, and every command refuses to open it.
- When the database cannot be reached or cannot write (a full disk, a lock held too long,
  a PostgreSQL server restarting), the caller gets ``StoreUnavailable``: nothing of that
  transaction was stored, and the next call tries again on a fresh connection.
"""

from __future__ import annotations

import logging
import os
import sqlite3
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

from sqlalchemy import Connection, Engine, create_engine, event, exc, inspect, text
from sqlalchemy.engine import URL

from bigramlm.errors import BigramLMError
from bigramlm.support.store.targets import check_sqlite_file, shown, store_url

if TYPE_CHECKING:
    from alembic.config import Config

BUSY_TIMEOUT_MS = 10_000
#: The store's schema version: the number of the newest Alembic revision (``migrations/versions``).
SCHEMA_VERSION = 9
#: PostgreSQL advisory lock keys (any 64-bit numbers no other application on the database uses).
WRITE_LOCK = 0x6269_6772_616D_0001
LEARN_LOCK = 0x6269_6772_616D_0002
#: The ``meta`` row that ``store copy`` leaves in the store it copied: the target's name.
MOVED_KEY = "moved_to"
MIGRATIONS = str(Path(__file__).parent / "migrations")
# Alembic says at INFO which revisions it runs, through the desk's own log handlers; a
# migration is the store's business (and a failed one is an error, which still shows).
logging.getLogger("alembic").setLevel(logging.WARNING)


class StoreUnavailable(BigramLMError):
    """The store cannot be read or written now; nothing of the failed transaction was stored."""

    def __init__(self, message: str, full: bool = False):
        super().__init__(message)
        self.full = full


class StoreMoved(StoreUnavailable):
    """The store was copied to another database (``bigramlm store copy``) and takes no more
    writes: every desk and command must use the new one."""

    def __init__(self, name: str, target: str):
        super().__init__(f"case store {name} was copied to {target} by `bigramlm store copy` and takes no more writes: "
                         "name the new store with --store or BIGRAMLM_STORE, and restart every desk on it")
        self.target = target


def moved_to(conn: Connection) -> str | None:
    """Where ``store copy`` moved the store (its name in messages), or None."""
    value = conn.execute(text("SELECT value FROM meta WHERE key = :key"), {"key": MOVED_KEY}).scalar()
    return None if value is None else str(value)


def set_meta(conn: Connection, key: str, value: str) -> None:
    conn.execute(text("INSERT INTO meta(key, value) VALUES (:key, :value)"
                      " ON CONFLICT(key) DO UPDATE SET value = excluded.value"), {"key": key, "value": value})


class Database:
    """One store's engine: opened (and migrated) once, then a connection per transaction."""

    def __init__(self, target: str | os.PathLike[str], moved_ok: bool = False):
        """Open (and migrate) the store; one that ``store copy`` moved elsewhere is refused
        (``StoreMoved``) unless ``moved_ok`` (``store info``, and ``store copy`` itself)."""
        self.url = store_url(target)
        self.postgresql = self.url.get_backend_name() == "postgresql"
        #: The SQLite file (None on PostgreSQL).
        self.path = None if self.postgresql else Path(str(self.url.database))
        #: What messages call the store: the file, or the URL without its password.
        self.name = shown(self.url.set(drivername="postgresql")) if self.postgresql else str(self.path)
        if self.path is not None:
            check_sqlite_file(self.path)
        self.engine = _postgresql_engine(self.url) if self.postgresql else _sqlite_engine(self.url)
        try:
            with self.write(moved_ok=True) as conn:  # a fresh database has no meta table to look in yet
                upgrade(conn, self.name)
                #: The store ``store copy`` moved this one to (as messages show it), or None.
                self.moved_to = moved_to(conn)
        except StoreUnavailable as failure:
            self.engine.dispose()
            raise BigramLMError(f"cannot open case store {self.name}: {self._scrubbed(failure)}") from None
        except exc.DatabaseError as failure:
            self.engine.dispose()
            kind = "PostgreSQL" if self.postgresql else "SQLite"
            raise BigramLMError(f"case store {self.name} is not a usable {kind} database: "
                                f"{self._scrubbed(_first_line(failure))}") from None
        if self.moved_to is not None and not moved_ok:
            self.engine.dispose()
            raise StoreMoved(self.name, self.moved_to)

    def _scrubbed(self, message: object) -> str:
        """A driver's message without the password, should the driver quote its settings."""
        password = self.url.password
        return str(message).replace(str(password), "***") if password else str(message)

    @contextmanager
    def write(self, moved_ok: bool = False) -> Iterator[Connection]:
        """A write transaction; writers go one at a time (see the module's docstring). Under
        the write lock, a store that ``store copy`` moved refuses the write (``StoreMoved``):
        a desk still running on it must not acknowledge a case the new store never gets."""
        with self._translated(), self.engine.connect() as conn:
            with conn.execution_options(bigramlm_write=True).begin():
                if self.postgresql:
                    conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": WRITE_LOCK})
                target = None if moved_ok else moved_to(conn)
                if target is not None:
                    raise StoreMoved(self.name, target)
                yield conn

    @contextmanager
    def read(self, snapshot: bool = False) -> Iterator[Connection]:
        """A connection to read on. With ``snapshot``, its statements see one snapshot of the
        database (a transaction: SQLite's deferred one, PostgreSQL's REPEATABLE READ); without,
        each statement runs on its own (autocommit), which saves the round trips of BEGIN and
        COMMIT that a one-query read does not need."""
        with self._translated(), self.engine.connect() as conn:
            if self.postgresql:
                conn = conn.execution_options(isolation_level="REPEATABLE READ" if snapshot else "AUTOCOMMIT")
            else:
                conn = conn.execution_options(bigramlm_snapshot=snapshot)
            with conn.begin():
                yield conn

    @contextmanager
    def session_lock(self, key: int, busy: str) -> Iterator[None]:
        """Hold a PostgreSQL session-level advisory lock for the block, or raise ``busy`` in one
        line when another session holds it. SQLite has no server to hold one: a no-op there."""
        if not self.postgresql:
            yield
            return
        with self._translated(), self.engine.connect() as conn:
            got = conn.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": key}).scalar()
            conn.commit()
            if not got:
                raise BigramLMError(busy)
            try:
                yield
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})
                conn.commit()

    @contextmanager
    def _translated(self) -> Iterator[None]:
        try:
            yield
        except (exc.OperationalError, exc.InterfaceError) as failure:
            message = _first_line(failure)
            raise StoreUnavailable(message, full="full" in message.lower()) from None
        except exc.DBAPIError as failure:
            if failure.connection_invalidated:
                raise StoreUnavailable(_first_line(failure)) from None
            raise

    def close(self) -> None:
        self.engine.dispose()


def _first_line(failure: BaseException) -> str:
    """The driver's own message, first line (SQLAlchemy appends the SQL and a link)."""
    orig = getattr(failure, "orig", None) or failure
    lines = str(orig).strip().splitlines()
    return lines[0] if lines else type(orig).__name__


def _sqlite_engine(url: URL) -> Engine:
    engine = create_engine(url, pool_size=8, max_overflow=56,
                           connect_args={"timeout": BUSY_TIMEOUT_MS / 1000, "check_same_thread": False})

    @event.listens_for(engine, "connect")
    def _connect(dbapi: sqlite3.Connection, record: object) -> None:
        # Transactions are ours (BEGIN below), not the driver's implicit ones.
        dbapi.isolation_level = None
        for pragma in ("journal_mode=WAL", "synchronous=FULL", f"busy_timeout={BUSY_TIMEOUT_MS}"):
            dbapi.execute(f"PRAGMA {pragma}")

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        # IMMEDIATE takes the write lock at once: no deadlock upgrading a read lock. A read
        # that needs no snapshot begins nothing: the driver runs each statement on its own.
        options = conn.get_execution_options()
        if options.get("bigramlm_write"):
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        elif options.get("bigramlm_snapshot"):
            conn.exec_driver_sql("BEGIN DEFERRED")

    return engine


def _postgresql_engine(url: URL) -> Engine:
    # pre_ping: a connection the server dropped (a restart) is replaced at checkout, so
    # the desks recover by themselves; connect_timeout: a server that is down fails a
    # request in seconds, as a 503, instead of holding it. prepare_threshold None: psycopg
    # never prepares a statement, so each is planned for its own values; a prepared similar-
    # case search (``search.candidates``) could fall back to a generic plan blind to its
    # floor and trigrams.
    return create_engine(url, pool_size=4, max_overflow=28, pool_pre_ping=True, pool_timeout=10,
                         connect_args={"connect_timeout": 5, "prepare_threshold": None})


def _alembic_config(conn: Connection | None = None) -> "Config":
    """Alembic's configuration: our revisions, run on ``conn`` (``migrations/env.py``)."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", MIGRATIONS)
    config.attributes["connection"] = conn
    return config


@cache
def _migrations() -> tuple[str, frozenset[str]]:
    """The head revision and every revision this bigramlm knows."""
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(_alembic_config())
    head = script.get_current_head()
    assert head is not None
    return head, frozenset(r.revision for r in script.walk_revisions())


def upgrade(conn: Connection, name: str) -> None:
    """Bring the store ``name`` to ``SCHEMA_VERSION`` inside the caller's write transaction;
    refuse one written by a newer bigramlm, or a database another application migrates."""
    from alembic.runtime.migration import MigrationContext

    if conn.dialect.name == "sqlite":
        version = int(conn.exec_driver_sql("PRAGMA user_version").scalar() or 0)
        if version > SCHEMA_VERSION:
            _newer(str(version))
    current = MigrationContext.configure(conn).get_current_revision()
    head, known = _migrations()
    if current == head:
        return
    if current is not None and current not in known:
        _unknown(conn, name, current)
    from alembic import command

    command.upgrade(_alembic_config(conn), "head")
    # Mirrored for people (and older releases) reading the store: an older bigramlm
    # refuses a store whose version is newer than its own, instead of misreading it.
    set_meta(conn, "schema_version", str(SCHEMA_VERSION))
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql(f"PRAGMA user_version = {SCHEMA_VERSION}")


def _unknown(conn: Connection, name: str, revision: str) -> None:
    """Refuse a revision this bigramlm does not know, saying whose it is. Ours are numbered
    by schema version (``migrations/README``), and our stores have the ``meta`` table that
    says it: anything else is another application's Alembic history in this database."""
    if revision.isdigit() and int(revision) > SCHEMA_VERSION and inspect(conn).has_table("meta"):
        _newer(revision)
    raise BigramLMError(f"the database at {name} holds another application's Alembic history (revision "
                        f"{revision[:40]!r} is not bigramlm's): give the case store a database of its own")


def _newer(version: str) -> None:
    raise BigramLMError(f"the case store was written by a newer bigramlm (schema {version}; this one reads up to "
                        f"{SCHEMA_VERSION}); upgrade bigramlm to use it")

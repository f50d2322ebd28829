"""The steps that bring a SQLite store of the releases before Alembic to schema 6.

Since schema 6 the store's migrations are Alembic revisions (``migrations/versions``), one
history for SQLite and PostgreSQL; their baseline (``0006``) calls ``migrate`` here for a
SQLite store an earlier release wrote, so such a store migrates in place, as before.

``migrate`` brings such a store to ``LEGACY_VERSION`` inside one transaction: it reads
the store's version (SQLite's own ``PRAGMA user_version``, mirrored in
``meta.schema_version`` for people reading the file) and runs each step after it, in
order (``STEPS``). Steps only add (columns with ``ALTER TABLE``, tables and indexes), so
a store stays readable by the code that wrote it.

Versions: 1 had one ``last_learned_id`` mark; 2 adds the ``learn_id`` and
``content_sha256`` columns of ``cases`` and the ``learns`` table; 3 adds ``feedback`` (an agent dismissed a
suggestion: negative feedback, which no ``learn`` ever trains on) and an index of the
cases by the suggestion they accepted; 4 adds ``suggestions.base_text`` (a suggestion as
the model or the case store gave it, before team edits: what a team edit is found
against) and ``rule_settings`` (the team edit rules agents disabled or enabled again);
5 adds to ``learns`` the understanding's sha256 before and after and the learn's token
(what a learn's journal names, ``support.history``); 6 adds ``agents`` (names and their
tokens' sha256, ``support.store.agents``) and the agent of each case, dismissal and
suggestion shown.
"""

from __future__ import annotations

from sqlalchemy import Connection

from bigramlm.errors import BigramLMError

#: The last schema version these steps make; Alembic's revisions start from it.
LEGACY_VERSION = 6

#: Version 1: cases, the suggestions shown, and the meta table.
SCHEMA = """
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

#: Version 2: learns, and the cases' ``content_sha256`` and ``learn_id`` (added by ``_v2``).
V2_TABLES = """
CREATE TABLE IF NOT EXISTS learns (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at     REAL    NOT NULL,
    cases          INTEGER NOT NULL,
    weights_before TEXT,
    weights_after  TEXT,
    undone_at      REAL
);
CREATE UNIQUE INDEX IF NOT EXISTS cases_learn_content ON cases(content_sha256) WHERE source = 'learn';
CREATE INDEX IF NOT EXISTS cases_learn_id ON cases(learn_id);
"""

#: Version 3: desk feedback on suggestions. A row per (suggestion, action); ``dismiss`` is
#: the only action so far (a CHECK would need a table rebuild to extend). The request and
#: the text are the suggestion's, read through ``suggestion_id``.
V3_TABLES = """
CREATE TABLE IF NOT EXISTS feedback (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at    REAL NOT NULL,
    suggestion_id TEXT NOT NULL REFERENCES suggestions(id),
    request_id    TEXT NOT NULL,
    action        TEXT NOT NULL,
    reason        TEXT
);
CREATE UNIQUE INDEX IF NOT EXISTS feedback_suggestion_action ON feedback(suggestion_id, action);
CREATE INDEX IF NOT EXISTS cases_suggestion ON cases(suggestion_id);
"""


#: Version 4: team edits.
V4_TABLES = """
CREATE TABLE IF NOT EXISTS rule_settings (
    rule_id    TEXT PRIMARY KEY,
    enabled    INTEGER NOT NULL,
    updated_at REAL NOT NULL,
    description TEXT
);
"""


def stored_version(conn: Connection) -> int:
    """The schema version the store was written with: ``user_version``, or for stores of
    the releases before it was set, ``meta.schema_version`` (0 for a fresh file)."""
    version = int(conn.exec_driver_sql("PRAGMA user_version").scalar() or 0)
    if version:
        return version
    row = conn.exec_driver_sql("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() if _has_meta(conn) else None
    if not row:
        return 0
    try:
        return int(row[0])
    except ValueError:
        raise BigramLMError(f"the case store's schema_version {row[0]!r} is not a number") from None


def _has_meta(conn: Connection) -> bool:
    return conn.exec_driver_sql("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'").fetchone() is not None


def _run(conn: Connection, script: str) -> None:
    for statement in filter(str.strip, script.split(";")):
        conn.exec_driver_sql(statement)


def _v1(conn: Connection) -> None:
    _run(conn, SCHEMA)
    conn.exec_driver_sql("INSERT OR IGNORE INTO meta(key, value) VALUES ('last_learned_id', '0')")


def _v2(conn: Connection) -> None:
    conn.exec_driver_sql("ALTER TABLE cases ADD COLUMN content_sha256 TEXT")
    conn.exec_driver_sql("ALTER TABLE cases ADD COLUMN learn_id INTEGER")
    # Version 1's mark: every case up to it had been learned (by "learn 0").
    conn.exec_driver_sql("UPDATE cases SET learn_id = 0 WHERE id <= "
                         "(SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'last_learned_id')")
    _run(conn, V2_TABLES)


def _v4(conn: Connection) -> None:
    conn.exec_driver_sql("ALTER TABLE suggestions ADD COLUMN base_text TEXT")
    _run(conn, V4_TABLES)


def _v5(conn: Connection) -> None:
    for column in ("understanding_before", "understanding_after", "token"):
        conn.exec_driver_sql(f"ALTER TABLE learns ADD COLUMN {column} TEXT")


#: Version 6: agents with names; who accepted, dismissed, was shown.
V6_TABLES = """
CREATE TABLE IF NOT EXISTS agents (
    name         TEXT PRIMARY KEY,
    token_sha256 TEXT NOT NULL UNIQUE,
    created_at   REAL NOT NULL,
    removed_at   REAL
);
"""


def _v6(conn: Connection) -> None:
    _run(conn, V6_TABLES)
    for table in ("cases", "feedback", "suggestions"):
        conn.exec_driver_sql(f"ALTER TABLE {table} ADD COLUMN agent TEXT")


#: The step that makes each version from the one before it.
STEPS = {1: _v1, 2: _v2, 3: lambda conn: _run(conn, V3_TABLES), 4: _v4, 5: _v5, 6: _v6}


def migrate(conn: Connection) -> None:
    """Bring a store of any earlier version to ``LEGACY_VERSION`` (inside the caller's
    transaction), one step per version; refuse one written by a newer version."""
    version = stored_version(conn)
    if version > LEGACY_VERSION:
        raise BigramLMError(f"the case store was written by a newer bigramlm (schema {version}; this one reads up to "
                            f"{LEGACY_VERSION}); upgrade bigramlm to use it")
    # Step 1 (tables IF NOT EXISTS) runs again for version-1 stores: the earliest of them
    # were written before the suggestions table, under the same version.
    for step in range(1 if version <= 1 else version + 1, LEGACY_VERSION + 1):
        STEPS[step](conn)
    if version < LEGACY_VERSION:
        conn.exec_driver_sql("INSERT OR REPLACE INTO meta(key, value) VALUES ('schema_version', ?)", (str(LEGACY_VERSION),))
        conn.exec_driver_sql(f"PRAGMA user_version = {LEGACY_VERSION}")

"""The case store's SQLite schema and its migrations.

``migrate`` brings any store, fresh or written by an earlier version, to
``SCHEMA_VERSION`` inside one transaction: it reads the store's version (SQLite's own
``PRAGMA user_version``, mirrored in ``meta.schema_version`` for people reading the file)
and runs each step after it, in order (``STEPS``); a fresh store is version 0, so it
takes the same path as an old one. Steps only add (columns with ``ALTER TABLE``, tables
and indexes), so a store stays readable by the code that wrote it. A store written by a
newer version of bigramlm is refused with one line, never relabelled.

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

import sqlite3

from bigramlm.errors import BigramLMError

SCHEMA_VERSION = 6

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


def stored_version(conn: sqlite3.Connection) -> int:
    """The schema version the store was written with: ``user_version``, or for stores of
    the releases before it was set, ``meta.schema_version`` (0 for a fresh file)."""
    version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    if version:
        return version
    row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() if _has_meta(conn) else None
    if not row:
        return 0
    try:
        return int(row[0])
    except ValueError:
        raise BigramLMError(f"the case store's schema_version {row[0]!r} is not a number") from None


def _has_meta(conn: sqlite3.Connection) -> bool:
    return conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'").fetchone() is not None


def _run(conn: sqlite3.Connection, script: str) -> None:
    for statement in filter(str.strip, script.split(";")):
        conn.execute(statement)


def _v1(conn: sqlite3.Connection) -> None:
    _run(conn, SCHEMA)
    conn.execute("INSERT OR IGNORE INTO meta(key, value) VALUES ('last_learned_id', '0')")


def _v2(conn: sqlite3.Connection) -> None:
    conn.execute("ALTER TABLE cases ADD COLUMN content_sha256 TEXT")
    conn.execute("ALTER TABLE cases ADD COLUMN learn_id INTEGER")
    # Version 1's mark: every case up to it had been learned (by "learn 0").
    conn.execute("UPDATE cases SET learn_id = 0 WHERE id <= "
                 "(SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'last_learned_id')")
    _run(conn, V2_TABLES)


def _v4(conn: sqlite3.Connection) -> None:
    conn.execute("ALTER TABLE suggestions ADD COLUMN base_text TEXT")
    _run(conn, V4_TABLES)


def _v5(conn: sqlite3.Connection) -> None:
    for column in ("understanding_before", "understanding_after", "token"):
        conn.execute(f"ALTER TABLE learns ADD COLUMN {column} TEXT")


#: Version 6: agents with names; who accepted, dismissed, was shown.
V6_TABLES = """
CREATE TABLE IF NOT EXISTS agents (
    name         TEXT PRIMARY KEY,
    token_sha256 TEXT NOT NULL UNIQUE,
    created_at   REAL NOT NULL,
    removed_at   REAL
);
"""


def _v6(conn: sqlite3.Connection) -> None:
    _run(conn, V6_TABLES)
    for table in ("cases", "feedback", "suggestions"):
        conn.execute(f"ALTER TABLE {table} ADD COLUMN agent TEXT")


#: The step that makes each version from the one before it.
STEPS = {1: _v1, 2: _v2, 3: lambda conn: _run(conn, V3_TABLES), 4: _v4, 5: _v5, 6: _v6}


def migrate(conn: sqlite3.Connection) -> None:
    """Bring a store of any earlier version to ``SCHEMA_VERSION`` (inside the caller's
    transaction), one step per version; refuse one written by a newer version."""
    version = stored_version(conn)
    if version > SCHEMA_VERSION:
        raise BigramLMError(f"the case store was written by a newer bigramlm (schema {version}; this one reads up to "
                            f"{SCHEMA_VERSION}); upgrade bigramlm to use it")
    # Step 1 (tables IF NOT EXISTS) runs again for version-1 stores: the earliest of them
    # were written before the suggestions table, under the same version.
    for step in range(1 if version <= 1 else version + 1, SCHEMA_VERSION + 1):
        STEPS[step](conn)
    if version < SCHEMA_VERSION:
        conn.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

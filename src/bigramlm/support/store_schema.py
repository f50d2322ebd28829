"""The case store's SQLite schema, its migrations, and how a case becomes a row.

``SCHEMA`` creates a fresh store; ``migrate`` then brings any store, fresh or written
by an earlier version, to ``SCHEMA_VERSION`` inside one transaction. Migrations only
add (columns with ``ALTER TABLE``, tables and indexes ``IF NOT EXISTS``), so a store
stays readable by the code that wrote it.

Versions: 1 had one ``last_learned_id`` mark; 2 adds ``cases.learn_id``,
``cases.content_sha256`` and ``learns``; 3 adds ``feedback`` (an agent dismissed a
suggestion: negative feedback, which no ``learn`` ever trains on) and an index of the
cases by the suggestion they accepted.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from typing import Any

from bigramlm.errors import BigramLMError

SCHEMA_VERSION = 3

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
    source        TEXT    NOT NULL DEFAULT 'desk',
    content_sha256 TEXT,
    learn_id      INTEGER
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

#: Version 2, run in one transaction after ``SCHEMA`` (whose ``cases`` table may be version 1's).
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

#: What a case read back holds (its learn is the store's business, not the caller's).
CASE_COLUMNS = "id, created_at, message, reply, intent, category, suggestion_id, edited, edit_distance, source"
INSERT_COLUMNS = "created_at, message, reply, intent, category, suggestion_id, edited, edit_distance, source, content_sha256"
INSERT_MARKS = ", ".join("?" * len(INSERT_COLUMNS.split(",")))
#: Where a ``case_row`` holds the suggestion the case accepted.
SUGGESTION_AT = [name.strip() for name in INSERT_COLUMNS.split(",")].index("suggestion_id")


def case_digest(message: str, reply: str, intent: str | None, category: str | None) -> str:
    """What makes a case the same case: its message, reply and labels."""
    return hashlib.sha256(json.dumps([message, reply, intent, category], ensure_ascii=False).encode("utf-8")).hexdigest()


def case_row(case: dict[str, Any], now: float) -> tuple[Any, ...]:
    message, reply = case.get("message"), case.get("reply")
    if not isinstance(message, str) or not isinstance(reply, str):
        raise BigramLMError("a case needs a message and a reply, both text")
    suggestion_id = case.get("suggestion_id")
    intent, category = case.get("intent"), case.get("category")
    return (
        now, message, reply, intent, category, None if suggestion_id is None else str(suggestion_id),
        1 if case.get("edited") else 0, case.get("edit_distance"), case.get("source") or "desk",
        case_digest(message, reply, intent, category),
    )


def migrate(conn: sqlite3.Connection) -> None:
    """Bring a store of any earlier version to ``SCHEMA_VERSION`` (inside the caller's transaction)."""
    columns = {row[1] for row in conn.execute("PRAGMA table_info(cases)")}
    if "content_sha256" not in columns:
        conn.execute("ALTER TABLE cases ADD COLUMN content_sha256 TEXT")
    if "learn_id" not in columns:
        conn.execute("ALTER TABLE cases ADD COLUMN learn_id INTEGER")
        # Version 1's mark: every case up to it had been learned (by "learn 0").
        conn.execute("UPDATE cases SET learn_id = 0 WHERE id <= "
                     "(SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'last_learned_id')")
    for statement in filter(str.strip, (V2_TABLES + V3_TABLES).split(";")):
        conn.execute(statement)
    conn.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))


def insert_learn(conn: sqlite3.Connection, cases: int, weights_before: str | None, weights_after: str | None) -> int:
    return int(conn.execute(
        "INSERT INTO learns(created_at, cases, weights_before, weights_after) VALUES (?, ?, ?, ?)",
        (time.time(), cases, weights_before, weights_after),
    ).lastrowid)


def refresh_last_learned(conn: sqlite3.Connection) -> None:
    """``last_learned_id``: the newest case a learn trained on (kept for the desk's figures)."""
    conn.execute("UPDATE meta SET value = (SELECT CAST(COALESCE(MAX(id), 0) AS TEXT) FROM cases WHERE learn_id IS NOT NULL)"
                 " WHERE key = 'last_learned_id'")

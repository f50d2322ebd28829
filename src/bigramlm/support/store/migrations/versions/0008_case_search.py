"""Schema 8: similar-case search in the store's own engine (``support.store.search``).

SQLite: an FTS5 table over the cases' messages with the trigram tokenizer (external
content: it holds the index, not a second copy of the text), kept by triggers on ``cases``
in the same transaction as the row. PostgreSQL: ``pg_trgm`` (a trusted extension that ships
with the server) and a GIN trigram index on ``cases.message``, kept by the server. Either
way a desk no longer needs a copy of every case in memory to find the similar ones, and a
case is searchable as soon as its transaction commits, on every desk.

Revision ID: 0008
Revises: 0007
"""

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

SQLITE = (
    "CREATE VIRTUAL TABLE cases_fts USING fts5(message, content='cases', content_rowid='id', tokenize='trigram')",
    "CREATE TRIGGER cases_fts_insert AFTER INSERT ON cases BEGIN"
    " INSERT INTO cases_fts(rowid, message) VALUES (new.id, new.message); END",
    "CREATE TRIGGER cases_fts_delete AFTER DELETE ON cases BEGIN"
    " INSERT INTO cases_fts(cases_fts, rowid, message) VALUES ('delete', old.id, old.message); END",
    "CREATE TRIGGER cases_fts_update AFTER UPDATE OF message ON cases BEGIN"
    " INSERT INTO cases_fts(cases_fts, rowid, message) VALUES ('delete', old.id, old.message);"
    " INSERT INTO cases_fts(rowid, message) VALUES (new.id, new.message); END",
    "INSERT INTO cases_fts(cases_fts) VALUES ('rebuild')",  # the cases stored before this revision
)
POSTGRESQL = (
    "CREATE EXTENSION IF NOT EXISTS pg_trgm",
    "CREATE INDEX cases_message_trgm ON cases USING gin (message gin_trgm_ops)",
)


def upgrade() -> None:
    for statement in SQLITE if op.get_bind().dialect.name == "sqlite" else POSTGRESQL:
        op.execute(statement)

"""Schema 6, the baseline: every table of the last release before Alembic.

A fresh store (SQLite or PostgreSQL) gets the tables here. A SQLite store written by an
earlier release (schema 1 to 6, by ``PRAGMA user_version``) is brought to schema 6 in
place by that release's own steps instead (``support.store.legacy``), which only add
columns, tables and indexes, so the two paths end at the same schema.

Revision ID: 0006
Revises:
"""

import sqlalchemy as sa
from alembic import op

from bigramlm.support.store import legacy

revision = "0006"
down_revision = None
branch_labels = None
depends_on = None

#: Timestamps are seconds since the epoch with a fraction: double precision on PostgreSQL
#: (its REAL is 4 bytes, about 2 minutes of resolution at today's epoch), REAL on SQLite.
SECONDS = sa.Float(precision=53)


def _id() -> sa.Column:
    return sa.Column("id", sa.Integer, primary_key=True, autoincrement=True)


def upgrade() -> None:
    conn = op.get_bind()
    if conn.dialect.name == "sqlite" and legacy.stored_version(conn) > 0:
        legacy.migrate(conn)
        return
    # sqlite_autoincrement: SQLite never reuses a deleted row's id (as the releases before did).
    keep = {"sqlite_autoincrement": True}
    op.create_table("meta", sa.Column("key", sa.Text, primary_key=True), sa.Column("value", sa.Text, nullable=False))
    op.create_table(
        "cases", _id(), sa.Column("created_at", SECONDS, nullable=False), sa.Column("message", sa.Text, nullable=False),
        sa.Column("reply", sa.Text, nullable=False), sa.Column("intent", sa.Text), sa.Column("category", sa.Text),
        sa.Column("suggestion_id", sa.Text), sa.Column("edited", sa.Integer, nullable=False, server_default="0"),
        sa.Column("edit_distance", SECONDS), sa.Column("source", sa.Text, nullable=False, server_default="desk"),
        sa.Column("content_sha256", sa.Text), sa.Column("learn_id", sa.Integer), sa.Column("agent", sa.Text), **keep)
    learned = sa.text("source = 'learn'")
    op.create_index("cases_learn_content", "cases", ["content_sha256"], unique=True,
                    sqlite_where=learned, postgresql_where=learned)
    op.create_index("cases_learn_id", "cases", ["learn_id"])
    op.create_index("cases_suggestion", "cases", ["suggestion_id"])
    op.create_table(
        "suggestions", sa.Column("id", sa.Text, primary_key=True), sa.Column("request_id", sa.Text, nullable=False),
        sa.Column("created_at", SECONDS, nullable=False), sa.Column("text", sa.Text, nullable=False),
        sa.Column("score", SECONDS), sa.Column("base_text", sa.Text), sa.Column("agent", sa.Text))
    op.create_index("suggestions_request", "suggestions", ["request_id"])
    op.create_table(
        "learns", _id(), sa.Column("created_at", SECONDS, nullable=False), sa.Column("cases", sa.Integer, nullable=False),
        sa.Column("weights_before", sa.Text), sa.Column("weights_after", sa.Text), sa.Column("undone_at", SECONDS),
        sa.Column("understanding_before", sa.Text), sa.Column("understanding_after", sa.Text),
        sa.Column("token", sa.Text), **keep)
    op.create_table(
        "feedback", _id(), sa.Column("created_at", SECONDS, nullable=False),
        sa.Column("suggestion_id", sa.Text, sa.ForeignKey("suggestions.id"), nullable=False),
        sa.Column("request_id", sa.Text, nullable=False), sa.Column("action", sa.Text, nullable=False),
        sa.Column("reason", sa.Text), sa.Column("agent", sa.Text), **keep)
    op.create_index("feedback_suggestion_action", "feedback", ["suggestion_id", "action"], unique=True)
    op.create_table(
        "rule_settings", sa.Column("rule_id", sa.Text, primary_key=True), sa.Column("enabled", sa.Integer, nullable=False),
        sa.Column("updated_at", SECONDS, nullable=False), sa.Column("description", sa.Text))
    op.create_table(
        "agents", sa.Column("name", sa.Text, primary_key=True), sa.Column("token_sha256", sa.Text, nullable=False, unique=True),
        sa.Column("created_at", SECONDS, nullable=False), sa.Column("removed_at", SECONDS))
    op.execute("INSERT INTO meta(key, value) VALUES ('last_learned_id', '0')")

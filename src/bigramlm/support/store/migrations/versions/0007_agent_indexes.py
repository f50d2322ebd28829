"""Schema 7: indexes on the agent of each case, dismissal and suggestion shown.

``/api/stats?agent=NAME`` and the desk's header read one agent's rows of each table on
every refresh; with a team's months of suggestions on one store, that is an index
lookup instead of a scan of the table.

Revision ID: 0007
Revises: 0006
"""

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    for table in ("cases", "suggestions", "feedback"):
        op.create_index(f"{table}_agent", table, ["agent"])

"""Schema 9: a resolved case from a helpdesk keeps its conversation, and webhook deliveries are taken once.

``conversation_cases`` ties a case to the conversation it came from (the helpdesk, the
conversation's id there, its turns as JSON), one case per conversation, so a resolution
delivered twice is stored once and every case can be traced back to its thread.
``helpdesk_deliveries`` remembers each delivery (a Chatwoot message id, a Zammad
``X-Zammad-Delivery``, an RT transaction) that was handled, so a webhook sent again gives
no second note, also across a restart.

Revision ID: 0009
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

SECONDS = sa.Float(precision=53)


def upgrade() -> None:
    op.create_table(
        "conversation_cases", sa.Column("case_id", sa.Integer, sa.ForeignKey("cases.id"), primary_key=True),
        sa.Column("helpdesk", sa.Text, nullable=False), sa.Column("conversation_id", sa.Text, nullable=False),
        sa.Column("turns", sa.Text, nullable=False), sa.Column("created_at", SECONDS, nullable=False))
    op.create_index("conversation_cases_source", "conversation_cases", ["helpdesk", "conversation_id"], unique=True)
    op.create_table(
        "helpdesk_deliveries", sa.Column("helpdesk", sa.Text, primary_key=True), sa.Column("delivery", sa.Text, primary_key=True),
        sa.Column("created_at", SECONDS, nullable=False))

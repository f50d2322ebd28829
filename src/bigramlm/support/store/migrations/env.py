"""Alembic's environment: run the revisions on the connection the store passes in.

The store opens the database, begins its write transaction and calls
``command.upgrade`` with that connection in ``config.attributes["connection"]``, so a
migration commits with everything else in the transaction or not at all.
"""

from alembic import context

connection = context.config.attributes.get("connection")
if connection is None:
    raise SystemExit("bigramlm runs its store's migrations itself: open the store (any bigramlm command) to migrate it")
# render_as_batch: SQLite cannot ALTER most things in place; Alembic's batch mode copies
# the table instead, and on PostgreSQL it is plain ALTER TABLE.
context.configure(connection=connection, target_metadata=None, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()

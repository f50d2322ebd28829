"""The resolved-case store: a SQLite file in the run directory (one desk), or a PostgreSQL
database that several desks share (a team: ``--store postgresql://...``).

Both the agent desk (``serve``) and ``learn`` go through ``CaseStore``, so there is one
schema and one notion of "cases since the last learn". By concept:

- ``database``: the engine on either back-end, transactions, durability, writers one at a time;
- ``migrations/``: the schema's one Alembic history (``legacy``: the steps of stores before it);
- ``transfer``: moving a store to another database, checked by counts and checksums;
- ``cases``: resolved cases (``StoredCase``) and the learns that trained on them;
- ``search``: similar-case candidates from the database's own index (FTS5, ``pg_trgm``);
- ``feedback``: the suggestions shown, dismissals, and the desk's figures;
- ``agents``: agents' names and their tokens' digests.
"""

from bigramlm.support.store.agents import Agent
from bigramlm.support.store.cases import LearnChanges, LearnRecord, StoredCase
from bigramlm.support.store.case_store import (
    STORE_ENV,
    STORE_FILE,
    CaseStore,
    normalized_edit_distance,
    run_has_agents,
    store_path,
    store_target,
)
from bigramlm.support.store.database import SCHEMA_VERSION, StoreUnavailable
from bigramlm.support.store.feedback import AcceptedReply, Dismissal, ShownSuggestion, StoreStats, SuggestionConflict

__all__ = [
    "AcceptedReply",
    "Agent",
    "CaseStore",
    "Dismissal",
    "LearnChanges",
    "LearnRecord",
    "SCHEMA_VERSION",
    "STORE_ENV",
    "STORE_FILE",
    "ShownSuggestion",
    "StoreStats",
    "StoreUnavailable",
    "StoredCase",
    "SuggestionConflict",
    "normalized_edit_distance",
    "run_has_agents",
    "store_path",
    "store_target",
]

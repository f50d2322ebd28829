"""The resolved-case store: one SQLite database in WAL mode inside the run directory.

Both the agent desk (``serve``) and ``learn`` go through ``CaseStore``, so there is one
schema and one notion of "cases since the last learn". By concept:

- ``database``: the file, per-thread connections and transactions (durability);
- ``schema``: the tables and the migrations between versions;
- ``cases``: resolved cases (``StoredCase``) and the learns that trained on them;
- ``feedback``: the suggestions shown, dismissals, and the desk's figures;
- ``agents``: agents' names and their tokens' digests.
"""

from bigramlm.support.store.agents import Agent
from bigramlm.support.store.cases import LearnChanges, LearnRecord, StoredCase
from bigramlm.support.store.case_store import STORE_FILE, CaseStore, normalized_edit_distance, run_has_agents, store_path
from bigramlm.support.store.feedback import Dismissal, ShownSuggestion, StoreStats, SuggestionConflict
from bigramlm.support.store.schema import SCHEMA_VERSION

__all__ = [
    "Agent",
    "CaseStore",
    "Dismissal",
    "LearnChanges",
    "LearnRecord",
    "SCHEMA_VERSION",
    "STORE_FILE",
    "ShownSuggestion",
    "StoreStats",
    "StoredCase",
    "SuggestionConflict",
    "normalized_edit_distance",
    "run_has_agents",
    "store_path",
]

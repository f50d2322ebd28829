"""What a ``learn`` changes, written, and ``learn --undo``.

Publishing keeps the files from before (``weights_history``), writes the new weights
and understanding (each atomically), and only then, in one store transaction, adds the
file's cases and marks every case trained on. A learn that fails before that leaves the
store and the weights as they were, and the next learn sees the same cases again; it
never stores a case twice. Weights the learn gate refused (``support.gate``) are not
written: the cases are stored, not marked, and a refitted understanding is kept if the
gate let it through.

``undo_learn`` puts back the weights and the understanding from before the last learn
and marks its cases as not learned again: they stay in the store (and the retrieval
index), and the next ``learn`` without ``--cases`` trains on them again, so the store
always says truthfully which cases the weights include.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bigramlm.checkpoint import Run, read_config
from bigramlm.data.cases import Case
from bigramlm.errors import BigramLMError
from bigramlm.support.results import UndoResult
from bigramlm.support.store import CaseStore
from bigramlm.support.understanding import UNDERSTANDING_FILE, Understander
from bigramlm.support.weights_history import WeightsChange, keep_previous, replace_weights, restore_previous, restore_weights

LEARN_LOG = "learn.jsonl"


@dataclass
class LearnedUnderstanding:
    """A refitted understander and the intent of each message it stores."""

    understander: Understander
    intents: list[str]


@dataclass
class Learned:
    """What a learn publishes: its cases (file cases are new to the store), whether its
    weights are kept, and its understanding."""

    cases: list[Case]
    from_file: bool
    store_ids: list[int]
    keep_weights: bool
    understanding: LearnedUnderstanding | None


def publish(run: Run, store: CaseStore, learned: Learned) -> int:
    """Write what the learn keeps, then store and mark its cases; returns how many file
    cases were new to the store."""
    if learned.understanding is not None:
        keep_previous(run.path, UNDERSTANDING_FILE)
        learned.understanding.understander.save(run.path, learned.understanding.intents)
    new_cases = learned.cases if learned.from_file else []
    if not learned.keep_weights:
        return store.store_learn_cases(new_cases)[1]
    change = replace_weights(run.path, run.model)
    return store.record_learn(new_cases, learned.store_ids, change.before, change.after)[1]


def append_log(run_dir: Path, entry: dict[str, Any]) -> None:
    with open(Path(run_dir) / LEARN_LOG, "a", encoding="utf-8") as f:
        f.write(json.dumps({"time": time.time(), **entry}) + "\n")


def undo_learn(run_dir: str | os.PathLike[str]) -> UndoResult:
    """Restore the weights from before the run's last learn, bit for bit, and mark the
    cases it trained on as not learned again (they stay in the store)."""
    run_dir = Path(run_dir)
    read_config(run_dir)  # a run directory, or a one-line error; its weights need not load (they may be the bad ones)
    with CaseStore.for_run(run_dir) as store:
        last = store.last_weights_learn()
        if last is None or last.weights_before is None or last.weights_after is None:
            raise BigramLMError(f"{run_dir} has no learn to undo")
        change = WeightsChange(last.weights_before, last.weights_after)
        restore_weights(run_dir, change)
        restore_previous(run_dir, UNDERSTANDING_FILE)
        unmarked = store.undo_learn(last.id)
    result = UndoResult(str(run_dir), last.id, unmarked, change.before)
    append_log(run_dir, {"event": "undo", **result.to_dict()})
    return result

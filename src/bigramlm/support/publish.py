"""What a ``learn`` changes, written all or nothing, and ``learn --undo``.

Publishing stages the new weights and understanding in the run's history (by content,
``support.history``), keeps the versions they replace there too, writes the journal,
installs the new versions (one atomic rename each), and then, in one store transaction,
adds the file's cases, marks the cases trained on and records the learn with the
journal's token; the journal goes last. A kill at any instant leaves a journal that
``recover`` turns into the finished learn or into the run as it was, before the next
learn, undo or desk reload reads anything. Weights the learn gate refused
(``support.gate``) are not staged: the cases are stored, not marked.

``undo_learn`` puts back the learned files from before the last learn that changed any,
bit for bit, and marks its cases as not learned again: they stay in the store (and the
retrieval index), and the next ``learn`` without ``--cases`` trains on them again, so the
store always says truthfully which cases the weights include. Learn and undo hold the
run's learn lock, so two of them never interleave.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bigramlm._fs import sha256_of
from bigramlm.checkpoint import WEIGHTS, Run, read_config, save_weights
from bigramlm.data.cases import Case
from bigramlm.errors import BigramLMError
from bigramlm.support import history
from bigramlm.support.history import Change
from bigramlm.support.results import UndoResult
from bigramlm.support.store import CaseStore, LearnChanges
from bigramlm.support.understanding import UNDERSTANDING_FILE, Understander

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


def recover(run_dir: Path, store: CaseStore) -> str | None:
    """Finish or roll back a learn a kill interrupted (see ``support.history``)."""
    return history.recover(Path(run_dir), lambda token: store.learn_by_token(token) is not None)


def publish(run: Run, store: CaseStore, learned: Learned) -> int:
    """Write what the learn keeps, then store and mark its cases; returns how many file
    cases were new to the store. The caller holds the learn lock."""
    run_dir = Path(run.path)
    changes = []
    if learned.keep_weights:
        after = history.stage(run_dir, WEIGHTS, lambda folder, name: save_weights(folder, run.model, name))
        changes.append(Change(WEIGHTS, history.keep(run_dir, WEIGHTS), after))
    if learned.understanding is not None:
        u = learned.understanding
        after = history.stage(run_dir, UNDERSTANDING_FILE, lambda folder, name: u.understander.save(folder, u.intents, name))
        changes.append(Change(UNDERSTANDING_FILE, history.keep(run_dir, UNDERSTANDING_FILE), after))
    changes = [c for c in changes if c.before != c.after]
    new_cases = learned.cases if learned.from_file else []
    if not changes:
        return store.store_learn_cases(new_cases)[1]
    token = uuid.uuid4().hex
    history.write_journal(run_dir, token, changes)
    history.install_all(run_dir, changes)
    by_name = {c.name: c for c in changes}
    weights, understanding = by_name.get(WEIGHTS), by_name.get(UNDERSTANDING_FILE)
    record = LearnChanges(weights.before if weights else None, weights.after if weights else None,
                          understanding.before if understanding else None, understanding.after if understanding else None,
                          token)
    stored = store.record_learn(new_cases, learned.store_ids, record)[1]
    history.crash_point("record")
    history.clear_journal(run_dir)
    _prune(run_dir, store)
    return stored


def _prune(run_dir: Path, store: CaseStore) -> None:
    wanted = {sha for learn in store.recent_learns(history.KEEP_LEARNS) for sha in (
        learn.changes.weights_before, learn.changes.weights_after,
        learn.changes.understanding_before, learn.changes.understanding_after) if sha}
    history.prune(run_dir, wanted)


def append_log(run_dir: Path, entry: dict[str, Any]) -> None:
    with open(Path(run_dir) / LEARN_LOG, "a", encoding="utf-8") as f:
        f.write(json.dumps({"time": time.time(), **entry}) + "\n")


def undo_learn(run_dir: str | os.PathLike[str], store_target: str | None = None) -> UndoResult:
    """Restore the learned files from before the run's last learn, bit for bit, and mark the
    cases it trained on as not learned again (they stay in the store ``store_target``)."""
    run_dir = Path(run_dir)
    read_config(run_dir)  # a run directory, or a one-line error; its weights need not load (they may be the bad ones)
    with history.learn_lock(run_dir), CaseStore.for_run(run_dir, store_target) as store, store.learn_lock():
        recover(run_dir, store)
        last = store.last_learn()
        if last is None:
            raise BigramLMError(f"{run_dir} has no learn to undo")
        c = last.changes
        restores = [(name, before, after) for name, before, after in (
            (WEIGHTS, c.weights_before, c.weights_after), (UNDERSTANDING_FILE, c.understanding_before, c.understanding_after))
            if after]
        for name, before, after in restores:
            current = run_dir / name
            actual = sha256_of(current) if current.is_file() else None
            if actual not in (before, after):
                raise BigramLMError(f"{current} changed after the last learn (trained or replaced since?); nothing was undone")
        for name, before, _ in restores:
            if before is None:
                (run_dir / name).unlink(missing_ok=True)
            else:
                history.install(run_dir, name, before)
        unmarked = store.undo_learn(last.id)
    result = UndoResult(str(run_dir), last.id, unmarked, c.weights_before or c.understanding_before or "")
    append_log(run_dir, {"event": "undo", **result.to_dict()})
    return result

"""What a ``learn`` changes, written all or nothing, and ``learn --undo``.

Publishing stages the new weights and understanding in the run's history (by content,
``support.history``), keeps the versions they replace there too, writes the journal,
installs the new versions (one atomic rename each), and then, in one store transaction,
adds the file's cases, marks the cases trained on and records the learn with the
journal's token; the journal goes last. A kill at any instant leaves a journal that
``recover`` turns into the finished learn or into the run as it was, before the next
learn, undo or desk reload reads anything. Weights the learn gate refused
(``support.gate``) are not staged: the cases are stored, not marked.

``undo_learn`` takes back the newest learn that changed a learned file and was not undone
(``support.learn_chain``): it puts back both files from before it, bit for bit, and marks
its cases as not learned again; past a learn whose versions were pruned it goes back to
the trained files and takes back every learn at once. The cases stay in the store (and
the retrieval index), and the next ``learn`` without ``--cases`` trains on them again, so
the store always says truthfully which cases the weights include. An undo writes its
journal before it puts back any file and removes it after the store's marks: a kill in
between is finished, files and marks, by the next learn or undo. Learn and undo hold the
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
from bigramlm.support import history, learn_chain
from bigramlm.support.history import Change, Journal
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
    """Finish or roll back a learn, or finish an undo, that a kill interrupted (see
    ``support.history``); what was done (None: nothing to do)."""
    journal = history.read_journal(Path(run_dir))
    if journal is None:
        return None
    if journal.undoes:
        return _finish_undo(Path(run_dir), store, journal, interrupted=True).message
    return history.recover_learn(Path(run_dir), journal, store.learn_by_token(journal.token) is not None)


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
    journal = Journal(token, changes)
    history.write_journal(run_dir, journal)
    history.install_all(run_dir, journal)
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
    history.prune(run_dir, learn_chain.kept_versions(store.learn_chain(), learn_chain.KEEP_LEARNS))


def append_log(run_dir: Path, entry: dict[str, Any]) -> None:
    with open(Path(run_dir) / LEARN_LOG, "a", encoding="utf-8") as f:
        f.write(json.dumps({"time": time.time(), **entry}) + "\n")


def undo_learn(run_dir: str | os.PathLike[str], store_target: str | None = None) -> UndoResult:
    """Take back the run's newest learn (see the module docstring): restore the learned files
    from before it, bit for bit, and mark the cases it trained on as not learned again (they
    stay in the store ``store_target``). An undo a kill interrupted is finished instead."""
    run_dir = Path(run_dir)
    read_config(run_dir)  # a run directory, or a one-line error; its weights need not load (they may be the bad ones)
    with history.learn_lock(run_dir), CaseStore.for_run(run_dir, store_target) as store, store.learn_lock():
        pending = history.read_journal(run_dir)
        if pending is not None and pending.undoes:
            # The undo asked for is most likely that one (run again after the kill): finish it, no other.
            result = _finish_undo(run_dir, store, pending, interrupted=True)
        else:
            recover(run_dir, store)
            result = _finish_undo(run_dir, store, _start_undo(run_dir, store), interrupted=False)
    append_log(run_dir, {"event": "undo", **result.to_dict()})
    return result


def _start_undo(run_dir: Path, store: CaseStore) -> Journal:
    """Plan the undo of the newest learn, check the run's files are that learn's, and write
    the undo's journal; nothing is changed when it raises."""
    plan = learn_chain.plan_undo(store.learn_chain(), lambda name, sha: history.is_kept(run_dir, name, sha))
    if plan is None:
        raise BigramLMError(f"nothing to undo: {run_dir} has no learn left that changed its weights or understanding")
    changes = []
    for name, restore in plan.restores.items():
        current = run_dir / name
        actual = sha256_of(current) if current.is_file() else None
        if actual not in (restore, plan.current[name]):
            raise BigramLMError(f"{current} changed after the last learn (trained or replaced since?); nothing was undone")
        if restore is not None and not history.is_kept(run_dir, name, restore):
            raise BigramLMError(f"{run_dir / history.HISTORY_DIR} no longer keeps the trained version {restore[:12]} "
                                f"of {name}; nothing was undone")
        changes.append(Change(name, actual, restore))
    journal = Journal(uuid.uuid4().hex, changes, plan.learn_ids)
    history.write_journal(run_dir, journal)
    return journal


def _finish_undo(run_dir: Path, store: CaseStore, journal: Journal, interrupted: bool) -> UndoResult:
    """Put back the journal's files, then mark its learns undone and their cases not learned
    (the store ignores what it did already), then remove the journal."""
    history.install_all(run_dir, journal)
    unmarked = store.undo_learn(*journal.undoes)
    history.crash_point(journal.point("record"))
    history.clear_journal(run_dir)
    restored = {c.name: c.after for c in journal.changes}
    ids = list(journal.undoes)
    return UndoResult(str(run_dir), ids[-1], unmarked, restored.get(WEIGHTS) or restored.get(UNDERSTANDING_FILE) or "",
                      ids, _describe(ids, list(restored), unmarked, interrupted))


def _describe(ids: list[int], names: list[str], unmarked: int, interrupted: bool) -> str:
    """One line: what the undo took back, and (several learns at once) why."""
    files = " and ".join({WEIGHTS: "weights", UNDERSTANDING_FILE: "understanding"}.get(n, n) for n in names)
    if len(ids) == 1:
        what = f"restored the {files} from before learn {ids[0]}"
    else:  # only a plan past a pruned learn takes back several (``learn_chain.plan_undo``)
        what = (f"{history.HISTORY_DIR}/ keeps the versions of the last {learn_chain.KEEP_LEARNS} learns and the trained "
                f"ones: restored the trained {files}, taking back learns {ids[0]} to {ids[-1]} ({len(ids)} learns)")
    return f"{'finished an interrupted undo: ' if interrupted else ''}{what}; {unmarked} cases marked not learned"

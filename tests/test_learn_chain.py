"""The chain of learns not undone (``support.learn_chain``): which versions pruning keeps,
what an undo puts back, and the store's side of it (the chain, several learns undone in
one transaction, again without effect) on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest

from bigramlm.checkpoint import WEIGHTS
from bigramlm.data.cases import Case
from bigramlm.support.learn_chain import kept_versions, plan_undo, trained
from bigramlm.support.store import CaseStore, LearnChanges, LearnRecord
from bigramlm.support.understanding import UNDERSTANDING_FILE


def _learn(learn_id: int, weights: tuple[str, str] | None, understanding: tuple[str, str] | None = None) -> LearnRecord:
    w, u = weights or (None, None), understanding or (None, None)
    return LearnRecord(learn_id, 0.0, 0, LearnChanges(w[0], w[1], u[0], u[1]))


#: Weights w0 -> w1 -> ... -> w6, the understanding changed by learns 1 and 4 only.
CHAIN = [_learn(1, ("w0", "w1"), ("u0", "u1"))] + [_learn(k, (f"w{k - 1}", f"w{k}")) for k in (2, 3)] + \
        [_learn(4, ("w3", "w4"), ("u1", "u4"))] + [_learn(k, (f"w{k - 1}", f"w{k}")) for k in (5, 6)]


def test_pruning_keeps_the_newest_learns_versions_and_the_trained_ones():
    assert trained(CHAIN) == {WEIGHTS: "w0", UNDERSTANDING_FILE: "u0"}
    assert kept_versions(CHAIN, 2) == {"w4", "w5", "w6", "w0", "u0"}
    assert kept_versions(CHAIN, 3) == {"w3", "w4", "w5", "w6", "u1", "u4", "w0", "u0"}
    # A chain shorter than the number kept keeps all of it (not only its last learn).
    assert kept_versions(CHAIN[:3], 5) == {"w0", "w1", "w2", "w3", "u0", "u1"}


def test_an_undo_steps_back_one_learn_while_its_versions_are_kept_else_to_the_trained_ones():
    everything = {(name, sha) for learn in CHAIN for name, sha in (
        (WEIGHTS, learn.changes.weights_before), (UNDERSTANDING_FILE, learn.changes.understanding_before)) if sha}
    step = plan_undo(CHAIN, lambda name, sha: (name, sha) in everything)
    assert step is not None and (step.learn_ids, step.restores, step.current, step.to_trained) == (
        (6,), {WEIGHTS: "w5"}, {WEIGHTS: "w6"}, False)
    four = plan_undo(CHAIN[:4], lambda name, sha: (name, sha) in everything)
    assert four is not None and four.restores == {WEIGHTS: "w3", UNDERSTANDING_FILE: "u1"}
    # w3 pruned: undoing learn 4 goes back to the trained files, taking back learns 1 to 4.
    jump = plan_undo(CHAIN[:4], lambda name, sha: sha not in ("w3",))
    assert jump is not None and (jump.learn_ids, jump.restores, jump.current, jump.to_trained) == (
        (1, 2, 3, 4), {WEIGHTS: "w0", UNDERSTANDING_FILE: "u0"}, {WEIGHTS: "w4", UNDERSTANDING_FILE: "u4"}, True)
    assert plan_undo([], lambda name, sha: True) is None


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store_target(request, tmp_path: Path) -> str:
    return str(tmp_path / "cases.sqlite") if request.param == "sqlite" else request.getfixturevalue("pg_url")


def test_the_store_undoes_several_learns_at_once_and_again_changes_nothing(store_target):
    with CaseStore(store_target) as store:
        ids = [store.add_case(Case(f"message {i}", "reply", intent="track_order")) for i in range(6)]
        for k in range(3):
            store.record_learn([], ids[2 * k:2 * k + 2], LearnChanges(f"w{k}", f"w{k + 1}", token=f"t{k}"))
        store.record_learn([], [], LearnChanges(understanding_before="u0", understanding_after="u1"))
        assert [learn.id for learn in store.learn_chain()] == [1, 2, 3, 4]
        assert store.undo_learn(4) == 0 and store.undo_learn(4) == 0  # a refit of the understanding marks nothing
        assert store.undo_learn(2, 3) == 4 and len(store.cases_since_last_learn()) == 4
        assert store.undo_learn(2, 3) == 0 and [learn.id for learn in store.learn_chain()] == [1]
        assert store.desk_stats().last_learned_id == ids[1]
        assert store.undo_learn(1) == 2 and store.learn_chain() == [] and store.last_learn() is None

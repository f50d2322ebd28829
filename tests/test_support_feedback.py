"""Dismissed suggestions: how the store records them, the desk's figures, and the ranking
penalty for candidates that look like one."""

from __future__ import annotations

import sqlite3

import numpy as np
import pytest

from bigramlm.data.cases import Case
from bigramlm.support import chrf, ranking
from bigramlm.support.chrf import pairwise_chrf
from bigramlm.support.ranking import dismissal_penalty, max_similarity, penalized_scores
from bigramlm.support.store import SCHEMA_VERSION, CaseStore, StoredCase, SuggestionConflict, store_path

REPLIES = [
    "I understand you want to cancel order {{Order Number}}. Visit {{Website URL}} and choose Cancel.",
    "You can track order {{Order Number}} at {{Website URL}} under My Orders.",
    "I am sorry to hear that. Call {{Customer Support Phone Number}} and we will start your refund.",
    "Of course, I am connecting you with a human agent of {{Company Name}} now.",
    "aaaa aaaa bbbb aaaa",  # repeated n-grams: clipped counts above 1
    "Grüße aus Köln — 東京 🙂 ok",  # outside ASCII and the other texts' alphabet
    "",
    "   ",
]


def _expected(candidates: list[str], dismissed: list[str]) -> np.ndarray:
    """The highest sentence chrF in either direction, from chrf.pairwise_chrf (sacrebleu's figure)."""
    k = len(candidates)
    both = pairwise_chrf(candidates + dismissed) / 100
    return np.maximum(both[:k, k:], both[k:, :k].T).max(axis=1)


@pytest.mark.parametrize("budget", [0, 10**9])  # the sparse way and the dense way
def test_similarity_is_sentence_chrf_either_way(monkeypatch, budget):
    monkeypatch.setattr(chrf, "DENSE_BUDGET", budget)
    ranking._references.cache_clear()
    candidates = REPLIES + ["You can track order {{Order Number}} at {{Website URL}}.", "aaaa bbbb", "Köln 🙂"]
    for dismissed in (REPLIES[:4], REPLIES[4:], REPLIES, ["x"], ["", " "]):
        got = max_similarity(candidates, dismissed)
        assert got == pytest.approx(_expected(candidates, dismissed), abs=1e-9)


def test_penalty_is_one_for_a_dismissed_text_and_zero_for_another_intent():
    dismissed = [REPLIES[0]]
    reworded = REPLIES[0].replace("choose Cancel", "pick Cancel")
    penalties = dismissal_penalty([REPLIES[0], reworded, REPLIES[3], ""], dismissed)
    assert penalties[0] == 1.0 and penalties[1] == 1.0  # the text itself, and a light rewording of it
    assert penalties[2] == 0.0 and penalties[3] == 0.0  # another intent's reply; nothing at all
    half = dismissal_penalty([REPLIES[0][: len(REPLIES[0]) // 3]], dismissed)[0]
    assert 0.0 < half < 1.0  # a third of it: similar, but not the same reply
    assert dismissal_penalty(REPLIES, []) == [0.0] * len(REPLIES)
    assert dismissal_penalty([], dismissed) == []


def test_penalized_scores_push_dismissed_lookalikes_down():
    scores = [-1.0, -1.5, -2.0]
    assert penalized_scores(scores, [0.0, 0.0, 0.0]) == scores
    adjusted = penalized_scores(scores, [1.0, 0.0, 0.0])
    assert sorted(range(3), key=lambda i: -adjusted[i]) == [1, 2, 0]  # below every unpenalised one
    adjusted = penalized_scores(scores, [0.5, 0.0, 0.0])
    assert sorted(range(3), key=lambda i: -adjusted[i]) == [1, 0, 2]  # half the spread: -1.5 - ε
    assert penalized_scores([-1.0, -1.0], [1.0, 0.0])[0] < -1.0  # equal scores: still below
    assert penalized_scores([], []) == []
    with pytest.raises(ValueError):
        penalized_scores([1.0], [])


def _shown(store: CaseStore) -> None:
    store.record_suggestions([("a0", "Hello there", -1.0), ("a1", "Hi", -2.0), ("a2", "Hey you", -3.0)], request_id="ra")
    store.record_suggestions([("b0", "Yes", -1.0), ("b1", "No", -1.5)], request_id="rb")


def test_dismissals_are_stored_once_and_never_become_cases(tmp_path):
    with CaseStore.for_run(tmp_path) as store:
        _shown(store)
        assert store.dismiss_suggestion("nope") is None
        first = store.dismiss_suggestion("a1", reason="wrong intent")
        assert (first.suggestion_id, first.request_id, first.text, first.reason, first.created) == ("a1", "ra", "Hi", "wrong intent", True)
        again = store.dismiss_suggestion("a1", reason="other")
        assert again.id == first.id and again.created is False and again.reason == "wrong intent"
        with pytest.raises(SuggestionConflict, match="dismissed"):
            store.add_case(Case("m", "Hi"), suggestion_id="a1")
        with pytest.raises(SuggestionConflict):  # all or none: the good case of the batch is not stored either
            store.add_cases([StoredCase(Case("m", "Hello there"), suggestion_id="a0"),
                             StoredCase(Case("m", "Hi"), suggestion_id="a1")])
        assert store.count() == 0
        case_id = store.add_case(Case("m", "Hello there"), suggestion_id="a0")
        with pytest.raises(SuggestionConflict, match=f"case {case_id}"):
            store.dismiss_suggestion("a0")
        store.dismiss_suggestion("b1")
        assert store.dismissed_texts() == ["No", "Hi"] and store.dismissed_texts(limit=1) == ["No"]
        # "Hi" was dismissed as the wrong intent's reply: the text itself is not to blame.
        assert store.dismissed_texts(exclude_reasons=["wrong intent"]) == ["No"]
        # The accepted case waits for a learn; the dismissed texts are nowhere among the cases.
        assert [c.id for c in store.cases_since_last_learn()] == [case_id]
        assert {c.case.reply for c in store.list_cases(limit=10**9)} == {"Hello there"}


def test_stats_count_light_edits_and_dismissals(tmp_path):
    with CaseStore.for_run(tmp_path) as store:
        empty = store.desk_stats().to_dict()
        assert empty["dismissed"] == 0 and empty["dismissal_rate"] is None and empty["light_edit_acceptance_rate"] is None
        _shown(store)
        store.record_suggestions([("c0", "Maybe", -1.0)], request_id="rc")
        store.record_suggestions([("d0", "Sure", -1.0)], request_id="rd")
        store.add_case(Case("m", "Hello there"), suggestion_id="a0", edited=False, edit_distance=0.0)  # unedited: light
        store.add_case(Case("m", "Yes, done"), suggestion_id="b0", edited=True, edit_distance=0.39)  # light
        store.add_case(Case("m", "Perhaps not"), suggestion_id="c0", edited=True, edit_distance=0.4)  # not light
        store.add_case(Case("m", "Surely"), suggestion_id="d0", edited=True)  # edited, distance unknown: not light
        store.dismiss_suggestion("a1")
        store.dismiss_suggestion("a2")
        store.dismiss_suggestion("b1")
        s = store.desk_stats().to_dict()
    assert s["suggestion_requests"] == 4 and s["suggestions_shown"] == 7
    assert s["acceptance_rate"] == 1.0 and s["light_edit_acceptance_rate"] == 0.5
    assert s["dismissed"] == 3 and s["dismissal_rate"] == pytest.approx(3 / 7)
    assert s["accepted"] == 4 and s["accepted_edited"] == 3 and s["cases"] == 4


def test_version_2_store_is_migrated_in_place(tmp_path):
    path = store_path(tmp_path)
    with sqlite3.connect(path) as db:  # the version-2 schema, as the previous release wrote it
        db.executescript("""
            CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
            CREATE TABLE cases (id INTEGER PRIMARY KEY AUTOINCREMENT, created_at REAL NOT NULL, message TEXT NOT NULL,
                reply TEXT NOT NULL, intent TEXT, category TEXT, suggestion_id TEXT, edited INTEGER NOT NULL DEFAULT 0,
                edit_distance REAL, source TEXT NOT NULL DEFAULT 'desk', content_sha256 TEXT, learn_id INTEGER);
            CREATE TABLE suggestions (id TEXT PRIMARY KEY, request_id TEXT NOT NULL, created_at REAL NOT NULL,
                text TEXT NOT NULL, score REAL);
            CREATE TABLE learns (id INTEGER PRIMARY KEY AUTOINCREMENT, created_at REAL NOT NULL, cases INTEGER NOT NULL,
                weights_before TEXT, weights_after TEXT, undone_at REAL);
            INSERT INTO meta VALUES ('schema_version', '2'), ('last_learned_id', '1');
            INSERT INTO learns(created_at, cases) VALUES (0, 1);
            INSERT INTO suggestions VALUES ('s0', 'r0', 0, 'Shown one', -1.0), ('s1', 'r0', 0, 'Shown two', -2.0);
            INSERT INTO cases(created_at, message, reply, suggestion_id, learn_id) VALUES (0, 'a', 'Shown one', 's0', 1);
            INSERT INTO cases(created_at, message, reply) VALUES (0, 'b', 'rb');
        """)
    db.close()
    with CaseStore(path) as store:
        assert store.count() == 2 and [c.case.message for c in store.cases_since_last_learn()] == ["b"]
        assert store.desk_stats().to_dict()["acceptance_rate"] == 1.0 and store.desk_stats().to_dict()["dismissed"] == 0
        assert store.dismiss_suggestion("s1").text == "Shown two"
        with pytest.raises(SuggestionConflict):
            store.dismiss_suggestion("s0")
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0] == str(SCHEMA_VERSION)
        # Alembic's history took it on from its baseline (the legacy steps to 6, then 0007, 0008 and 0009).
        assert db.execute("SELECT version_num FROM alembic_version").fetchall() == [(f"{SCHEMA_VERSION:04d}",)]
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert db.execute("SELECT suggestion_id, request_id, action FROM feedback").fetchall() == [("s1", "r0", "dismiss")]
    db.close()
    with CaseStore(path) as again:  # opening a migrated store again changes nothing
        assert again.desk_stats().to_dict()["dismissed"] == 1 and again.integrity_check() == "ok"


def test_a_store_of_the_last_release_before_alembic_migrates_in_place(tmp_path):
    """Schema 6, as the last release wrote it (its own steps, ``support.store.legacy``), with
    rows in it: opening it runs Alembic from its baseline to 0007, and every row stays."""
    from sqlalchemy import create_engine

    from bigramlm.support.store import legacy

    path = store_path(tmp_path)
    engine = create_engine(f"sqlite:///{path}")
    with engine.begin() as conn:
        legacy.migrate(conn)
        conn.exec_driver_sql("INSERT INTO agents VALUES ('ann', 'digest', 0, NULL)")
        conn.exec_driver_sql("INSERT INTO suggestions(id, request_id, created_at, text, agent) VALUES ('s0', 'r0', 0, 'Hi', 'ann')")
        conn.exec_driver_sql("INSERT INTO cases(created_at, message, reply, suggestion_id, agent) VALUES (0, 'q', 'Hi', 's0', 'ann')")
    engine.dispose()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == 6
    db.close()
    with CaseStore(path) as store:
        assert store.desk_stats("ann").accepted == 1 and store.agents()[0].name == "ann"
        assert store.schema_version() == SCHEMA_VERSION
    with sqlite3.connect(path) as db:
        indexes = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
        assert {"cases_agent", "suggestions_agent", "feedback_agent"} <= indexes
        assert db.execute("SELECT version_num FROM alembic_version").fetchall() == [(f"{SCHEMA_VERSION:04d}",)]
    db.close()

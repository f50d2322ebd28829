"""The resolved-case store shared by the desk and ``learn``."""

from __future__ import annotations

import sqlite3
from concurrent.futures import ThreadPoolExecutor

import pytest

from bigramlm.data.cases import Case
from bigramlm.errors import BigramLMError
from bigramlm.support.store import CaseStore, LearnChanges, StoredCase, normalized_edit_distance, store_path


def _levenshtein(a: str, b: str) -> int:
    # The textbook recurrence, as an independent check of the vectorised one.
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


@pytest.mark.parametrize(
    "a,b",
    [("", ""), ("abc", ""), ("", "abc"), ("kitten", "sitting"), ("flaw", "lawn"), ("same", "same"),
     ("héllo wörld 🙂", "hello world"), ("abcdef", "azced"), ("a" * 30, "b" * 7)],
)
def test_normalized_edit_distance_matches_textbook(a, b):
    expected = 0.0 if a == b else _levenshtein(a, b) / max(len(a), len(b))
    assert normalized_edit_distance(a, b) == pytest.approx(expected)


def test_normalized_edit_distance_matches_textbook_on_random_replies():
    import random

    rng = random.Random(7)
    alphabet = "ab cdé🙂{}"
    for _ in range(300):
        a = "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 25)))
        b = "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 25)))
        expected = 0.0 if a == b else _levenshtein(a, b) / max(len(a), len(b))
        assert normalized_edit_distance(a, b) == pytest.approx(expected), (a, b)


def test_cases_roundtrip_paging_and_learn_mark(tmp_path):
    store = CaseStore.for_run(tmp_path)
    assert store.path == store_path(tmp_path)
    assert store.count() == 0 and store.cases_since_last_learn() == []
    ids = [store.add_case(Case(f"message {i}", f"reply {i}", intent="track_order", category="ORDER")) for i in range(5)]
    assert ids == sorted(ids) and store.count() == 5
    page = store.list_cases(offset=1, limit=2)
    assert [c.case.message for c in page] == ["message 1", "message 2"]
    assert page[0].case.intent == "track_order" and page[0].edited is False and page[0].case.source == "desk"
    assert page[0].to_dict()["message"] == "message 1" and store.list_cases(after_id=ids[3])[0].id == ids[4]
    assert len(store.cases_since_last_learn()) == 5
    store.record_learn([], ids[:3], LearnChanges("w0", "w1"))
    assert [c.id for c in store.cases_since_last_learn()] == ids[3:]
    store.record_learn([], ids[:1], LearnChanges("w1", "w2"))  # a learned case keeps its learn: the mark never moves back
    assert store.desk_stats().last_learned_id == ids[2] and store.last_learn().changes.weights_after == "w2"
    store.record_learn([], ids[3:], LearnChanges(understanding_before="u0", understanding_after="u1"))
    assert [c.id for c in store.cases_since_last_learn()] == ids[3:]  # no weights changed: nothing trained on
    more = store.add_cases([StoredCase(Case("m", "r"))] * 3)
    assert len(more) == 3 and store.count() == 8
    assert len(store.list_cases(limit=100)) == 8
    with pytest.raises(BigramLMError):
        store.add_cases([StoredCase(Case("ok", "ok")), StoredCase(Case(None, "x"))])  # type: ignore[arg-type]
    assert store.count() == 8  # all or none
    store.close()
    # A second store object (another process in real life) sees the same state.
    again = CaseStore(store_path(tmp_path))
    assert again.count() == 8 and again.desk_stats().last_learned_id == ids[2]
    assert again.integrity_check() == "ok"
    mode = sqlite3.connect(store_path(tmp_path)).execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


def test_stats_acceptance_and_edit_distance(tmp_path):
    store = CaseStore.for_run(tmp_path)
    empty = store.desk_stats().to_dict()
    assert empty["acceptance_rate"] is None and empty["mean_edit_distance"] is None
    store.record_suggestions([("r1:0", "Hello there", -1.0), ("r1:1", "Hi", -2.0)], request_id="r1")
    store.record_suggestions([("r2:0", "Yes", -1.0)], request_id="r2")
    assert store.get_suggestion("r1:1").text == "Hi"
    store.add_case(Case("m1", "Hello there"), suggestion_id="r1:0", edited=False, edit_distance=0.0)
    store.add_case(Case("m1", "typed by hand"))  # no suggestion: not an acceptance
    s = store.desk_stats().to_dict()
    assert s["suggestion_requests"] == 2 and s["accepted"] == 1
    assert s["acceptance_rate"] == pytest.approx(0.5)
    assert s["unedited_rate"] == 1.0 and s["mean_edit_distance"] == 0.0
    store.add_case(Case("m2", "Yes!"), suggestion_id="r2:0", edited=True, edit_distance=0.25)
    s = store.desk_stats().to_dict()
    assert s["acceptance_rate"] == 1.0 and s["accepted_edited"] == 1
    assert s["mean_edit_distance"] == pytest.approx(0.125)
    assert s["cases"] == 3 and s["cases_since_last_learn"] == 3


def test_threads_write_concurrently(tmp_path):
    store = CaseStore.for_run(tmp_path)

    def writer(k: int) -> None:
        for i in range(20):
            store.add_case(Case(f"t{k} m{i}", "r"))

    # The pool re-raises a writer's exception here, so a failure in any thread fails the test.
    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(writer, range(4)))
    assert store.count() == 80


def test_bad_store_paths(tmp_path):
    with pytest.raises(BigramLMError, match="no directory"):
        CaseStore(tmp_path / "missing" / "cases.sqlite")
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"this is not a database" * 100)
    with pytest.raises(BigramLMError, match="not a usable SQLite database|cannot open"):
        CaseStore(junk)


def test_the_schema_version_is_the_newest_migration():
    from bigramlm.support.store import SCHEMA_VERSION
    from bigramlm.support.store.database import _migrations

    head, known = _migrations()
    assert int(head) == SCHEMA_VERSION and {"0006", "0007"} <= known

"""Similar cases searched in the store's own engine (issue 30): SQLite FTS5, PostgreSQL pg_trgm.

A case is found by any other ``CaseStore`` on the same database (another desk) once its
write commits; the store's cases are re-scored in the train rows' TF-IDF space and merge
with the train rows; the desk's draft checks read the store's distinct texts, counted.
"""

from __future__ import annotations

import pytest

from bigramlm.data.cases import Case
from bigramlm.serve import desk
from bigramlm.serve.desk import Pace
from bigramlm.support.readability import RunText
from bigramlm.support.retrieval import CaseIndex, CaseSearch
from bigramlm.support.store import CaseStore

BASE = [
    Case("I want to cancel my order", "I can cancel it for you.", "cancel_order", "ORDER", id=0),
    Case("where is my package", "Your package is on its way.", "track_order", "ORDER", id=1),
    Case("I need a refund for a broken blender", "A refund is on its way.", "get_refund", "REFUND", id=2),
    Case("how do I change my shipping address", "Edit it under Account.", "change_address", "SHIPPING", id=3),
]
PARCEL = Case("my parcel is stuck in customs at the border", "Customs holds are released within 3 days.",
              "track_order", "ORDER")


def _search_on(target: str) -> None:
    with CaseStore(target) as desk_a, CaseStore(target) as desk_b:
        search = CaseSearch(CaseIndex(BASE), lambda: desk_b)
        question = "is my parcel still stuck in customs?"
        assert all(c.reply != PARCEL.reply for c, _ in search.search(question, 3))
        desk_a.add_case(PARCEL)  # accepted on the other desk
        found = search.search(question, 3)
        assert found[0][0].reply == PARCEL.reply and found[0][0].id is not None
        scores = [s for _, s in found]
        assert scores == sorted(scores, reverse=True) and 0 < scores[0] <= 1.0001
        # The cosine in the train rows' space, as when the case was added to their matrix.
        v = search.base.vectorizer
        assert found[0][1] == pytest.approx((v.transform([PARCEL.message]) @ v.transform([question]).T)[0, 0], abs=1e-6)
        # Restricted to an intent: only that intent's cases, from the store and the base.
        within = search.search_many([question], 3, within=["get_refund"])[0]
        assert within and {c.intent for c, _ in within} == {"get_refund"}
        # The base rows still answer where the store has nothing like the message.
        assert search.search("refund for a broken blender", 1)[0][0].id == 2


def test_a_case_stored_by_one_desk_is_found_by_another_on_sqlite(tmp_path):
    _search_on(str(tmp_path / "cases.sqlite"))


@pytest.mark.postgres
def test_a_case_stored_by_one_desk_is_found_by_another_on_postgresql(pg_url):
    _search_on(pg_url)


def test_grams_are_the_rarest_letter_trigrams():
    search = CaseSearch(CaseIndex(BASE))
    grams = search.grams("Cancel order 5521, the blender!")
    assert grams and all(len(g) == 3 and g.isalpha() and g.islower() for g, _ in grams)
    weights = [w for _, w in grams]
    assert weights == sorted(weights, reverse=True) and search.grams("12 ok") == []


def test_the_store_texts_are_read_with_replies_counted(tmp_path):
    with CaseStore(tmp_path / "cases.sqlite") as store:
        first = store.add_case(PARCEL)
        for i in range(3):
            store.add_case(Case(f"{PARCEL.message} ({i})", PARCEL.reply, "track_order"))
        texts = store.case_texts(0)
        assert texts.last_id == first + 3 and texts.replies == [(PARCEL.reply, 4)] and len(texts.messages) == 4
        assert store.case_texts(texts.last_id).messages == []
        newest = store.case_texts(0, newest=2)  # only the newest cases' texts are read
        assert newest.last_id == texts.last_id and newest.messages == texts.messages[-2:]
        assert newest.replies == [(PARCEL.reply, 2)]
    counted, one_by_one = RunText.of(BASE), RunText.of(BASE)
    counted.add_texts(texts.messages, texts.replies)
    one_by_one.add([Case(m, PARCEL.reply) for m in texts.messages])  # the 4 cases, one by one
    assert counted.vocabulary.known == one_by_one.vocabulary.known
    assert counted.fluency is not None and one_by_one.fluency is not None
    assert counted.fluency.score("Customs holds are released") == one_by_one.fluency.score("Customs holds are released")
    paced, pauses = RunText.of(BASE), []
    paced.add_texts(texts.messages, texts.replies, pause=lambda: pauses.append(1))  # a background reader's pace
    assert pauses and paced.vocabulary.known == counted.vocabulary.known
    assert paced.fluency is not None and paced.fluency.score("Customs holds are released") == counted.fluency.score("Customs holds are released")


def test_a_pace_sleeps_once_its_work_has_run_long_enough(monkeypatch):
    slept: list[float] = []
    monkeypatch.setattr(desk.time, "sleep", slept.append)
    pace = Pace(busy_s=0.05, idle_s=0.01)
    pace()
    assert slept == []  # not busy long enough yet
    pace._since -= 0.06
    pace()
    assert slept == [0.01]


def _only_the_newest_matches_are_ranked(target: str, monkeypatch) -> None:
    """A search ranks the newest ``WINDOW`` matches (on PostgreSQL: the newest
    ``POSTGRESQL_WINDOW`` cases) only, so its cost does not grow with the store: an older,
    better match falls outside the window; within it, the best comes first."""
    from bigramlm.support.store import search

    monkeypatch.setattr(search, "WINDOW", 2)
    monkeypatch.setattr(search, "POSTGRESQL_WINDOW", 2)
    with CaseStore(target) as store:
        best = store.add_case(Case("parcel stuck in customs", "Customs holds clear in 3 days.", "track_order", "ORDER"))
        store.add_case(Case("my parcel is late", "It ships soon.", "track_order", "ORDER"))
        store.add_case(Case("a parcel for my mum", "We can gift-wrap it.", "place_order", "ORDER"))
        grams = [("rce", 1.0), ("cus", 2.0), ("sto", 2.0)]
        found = store.similar(grams, 5)
        assert {c.case.message for c in found} == {"a parcel for my mum", "my parcel is late"}
        monkeypatch.setattr(search, "WINDOW", 10)
        monkeypatch.setattr(search, "POSTGRESQL_WINDOW", 10)
        assert store.similar(grams, 5)[0].case.id == best  # all three ranked: the best first


def test_only_the_newest_matches_are_ranked_on_sqlite(tmp_path, monkeypatch):
    _only_the_newest_matches_are_ranked(str(tmp_path / "cases.sqlite"), monkeypatch)


@pytest.mark.postgres
def test_only_the_newest_matches_are_ranked_on_postgresql(pg_url, monkeypatch):
    _only_the_newest_matches_are_ranked(pg_url, monkeypatch)


@pytest.mark.postgres
def test_postgresql_windows_the_newest_cases_not_the_newest_matches(pg_url, monkeypatch):
    """PostgreSQL tests the newest ``POSTGRESQL_WINDOW`` cases, matching or not (it cannot walk
    its GIN index newest first): a newer case on another subject takes a place in the window."""
    from bigramlm.support.store import search

    monkeypatch.setattr(search, "POSTGRESQL_WINDOW", 2)
    with CaseStore(pg_url) as store:
        store.add_case(Case("parcel stuck in customs", "Customs holds clear in 3 days.", "track_order", "ORDER"))
        late = store.add_case(Case("my parcel is late", "It ships soon.", "track_order", "ORDER"))
        store.add_case(Case("how do I reset my password", "Use the login page.", "recover_password", "ACCOUNT"))
        grams = [("rce", 1.0), ("cus", 2.0), ("sto", 2.0)]
        assert [c.case.id for c in store.similar(grams, 5)] == [late]
        assert [c.case.id for c in store.similar(grams, 5, "recover_password")] == []


def test_a_pace_waits_while_requests_are_in_hand_but_not_for_ever(monkeypatch):
    slept: list[float] = []
    monkeypatch.setattr(desk.time, "sleep", slept.append)
    pace = Pace(busy_s=0.0, idle_s=0.01, serving=lambda: True, wait_s=0.05)
    pace()
    assert len(slept) == 5  # idle_s, then more while serving, up to wait_s in all
    slept.clear()
    Pace(busy_s=0.0, idle_s=0.01, serving=lambda: False)()
    assert slept == [0.01]

"""The desk and the team's store (issue 30): the desk serves while it reads the store's texts
behind it, keeps no copy of its cases, and shows a case another desk stored at its next request."""

from __future__ import annotations

import threading

from fastapi.testclient import TestClient

from bigramlm.data.cases import Case
from bigramlm.data.run_files import InstructionRunFiles
from bigramlm.serve.app import create_app
from bigramlm.support.store import CaseStore
from desk_helpers import train_support_run

CUSTOMS = Case("my zorblax parcel is stuck in customs at the border", "Customs holds are released within 3 days.",
               "track_order", "ORDER")


def test_the_desk_reads_the_store_at_start_and_finds_another_desks_case_at_once(tmp_path):
    run = train_support_run(tmp_path)
    with CaseStore.for_run(run) as other_desk:
        stored = [other_desk.add_case(Case(f"where is parcel {i}?", f"Parcel {i} ships today.", "track_order"))
                  for i in range(3)]
        app = create_app(run)
        assistant = app.state.desk.assistant
        # Read at start (its words, for the draft checks), not at the first request.
        assert app.state.desk.store_texts_read.wait(60)
        assert assistant._store_seen == stored[-1] and "ships" in assistant.reading.vocabulary.known
        train_rows = InstructionRunFiles.load(run).train_rows
        assert len(assistant.index) == len(train_rows)  # no copy of the store's cases in the desk
        with TestClient(app) as client:
            case_id = other_desk.add_case(CUSTOMS)  # accepted on another desk
            body = client.post("/api/suggest", json={"message": "zorblax parcel stuck in customs", "n": 1,
                                                     "max_new_tokens": 4}).json()
            assert body["similar_cases"][0]["id"] == case_id and body["similar_cases"][0]["reply"] == CUSTOMS.reply


def test_the_desk_answers_suggestions_while_it_reads_the_store(tmp_path, monkeypatch):
    """A large store's texts take seconds to read (10.6 s at 1,000,000 cases): the desk serves
    meanwhile, /healthz says it is still reading them, and they are read once it is done."""
    run = train_support_run(tmp_path)
    with CaseStore.for_run(run) as other_desk:
        last = other_desk.add_case(Case("where is my zorblax parcel?", "Your zorblax parcel ships today.", "track_order"))
    release, reading = threading.Event(), threading.Event()
    slow_read = CaseStore.case_texts

    def held(store, after_id=0):
        if after_id == 0:  # the start's read: held until the test lets it go
            reading.set()
            assert release.wait(60)
        return slow_read(store, after_id)

    monkeypatch.setattr(CaseStore, "case_texts", held)
    app = create_app(run)
    desk = app.state.desk
    try:
        with TestClient(app) as client:
            assert reading.wait(60)
            assert client.get("/healthz").json()["store_texts"] == "reading"
            answered = client.post("/api/suggest", json={"message": "where is my parcel", "n": 1, "max_new_tokens": 4})
            assert answered.status_code == 200 and answered.json()["suggestions"]
            assert desk.assistant._store_seen == 0  # the request did not wait for the read
            release.set()
            assert desk.store_texts_read.wait(60)
            assert client.get("/healthz").json()["store_texts"] == "read"
            assert desk.assistant._store_seen == last and "zorblax" in desk.assistant.reading.vocabulary.known
    finally:
        release.set()


def test_the_desk_reads_the_edit_rules_before_it_serves(tmp_path):
    """The first read of the store's accepts (0.52 s at 1,000,000 cases) is done while the desk
    loads, not by its first request (``Assistant.warm``)."""
    run = train_support_run(tmp_path)
    with CaseStore.for_run(run) as store:
        last = store.add_case(Case("where is my zorblax parcel?", "Your zorblax parcel ships today.", "track_order"))
    app = create_app(run)
    with TestClient(app):
        assert app.state.desk.assistant.rulebook._seen == last

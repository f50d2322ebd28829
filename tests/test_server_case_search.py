"""The desk and the team's store (issue 30): the desk reads the store before it serves,
keeps no copy of its cases, and shows a case another desk stored at its next request."""

from __future__ import annotations

from fastapi.testclient import TestClient

from bigramlm.data.cases import Case
from bigramlm.data.run_files import InstructionRunFiles
from bigramlm.serve.app import create_app
from bigramlm.support.store import CaseStore
from desk_helpers import train_support_run

CUSTOMS = Case("my zorblax parcel is stuck in customs at the border", "Customs holds are released within 3 days.",
               "track_order", "ORDER")


def test_the_desk_reads_the_store_before_serving_and_finds_another_desks_case_at_once(tmp_path):
    run = train_support_run(tmp_path)
    with CaseStore.for_run(run) as other_desk:
        stored = [other_desk.add_case(Case(f"where is parcel {i}?", f"Parcel {i} ships today.", "track_order"))
                  for i in range(3)]
        app = create_app(run)
        assistant = app.state.desk.assistant
        # Read before the app serves (its words, for the draft checks), not at the first request.
        assert assistant._store_seen == stored[-1] and "ships" in assistant.reading.vocabulary.known
        train_rows = InstructionRunFiles.load(run).train_rows
        assert len(assistant.index) == len(train_rows)  # no copy of the store's cases in the desk
        with TestClient(app) as client:
            case_id = other_desk.add_case(CUSTOMS)  # accepted on another desk
            body = client.post("/api/suggest", json={"message": "zorblax parcel stuck in customs", "n": 1,
                                                     "max_new_tokens": 4}).json()
            assert body["similar_cases"][0]["id"] == case_id and body["similar_cases"][0]["reply"] == CUSTOMS.reply

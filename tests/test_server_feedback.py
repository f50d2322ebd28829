"""``POST /api/feedback``: agents dismiss suggestions; the store keeps it, the figures count it."""

from __future__ import annotations

import time

import pytest
from fastapi.testclient import TestClient

from bigramlm.serve.app import create_app
from bigramlm.serve.limits import ServerLimits
from desk_helpers import train_support_run


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    run = train_support_run(tmp_path_factory.mktemp("desk-feedback"))
    with TestClient(create_app(run, limits=ServerLimits(max_reason_chars=40))) as c:
        yield c


def _suggest(client, message: str) -> dict:
    r = client.post("/api/suggest", json={"message": message, "n": 3, "seed": 5, "max_new_tokens": 40})
    assert r.status_code == 200, r.text
    return r.json()


def test_dismiss_is_stored_counted_and_refuses_acceptance(client):
    s0 = client.get("/api/stats").json()
    result = _suggest(client, "where is my package")
    shown = result["suggestions"]
    assert len(shown) >= 2
    before = time.time()
    r = client.post("/api/feedback", json={"suggestion_id": shown[0]["id"], "action": "dismiss", "reason": "wrong intent"})
    assert r.status_code == 201, r.text
    saved = r.json()
    assert saved["suggestion_id"] == shown[0]["id"] and saved["request_id"] == result["request_id"]
    assert saved["action"] == "dismiss" and saved["reason"] == "wrong intent" and saved["created"] is True
    assert before - 1 <= saved["created_at"] <= time.time() + 1
    # The store has it: the suggestion's text, its request, the time.
    store = client.app.state.desk.store
    assert store.dismissed_texts()[0] == shown[0]["filled_text"]

    again = client.post("/api/feedback", json={"suggestion_id": shown[0]["id"], "action": "dismiss"})
    assert again.status_code == 200 and again.json()["id"] == saved["id"] and again.json()["created"] is False

    # A dismissed suggestion cannot be accepted; another of the same request can.
    r = client.post("/api/cases", json={"message": "where is my package", "reply": shown[0]["filled_text"],
                                        "suggestion_id": shown[0]["id"]})
    assert r.status_code == 409 and "dismissed" in r.json()["detail"]
    r = client.post("/api/cases", json={"message": "where is my package", "reply": shown[1]["filled_text"],
                                        "suggestion_id": shown[1]["id"]})
    assert r.status_code == 201
    # ... and an accepted one cannot be dismissed.
    r = client.post("/api/feedback", json={"suggestion_id": shown[1]["id"], "action": "dismiss"})
    assert r.status_code == 409 and "accepted" in r.json()["detail"]

    s1 = client.get("/api/stats").json()
    assert s1["dismissed"] == s0["dismissed"] + 1
    assert s1["suggestions_shown"] == s0["suggestions_shown"] + len(shown)
    assert s1["dismissal_rate"] == pytest.approx(s1["dismissed"] / s1["suggestions_shown"])
    assert s1["cases"] == s0["cases"] + 1 and s1["accepted"] == s0["accepted"] + 1
    assert s1["light_edit_acceptance_rate"] is not None and s1["light_edit_acceptance_rate"] <= s1["acceptance_rate"]
    assert all(c.case.reply != shown[0]["filled_text"] for c in store.list_cases(limit=10**9))


def test_unknown_suggestion_is_404(client):
    r = client.post("/api/feedback", json={"suggestion_id": "never-shown", "action": "dismiss"})
    assert r.status_code == 404 and "never-shown" in r.json()["detail"]


@pytest.mark.parametrize("body,field", [
    ({"action": "dismiss"}, "suggestion_id"),
    ({"suggestion_id": "", "action": "dismiss"}, "suggestion_id"),
    ({"suggestion_id": "x" * 201, "action": "dismiss"}, "suggestion_id"),
    ({"suggestion_id": "x", "action": "like"}, "action"),
    ({"suggestion_id": "x"}, "action"),
    ({"suggestion_id": "x", "action": "dismiss", "reason": "r" * 41}, "reason"),
    ({"suggestion_id": "x", "action": "dismiss", "score": 1}, "score"),
])
def test_feedback_bounds(client, body, field):
    r = client.post("/api/feedback", json=body)
    assert r.status_code == 422 and r.json()["field"] == field, r.text


def test_schema_shows_the_route_its_bounds_and_the_new_figures(client):
    schema = client.get("/openapi.json").json()
    assert "/api/feedback" in schema["paths"]
    props = schema["components"]["schemas"]["FeedbackRequest"]["properties"]
    assert props["reason"]["anyOf"][0]["maxLength"] == 40
    stats = schema["components"]["schemas"]["StoreStats"]["properties"]
    assert {"acceptance_rate", "light_edit_acceptance_rate", "dismissed", "dismissal_rate"} <= set(stats)

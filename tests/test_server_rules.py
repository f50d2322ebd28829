"""Team edits through the desk's own path: suggest, edit, accept with the suggestion's id;
the edit becomes a rule on the next suggestion of that intent, for no other intent, and
agents can switch it off and on (``/api/rules``, ``bigramlm rules``)."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from bigramlm.cli import main
from bigramlm.serve.app import create_app
from desk_helpers import train_support_run

SIGN_OFF = "Warm regards, the Acme Care Team."


@pytest.fixture
def desk(tmp_path):
    run = train_support_run(tmp_path)
    with TestClient(create_app(run)) as client:
        yield client, run


def _suggest(client: TestClient, message: str, intent: str | None = None) -> dict:
    body = {"message": message, "n": 2, "seed": 1, "max_new_tokens": 30, **({"intent": intent} if intent else {})}
    r = client.post("/api/suggest", json=body)
    assert r.status_code == 200, r.text
    return r.json()


def _accept_with_sign_off(client: TestClient, message: str) -> dict:
    result = _suggest(client, message)
    top = result["suggestions"][0]
    sent = top["filled_text"].removesuffix("\n\n" + SIGN_OFF) + "\n\n" + SIGN_OFF
    r = client.post("/api/cases", json={"message": message, "reply": sent, "suggestion_id": top["id"],
                                        "intent": result["intent"], "category": result["category"]})
    assert r.status_code == 201, r.text
    return result


def test_a_repeated_edit_is_carried_at_once_for_its_intent_only(desk, capsys):
    client, run = desk
    messages = ["where is my package", "track my order please", "my order has not arrived"]
    for message in messages[:2]:
        _accept_with_sign_off(client, message)
    # Two edits make no rule yet (a resolved reply may carry the sign-off: the accepted case itself).
    assert not any(s["team_edits"] for s in _suggest(client, "where is my package")["suggestions"])
    _accept_with_sign_off(client, messages[2])
    after = _suggest(client, "when will my order arrive")
    assert after["intent"] == "track_order"
    assert all(s["filled_text"].endswith(SIGN_OFF) for s in after["suggestions"])
    (rule,) = client.get("/api/rules").json()["rules"]
    assert "adds 'Warm regards, the Acme Care Team.'" in rule["description"] and "in 3 accepted replies" in rule["description"]
    # A suggestion that lacked it says the team edit added it (a resolved reply may have had it already).
    made = [e for s in after["suggestions"] for e in s["team_edits"]]
    assert all(e["id"] == rule["id"] for e in made)
    assert any(not s["base_text"].endswith(SIGN_OFF) for s in after["suggestions"]) == bool(made)
    other = _suggest(client, "I want my money back", intent="get_refund")  # the agent picks the intent
    assert other["intent"] == "get_refund" and other["intent_method"] == "picked-by-agent"
    assert not any(s["team_edits"] or s["filled_text"].endswith(SIGN_OFF) for s in other["suggestions"])  # no spill-over
    assert client.post("/api/suggest", json={"message": "hi", "intent": "no_such_intent"}).status_code == 422

    assert rule["scope"] == "track_order" and rule["enabled"] is True
    assert client.post(f"/api/rules/{rule['id']}/disable", json={}).status_code == 200
    assert not any(s["team_edits"] for s in _suggest(client, "when will my order arrive")["suggestions"])
    assert client.post(f"/api/rules/{rule['id']}/nope", json={}).status_code == 404
    assert client.post("/api/rules/0000/enable", json={}).status_code == 404

    # The CLI sees the same rules and switches them for every desk on the store.
    assert main(["rules", str(run), "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)["rules"]
    assert [(r["id"], r["enabled"]) for r in listed] == [(rule["id"], False)]
    assert main(["rules", str(run), "enable", rule["id"]]) == 0
    capsys.readouterr()
    assert client.get("/api/rules").json()["rules"][0]["enabled"] is True
    assert main(["rules", str(run), "disable", "nosuchrule"]) == 2
    assert capsys.readouterr().err.startswith("error: no rule with id")


def test_an_accept_of_the_rule_own_output_keeps_the_rule(desk):
    client, _ = desk
    for message in ["where is my package", "track my order please", "my order has not arrived"]:
        _accept_with_sign_off(client, message)
    # Five more accepts, sent as suggested: they carry the sign-off the rule added.
    for message in ["when will my order arrive", "where is my package", "track my order please",
                    "my order has not arrived", "where is my package"]:
        result = _suggest(client, message)
        top = result["suggestions"][0]
        assert top["filled_text"].endswith(SIGN_OFF)
        client.post("/api/cases", json={"message": message, "reply": top["filled_text"], "suggestion_id": top["id"],
                                        "intent": result["intent"]})
    (rule,) = client.get("/api/rules").json()["rules"]
    assert rule["support"] >= 3 and rule["enabled"]

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


EVIL = " Please confirm your card at http://evil.example/pay"
#: Three messages of each intent; the tiny run's model understands most as track_order, so
#: the agent picks the intent, as on the desk.
MESSAGES = {"track_order": ("where is my package", "track my order please", "my order has not arrived"),
            "get_refund": ("I want my money back", "how do I get a refund", "refund my payment please"),
            "cancel_order": ("please cancel my purchase", "cancel my last order now", "how can I cancel the order I made"),
            "contact_human_agent": ("let me talk to a person", "I need a human agent", "can I speak with someone")}


def _suggest_as(client: TestClient, message: str, intent: str | None = None, headers: dict | None = None) -> dict:
    body = {"message": message, "n": 2, "seed": 1, "max_new_tokens": 30, **({"intent": intent} if intent else {})}
    r = client.post("/api/suggest", json=body, headers=headers)
    assert r.status_code == 200, r.text
    return r.json()


def _accept_each(client: TestClient, intents: list[str], add: str, headers: dict | None = None,
                 said: str | None = None) -> None:
    """For each message of each intent: suggest (the intent picked), then accept the first
    suggestion that lacks ``add`` (else the top one) with it appended, the case saying it is
    of ``said`` (else its intent)."""
    for intent in intents:
        for message in MESSAGES[intent]:
            shown = _suggest_as(client, message, intent, headers)["suggestions"]
            top = next((s for s in shown if add.strip() not in s["filled_text"]), shown[0])
            r = client.post("/api/cases", headers=headers, json={
                "message": message, "reply": top["filled_text"].removesuffix(add) + add, "suggestion_id": top["id"],
                "intent": said or intent})
            assert r.status_code == 201, r.text


def _carried(client: TestClient, text: str, headers: dict | None = None, by_rules: bool = False) -> set[str]:
    """The intents with a suggestion holding ``text`` (``by_rules``: that a rule gave it)."""
    return {intent for intent, messages in MESSAGES.items() for s in _suggest_as(client, messages[0], intent, headers)["suggestions"]
            if text in s["filled_text"] and not (by_rules and text in s["base_text"])}


def test_accepts_of_made_up_intents_make_no_rule_and_a_link_waits_for_an_agent(desk):
    """Issue 27, finding 4: one client accepted a line with a link as three made-up intents,
    and every suggestion of every intent, and /v1/chat/completions, carried it."""
    client, _ = desk
    for said in ("zz_a", "zz_b", "zz_c"):
        _accept_each(client, ["track_order"], EVIL, said=said)
    assert client.get("/api/rules").json()["rules"] == []
    shown = [s["filled_text"] for intent, messages in MESSAGES.items() for s in _suggest_as(client, messages[0], intent)["suggestions"]]
    chat = client.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "where is my package"}]})
    assert not any("evil.example" in text for text in shown + [chat.json()["choices"][0]["message"]["content"]])

    # The same line, accepted three times in each of three intents the run knows.
    _accept_each(client, ["track_order", "get_refund", "cancel_order"], EVIL)
    rules = client.get("/api/rules").json()["rules"]
    # A rule for each intent (one client is not several agents), each off, waiting for an agent.
    assert sorted(r["scope"] for r in rules) == ["cancel_order", "get_refund", "track_order"]
    assert all(not r["enabled"] and r["unreviewed"] and "http://evil.example/pay" in r["review"] for r in rules)
    assert _carried(client, EVIL.strip(), by_rules=True) == set()

    # An agent who enables one gets it on that intent only, and it is no longer new.
    track = next(r for r in rules if r["scope"] == "track_order")
    assert client.post(f"/api/rules/{track['id']}/enable", json={}).status_code == 200
    after = {r["id"]: r for r in client.get("/api/rules").json()["rules"]}
    assert after[track["id"]]["enabled"] and not after[track["id"]]["unreviewed"]
    assert _carried(client, EVIL.strip(), by_rules=True) == {"track_order"}
    assert all(s["filled_text"].endswith(EVIL.strip()) for s in _suggest_as(client, "when will my order arrive", "track_order")["suggestions"])


@pytest.fixture
def team(tmp_path, capsys):
    """A desk whose agents ann and bo have tokens."""
    run = train_support_run(tmp_path)
    tokens = {}
    for name in ("ann", "bo"):
        assert main(["agents", "add", name, str(run)]) == 0
        tokens[name] = {"Authorization": f"Bearer {capsys.readouterr().out.strip()}"}
    with TestClient(create_app(run)) as client:
        yield client, tokens


def test_a_rule_for_every_intent_needs_two_agents_who_made_the_edit(team):
    client, auth = team
    line = " Thanks for your patience, the Acme Care Team."
    _accept_each(client, ["track_order", "get_refund", "cancel_order"], line, auth["ann"])
    rules = client.get("/api/rules", headers=auth["ann"]).json()["rules"]
    # Three intents, one agent: three rules of their own, on at once (no link), new to the team.
    assert sorted(r["scope"] for r in rules) == ["cancel_order", "get_refund", "track_order"]
    assert all(r["enabled"] and r["unreviewed"] and r["agents"] == ["ann"] and r["review"] is None for r in rules)
    assert _carried(client, line.strip(), auth["bo"]) == {"cancel_order", "get_refund", "track_order"}
    # Bo accepting what a rule made already is no second opinion ...
    _accept_each(client, ["track_order"], line, auth["bo"])
    assert all(r["scope"] != "*" for r in client.get("/api/rules", headers=auth["bo"]).json()["rules"])
    assert "contact_human_agent" not in _carried(client, line.strip(), auth["bo"])
    # ... bo making the edit himself (with the rule off) is one: then it is for every intent.
    cancel = next(r["id"] for r in rules if r["scope"] == "cancel_order")
    assert client.post(f"/api/rules/{cancel}/disable", json={}, headers=auth["bo"]).status_code == 200
    _accept_each(client, ["cancel_order"], line, auth["bo"])
    (every,) = [r for r in client.get("/api/rules", headers=auth["bo"]).json()["rules"] if r["scope"] == "*"]
    assert every["agents"] == ["ann", "bo"] and every["enabled"] and every["unreviewed"]
    assert "contact_human_agent" in _carried(client, line.strip(), auth["ann"], by_rules=True)

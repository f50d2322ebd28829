"""Conversations as one typed form (data.conversation), read with their thread (support.thread),
stored as resolved cases with their source (support.store.conversations)."""

from __future__ import annotations

import pytest

from bigramlm.data.cases import Case
from bigramlm.data.conversation import Turn, conversation, from_dict, parse_transcript
from bigramlm.errors import BigramLMError
from bigramlm.support.results import Understanding
from bigramlm.support.store import CaseStore, StoredCase
from bigramlm.support.thread import read_thread, thread_values


def thread(*turns: tuple[str, str]) -> "conversation":
    return conversation("c-1", "test", [Turn(role, text) for role, text in turns])


def test_chatwoots_message_history_reads_as_turns():
    prompt = ("Message History:\nUser: hi there\nSupport Agent: Hello! How can I help?\nBot: An agent will be with you\n"
              "User: I want to cancel order 5521\nit was a mistake\n")
    turns = parse_transcript(prompt)
    assert [t.role for t in turns] == ["customer", "agent", "bot", "customer"]
    assert turns[-1].text == "I want to cancel order 5521\nit was a mistake"
    assert parse_transcript("Customer: where is it\nAgent: on its way") == [Turn("customer", "where is it"),
                                                                           Turn("agent", "on its way")]


def test_a_suggestion_is_stale_once_a_newer_customer_turn_or_an_agent_reply_comes():
    conv = thread(("customer", "hello"), ("customer", "cancel my order"))
    turn = conv.latest_customer()
    assert turn == 1 and not conv.stale(turn)
    assert not conv.with_turn(Turn("note", "checking with billing")).stale(turn)  # a private note answers nothing
    assert conv.with_turn(Turn("agent", "done")).stale(turn)
    assert conv.with_turn(Turn("customer", "order 5521")).stale(turn)


def test_bad_conversations_are_refused_naming_the_field():
    with pytest.raises(BigramLMError, match="role 'admin'") as info:
        from_dict({"id": "1", "source": "chatwoot", "turns": [{"role": "admin", "text": "x"}]})
    assert info.value.param == "turns"
    with pytest.raises(BigramLMError, match="turns must be a list"):
        from_dict({"id": "1", "source": "chatwoot", "turns": "hello"})
    with pytest.raises(BigramLMError, match="id and a source"):
        from_dict({"id": "", "source": "chatwoot", "turns": []})
    conv = from_dict({"id": "7", "source": "rt", "turns": [{"role": "customer", "text": "hi", "time": 5, "id": 3}]})
    assert conv.turns == (Turn("customer", "hi", 5.0, "3"),) and from_dict(conv.to_dict()) == conv


def understood(probability: float) -> Understanding:
    return Understanding("cancel_order", "ORDER", probability, "test")


def test_a_short_or_unsure_turn_is_read_after_the_customers_earlier_turns():
    conv = thread(("customer", "I want to cancel order 5521"), ("agent", "Which one?"), ("customer", "yes, that one"))
    request = read_thread(conv, lambda text: understood(0.99))
    assert request.turn == 2 and request.with_context
    assert request.message == "I want to cancel order 5521\nyes, that one" and request.values == {"Order Number": "5521"}
    clear = thread(("customer", "hello"), ("customer", "I would like to get a refund for my last purchase please"))
    assert read_thread(clear, lambda text: understood(0.9)).message == clear.turns[-1].text
    assert read_thread(clear, lambda text: understood(0.2)).with_context  # unsure alone
    with pytest.raises(BigramLMError, match="no customer turn"):
        read_thread(thread(("agent", "hi")), lambda text: understood(1.0))


def test_a_later_turn_states_the_value_that_counts():
    conv = thread(("customer", "cancel order 1111"), ("customer", "sorry, I meant order 2222, mail me at a@b.io"),
                  ("note", "order 3333 is the wrong one"))
    assert thread_values(conv)["Order Number"] == "2222" and thread_values(conv)["Email Address"] == "a@b.io"


def test_a_resolved_conversation_is_one_case_with_its_source(tmp_path):
    store = CaseStore(tmp_path / "cases.sqlite")
    conv = conversation("42", "chatwoot", [Turn("customer", "cancel order 5521"), Turn("agent", "Cancelled.")])
    case = StoredCase(Case("cancel order 5521", "Cancelled.", "cancel_order", None, "helpdesk"))
    case_id, new = store.add_conversation_case(conv, case)
    again, new_again = store.add_conversation_case(conv, case)
    assert new and not new_again and again == case_id and store.count() == 1
    source = store.conversation_source(case_id)
    assert source is not None and (source.helpdesk, source.conversation_id) == ("chatwoot", "42")
    assert store.claim_delivery("chatwoot", "m-1") and not store.claim_delivery("chatwoot", "m-1")
    store.release_delivery("chatwoot", "m-1")
    assert store.claim_delivery("chatwoot", "m-1")


def test_the_assistant_answers_the_latest_turn_with_the_threads_values(tmp_path):
    from desk_helpers import train_support_run

    from bigramlm.support.assistant import Assistant
    from bigramlm.support.settings import SuggestSettings
    from bigramlm.support.thread import suggest_thread

    assistant = Assistant.load(train_support_run(tmp_path))
    conv = thread(("customer", "I want to cancel order 5521"), ("agent", "Sure, which order?"), ("customer", "yes, that one"))
    answer = suggest_thread(assistant, conv, SuggestSettings(n=3, seed=1, max_new_tokens=120))
    assert answer.request.with_context  # the tiny test run reads intents poorly: the real run, benchmarks/helpdesk.py
    filled = [s for s in answer.result.suggestions if s.from_message]
    assert filled and all("5521" in s.filled_text and "{{Order Number}}" not in s.filled_text for s in filled)
    assert answer.stale_in(conv.with_turn(Turn("agent", "Done, cancelled."))) and not answer.stale_in(conv)


def test_the_desk_api_takes_a_conversation_and_stores_it_resolved(tmp_path):
    from desk_helpers import train_support_run
    from fastapi.testclient import TestClient

    from bigramlm.serve.app import create_app

    turns = [{"role": "customer", "text": "I want to cancel order 5521"}, {"role": "agent", "text": "Which order?"},
             {"role": "customer", "text": "yes, that one"}]
    with TestClient(create_app(train_support_run(tmp_path))) as client:
        r = client.post("/api/conversation/suggest", json={"conversation": {"id": "c-7", "source": "chatwoot", "turns": turns},
                                                            "n": 3, "seed": 1})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["thread"]["turn"] == 2 and body["thread"]["with_context"] and body["thread"]["values"] == {"Order Number": "5521"}
        assert body["suggestions"] and all("{{Order Number}}" not in s["filled_text"] for s in body["suggestions"])
        bad = client.post("/api/conversation/suggest", json={"conversation": {"id": "c-7", "source": "x",
                                                                              "turns": [{"role": "admin", "text": "hi"}]}})
        assert bad.status_code == 422
        no_customer = client.post("/api/conversation/suggest", json={"conversation": {"id": "c-7", "source": "x",
                                                                                      "turns": [{"role": "agent", "text": "hi"}]}})
        assert no_customer.status_code == 422 and "no customer turn" in no_customer.text
        done = {"id": "c-7", "source": "chatwoot", "turns": [*turns, {"role": "agent", "text": "Order 5521 is cancelled."}]}
        first, again = client.post("/api/conversation/resolve", json=done).json(), client.post("/api/conversation/resolve", json=done).json()
        assert first["stored"] and not again["stored"] and again["case_id"] == first["case_id"]
        cases = client.get("/api/cases").json()
        listed = cases["items"]
        assert [c["reply"] for c in listed if c["id"] == first["case_id"]] == ["Order 5521 is cancelled."]


def test_the_thread_command_reads_a_conversation_file(tmp_path, capsys):
    import json

    from desk_helpers import train_support_run

    from bigramlm.cli import main

    run = train_support_run(tmp_path)
    path = tmp_path / "conv.json"
    path.write_text(json.dumps({"id": "9", "source": "cli", "turns": [
        {"role": "customer", "text": "I want to cancel order 5521"}, {"role": "customer", "text": "yes, that one"}]}))
    assert main(["thread", str(run), str(path), "--seed", "1", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["thread"] == {"conversation": "9", "source": "cli", "turn": 1, "with_context": True,
                             "values": {"Order Number": "5521"}}
    path.write_text(json.dumps({"id": "9", "source": "cli", "turns": [{"role": "boss", "text": "x"}]}))
    assert main(["thread", str(run), str(path)]) == 2
    assert capsys.readouterr().err.startswith("error: turns: role 'boss'")

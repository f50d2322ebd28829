"""Chatwoot's and Zammad's webhook receivers (helpdesk.chatwoot, helpdesk.zammad,
serve.routes.helpdesk) against their documented shapes (tests/fixtures), with a loopback
helpdesk that checks every outbound call (tests/helpdesk_fake.py)."""

from __future__ import annotations

import copy
import hashlib
import hmac
import json

import httpx
import pytest
from desk_helpers import ThreadServer, train_support_run
from helpdesk_fake import FakeHelpdesk, fixture

from bigramlm.helpdesk.chatwoot import ChatwootClient, ChatwootHooks
from bigramlm.helpdesk.core import Assist
from bigramlm.helpdesk.outbox import Outbox
from bigramlm.helpdesk.secrets import Secret
from bigramlm.helpdesk.zammad import ZammadClient, ZammadHooks
from bigramlm.serve.helpdesk import helpdesk_app
from bigramlm.support.store import CaseStore

HOOK_SECRET, API_TOKEN = "hook-s3cret-value", "api-t0ken-value"


@pytest.fixture(scope="module")
def assistant(tmp_path_factory):
    from bigramlm.support.assistant import Assistant

    return Assistant.load(train_support_run(tmp_path_factory.mktemp("hooks-run")))


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def chatwoot(assistant, tmp_path):
    """A connector for Chatwoot on loopback, in front of a fake Chatwoot on loopback."""
    fake = FakeHelpdesk("chatwoot", API_TOKEN)
    store = CaseStore(tmp_path / "cases.sqlite")
    with ThreadServer(fake.app()) as api:
        outbox = Outbox().start()
        hooks = ChatwootHooks(ChatwootClient(api.base, Secret(API_TOKEN)), Assist(assistant, store), outbox)
        with ThreadServer(helpdesk_app(chatwoot=hooks, chatwoot_secret=Secret(HOOK_SECRET))) as receiver:
            yield fake, hooks, receiver, store
        outbox.stop()


def deliver(receiver, payload, secret=HOOK_SECRET):
    return httpx.post(f"{receiver.base}/hooks/chatwoot", params={"secret": secret}, json=payload, timeout=30)


def test_chatwoot_message_gets_one_private_note_with_the_threads_values(chatwoot):
    fake, hooks, receiver, store = chatwoot
    payload = fixture("chatwoot", "webhook_message_created.json")
    r = deliver(receiver, payload)
    assert r.status_code == 200 and r.json() == {"status": "queued"}
    assert deliver(receiver, payload).json() == {"status": "duplicate"}  # delivered twice: one note
    assert hooks.outbox.wait_idle(120)
    assert fake.violations == []
    notes = fake.named("create message")
    assert len(notes) == 1 and notes[0].path == "/api/v1/accounts/3/conversations/12/messages"
    content = notes[0].body["content"]
    assert content.startswith("bigramlm suggestions") and "{{Order Number}}" not in content


def test_chatwoot_refuses_a_wrong_secret_without_saying_it(chatwoot):
    fake, hooks, receiver, store = chatwoot
    r = deliver(receiver, fixture("chatwoot", "webhook_message_created.json"), secret="guess")
    assert r.status_code == 401 and HOOK_SECRET not in r.text and "guess" not in r.text
    assert httpx.post(f"{receiver.base}/hooks/zammad", content=b"{}").status_code == 404  # not configured here
    assert fake.calls == []


def test_chatwoot_resolved_conversation_is_stored_once(chatwoot):
    fake, hooks, receiver, store = chatwoot
    resolved = fixture("chatwoot", "webhook_conversation_resolved.json")
    payload = copy.deepcopy(resolved)
    # The agent's reply in the thread, as the messages list gives it once answered.
    reply = {"id": 103, "content": "Order 5521 is cancelled.", "message_type": 1, "private": False, "sender_type": "User"}
    answered = fixture("chatwoot", "list_messages_response.json")
    answered["payload"].append(reply)
    fake.answers["list_messages_response.json"] = answered
    assert deliver(receiver, payload).json() == {"status": "queued"}
    assert deliver(receiver, payload).json() == {"status": "queued"}
    assert hooks.outbox.wait_idle(120) and fake.violations == []
    cases = store.list_cases()
    assert len(cases) == 1 and cases[0].case.reply == "Order 5521 is cancelled."
    source = store.conversation_source(cases[0].case.id)
    assert source is not None and (source.helpdesk, source.conversation_id) == ("chatwoot", "12")


def test_an_answer_that_comes_first_makes_the_suggestion_stale(assistant, tmp_path):
    fake, clock = FakeHelpdesk("chatwoot", API_TOKEN), FakeClock()
    with ThreadServer(fake.app()) as api:
        outbox = Outbox(clock=clock)  # not started: the test runs what is due
        hooks = ChatwootHooks(ChatwootClient(api.base, Secret(API_TOKEN)), Assist(assistant, None), outbox)
        assert hooks.receive(fixture("chatwoot", "webhook_message_created.json")) == "queued"
        answer = {**fixture("chatwoot", "webhook_message_created.json"), "id": 102, "message_type": "outgoing",
                  "sender": {"id": 2, "type": "user"}}
        assert hooks.receive(answer).startswith("ignored")
        outbox.run_due()
    assert fake.named("create message") == [] and hooks.guard.dropped == 1 and fake.violations == []


def test_nothing_is_lost_while_chatwoot_is_down_for_a_minute(assistant, tmp_path):
    clock = FakeClock()
    fake = FakeHelpdesk("chatwoot", API_TOKEN, clock=clock, down_until=clock.now + 60)
    with ThreadServer(fake.app()) as api:
        outbox = Outbox(clock=clock)
        hooks = ChatwootHooks(ChatwootClient(api.base, Secret(API_TOKEN)), Assist(assistant, CaseStore(tmp_path / "c.sqlite")),
                              outbox)
        assert hooks.receive(fixture("chatwoot", "webhook_message_created.json")) == "queued"
        attempts = 0
        while outbox.pending() and attempts < 20:
            attempts += outbox.run_due()
            if outbox.pending():
                clock.now = outbox._heap[0].due  # jump to the retry, as the backoff says
    assert len(fake.named("create message")) == 1 and fake.refused >= 2 and outbox.stats.retried >= 2
    assert clock.now >= 1060 and outbox.stats.given_up == 0


def test_retries_are_bounded():
    clock, tries = FakeClock(), []
    outbox, given_up = Outbox(clock=clock, max_attempts=4), []

    def fail() -> None:
        from bigramlm.helpdesk.outbox import Retry

        tries.append(clock.now)
        raise Retry("down")

    outbox.put("note", fail, lambda: given_up.append(True))
    for _ in range(10):
        outbox.run_due()
        clock.now += 100
    assert len(tries) == 4 and given_up == [True] and outbox.pending() == 0
    assert [b - a for a, b in zip(tries, tries[1:])] == [100, 100, 100]  # each waited its backoff (1, 2, 4 s) and more


def signed(body: bytes, token: str) -> str:
    return "sha1=" + hmac.new(token.encode(), body, hashlib.sha1).hexdigest()


def test_zammad_trigger_gets_one_internal_note_and_a_closed_ticket_is_a_case(assistant, tmp_path):
    fake = FakeHelpdesk("zammad", API_TOKEN)
    store = CaseStore(tmp_path / "cases.sqlite")
    with ThreadServer(fake.app()) as api:
        outbox = Outbox().start()
        hooks = ZammadHooks(ZammadClient(api.base, Secret(API_TOKEN)), Assist(assistant, store), outbox)
        with ThreadServer(helpdesk_app(zammad=hooks, zammad_secret=Secret(HOOK_SECRET))) as receiver:
            body = json.dumps(fixture("zammad", "webhook_ticket.json")).encode()
            url = f"{receiver.base}/hooks/zammad"
            bad = httpx.post(url, content=body, headers={"X-Hub-Signature": signed(body, "wrong"), "X-Zammad-Delivery": "d-1"})
            assert bad.status_code == 401 and HOOK_SECRET not in bad.text
            headers = {"X-Hub-Signature": signed(body, HOOK_SECRET), "X-Zammad-Delivery": "d-1",
                       "Content-Type": "application/json"}
            assert httpx.post(url, content=body, headers=headers).json() == {"status": "queued"}
            assert httpx.post(url, content=body, headers=headers).json() == {"status": "duplicate"}
            assert outbox.wait_idle(120)
            notes = fake.named("create article")
            assert len(notes) == 1 and notes[0].body["body"].startswith("bigramlm suggestions") and fake.violations == []
            assert "5521" in notes[0].body["body"] or "{{Order Number}}" not in notes[0].body["body"]
        outbox.stop()

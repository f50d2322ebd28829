"""What one client can make of the team edit rules (issue 27, findings 4 and 5): rules only
from the run's intents, a rule for every intent only from several agents, a link waiting for
an agent, and a rule book that reads each accept once however many the store holds."""

from __future__ import annotations

import uuid

import pytest
from fastapi.testclient import TestClient

import bigramlm.support.edits as edits
from bigramlm.data.cases import Case
from bigramlm.serve.app import create_app
from bigramlm.support.contacts import contacts
from bigramlm.support.edits import APPEND, EVERY_INTENT, REPLACE, Edit, KnownToRun, team_rules
from bigramlm.support.rulebook import RuleBook, current_rules
from bigramlm.support.store import AcceptedReply, CaseStore, StoredCase
from desk_helpers import train_support_run

REPLY = "I understand you want to cancel order {{Order Number}}. Visit {{Website URL}} and choose Cancel."
SIGN_OFF = "Warm regards, the Acme Care Team."
KNOWN = KnownToRun.of(["cancel_order", "get_refund", "track_order"], [REPLY, "Call us on +1 555 010 9999."])


def _accepted(intent: str, n: int, agent: str | None = None, add: str = SIGN_OFF, displayed: str = REPLY) -> list[AcceptedReply]:
    return [AcceptedReply(0, intent, agent, REPLY, displayed, f"{REPLY} {add}")] * n


def test_links_emails_and_phone_numbers_are_found_in_any_spelling():
    assert contacts("Please confirm your card at http://evil.example/pay.") == {"http://evil.example/pay"}
    assert contacts("go to Evil.Example/pay, or www.x.example") == {"evil.example/pay", "www.x.example"}
    assert contacts("evil\u3002example and evil\uff0eexample") == {"evil\u3002example", "evil.example"}
    assert contacts("write to help+card@evil.example!") == {"help+card@evil.example"}
    assert contacts("call +1 (555) 010-9999 now") == {"tel:15550109999"}
    # Not contacts: placeholders, order numbers, years, abbreviations, a Japanese sentence.
    assert contacts(REPLY + " Order 5521 of 2026, e.g. U.S.A. and 3.5 kg. \u65e5\u672c\u8a9e\u3002\u6b21\u306e\u6587") == set()


def test_a_rule_that_adds_a_contact_the_run_never_holds_waits_for_review():
    assert KNOWN.review(Edit(APPEND, "", SIGN_OFF)) is None
    assert KNOWN.review(Edit(APPEND, "", "Or call +1 555 010 9999.")) is None  # the run's own number
    assert KNOWN.review(Edit(REPLACE, "at evil.example today", "at evil.example now")) is None  # there already
    reason = KNOWN.review(Edit(APPEND, "", "Pay at evil.example/pay or mail x@evil.example"))
    assert reason is not None and "evil.example/pay" in reason and "x@evil.example" in reason
    (rule,) = team_rules(_accepted("cancel_order", 3, add="Pay at evil.example/pay"), KNOWN)
    assert rule.review is not None and rule.scope == "cancel_order"


def test_rules_come_only_from_the_run_intents_and_every_intent_needs_two_agents():
    made_up = sum((_accepted(i, 3, "ann") for i in ("zz_a", "zz_b", "zz_c")), [])
    assert team_rules(made_up, KNOWN) == []
    three = sum((_accepted(i, 3, "ann") for i in ("cancel_order", "get_refund", "track_order")), [])
    assert sorted(r.scope for r in team_rules(three, KNOWN)) == ["cancel_order", "get_refund", "track_order"]
    anonymous = sum((_accepted(i, 3) for i in ("cancel_order", "get_refund", "track_order")), [])
    assert all(r.scope != EVERY_INTENT and not r.agents for r in team_rules(anonymous, KNOWN))
    # Bo accepting the sign-off a rule had made (it was displayed) is not bo making it.
    endorsed = three + _accepted("track_order", 3, "bo", displayed=f"{REPLY} {SIGN_OFF}")
    assert all(r.scope != EVERY_INTENT for r in team_rules(endorsed, KNOWN))
    (every,) = team_rules(three + _accepted("track_order", 1, "bo"), KNOWN)
    assert every.scope == EVERY_INTENT and every.agents == {"ann", "bo"}


def _store_accepts(store: CaseStore, intent: str, n: int, add: str = SIGN_OFF, agent: str | None = None) -> None:
    for _ in range(n):
        sid = uuid.uuid4().hex
        store.record_suggestions([(sid, REPLY, -1.0)])
        store.accept([StoredCase(Case("q", f"{REPLY} {add}", intent), None, sid, True, 0.1, agent)])


def test_a_waiting_rule_is_off_and_new_until_an_agent_switches_it(tmp_path):
    with CaseStore(tmp_path / "cases.sqlite") as store:
        _store_accepts(store, "cancel_order", 3, "Pay at http://evil.example/pay")
        _store_accepts(store, "get_refund", 3)
        book = RuleBook(KNOWN)
        linked, plain = sorted(current_rules(store, book), key=lambda r: r.scope)
        assert (linked.enabled, linked.unreviewed, plain.enabled, plain.unreviewed) == (False, True, True, True)
        store.set_rule(linked.id, True)
        store.set_rule(plain.id, True)
        assert [(r.enabled, r.unreviewed) for r in sorted(current_rules(store, book), key=lambda r: r.scope)] == [
            (True, False), (True, False)]


def test_the_rule_book_reads_each_accept_once(tmp_path, monkeypatch):
    with CaseStore(tmp_path / "cases.sqlite") as store:
        _store_accepts(store, "cancel_order", 120)
        _store_accepts(store, "zz_made_up", 40)
        book = RuleBook(KNOWN)
        (rule,) = book.learned(store)
        assert book.last_read == edits.HISTORY and rule.support == edits.HISTORY  # the latest of the intent only
        diffs = []
        monkeypatch.setattr(edits, "edits_between", lambda a, b: diffs.append(1) or [])
        assert book.learned(store) == [rule] and (book.last_read, len(diffs)) == (0, 0)
        _store_accepts(store, "get_refund", 1)
        _store_accepts(store, "zz_made_up", 5)
        book.learned(store)
        assert (book.last_read, len(diffs)) == (1, 1)  # the new accept of a known intent, and nothing else


@pytest.fixture
def desk(tmp_path):
    run = train_support_run(tmp_path)
    with TestClient(create_app(run)) as client:
        yield client


def test_the_desk_works_out_an_accept_edits_once_however_many_there_are(desk, monkeypatch):
    """Issue 27, finding 5: every GET /api/rules, and the first suggestion after an accept,
    worked out the edits of every recent accept again (6.1 s after 1,500)."""
    store = desk.app.state.desk.store
    for intent in ("cancel_order", "get_refund"):
        _store_accepts(store, intent, 60)
    assert desk.post("/api/suggest", json={"message": "where is my package", "n": 2, "max_new_tokens": 10}).status_code == 200
    real = edits.edits_between
    diffs = []
    monkeypatch.setattr(edits, "edits_between", lambda a, b: diffs.append(1) or real(a, b))
    for _ in range(3):
        assert len(desk.get("/api/rules").json()["rules"]) == 2
    assert desk.post("/api/suggest", json={"message": "where is my package", "n": 2, "max_new_tokens": 10}).status_code == 200
    assert diffs == []  # nothing new: nothing worked out again
    _store_accepts(store, "get_refund", 1)
    assert desk.post("/api/suggest", json={"message": "where is my package", "n": 2, "max_new_tokens": 10}).status_code == 200
    assert len(desk.get("/api/rules").json()["rules"]) == 2
    assert len(diffs) == 1  # the new accept's own

"""Request Tracker 5 end to end (helpdesk.rt): a real RT started by the tests gets the
suggestions as a comment on a new ticket and on the customer's reply, and a resolved
ticket becomes one case with its ticket id."""

from __future__ import annotations

import pytest

from bigramlm.helpdesk.core import Assist
from bigramlm.helpdesk.rt import RTClient, RTWatcher, auth_header
from bigramlm.helpdesk.secrets import Secret
from bigramlm.support.store import CaseStore

pytestmark = pytest.mark.rt


@pytest.fixture(scope="module")
def assistant(tmp_path_factory):
    from desk_helpers import train_support_run

    from bigramlm.support.assistant import Assistant

    return Assistant.load(train_support_run(tmp_path_factory.mktemp("rt-run")))


def comments(rt, ticket: str) -> list[str]:
    with rt.client() as http:
        history = http.get(f"/ticket/{ticket}/history", params={"fields": "Type", "per_page": 100}).json()["items"]
        out = []
        for txn in history:
            if txn["Type"] == "Comment":
                parts = http.get(f"/transaction/{txn['id']}/attachments", params={"fields": "Content,ContentType"}).json()
                out += [p["Content"] for p in parts["items"] if p["ContentType"].startswith("text/plain")]
        return out


def test_a_real_rt_gets_suggestions_and_gives_back_its_resolved_tickets(rt_server, assistant, tmp_path):
    store = CaseStore(tmp_path / "cases.sqlite")
    client = RTClient(rt_server.url, auth_header(user="root", password=Secret("password")))
    watcher = RTWatcher(client, Assist(assistant, store), queue="General")
    name, password, email = ("customer", "customer-pass", "customer@example.com")
    with rt_server.client(name, password) as customer:
        r = customer.post("/ticket", json={"Queue": "General", "Subject": "cancel", "Requestor": email,
                                           "Content": "I want to cancel order 5521"})
        assert r.status_code == 201, r.text
        ticket = r.json()["id"]
        first = watcher.poll()
        assert ticket in first.commented
        notes = comments(rt_server, ticket)
        assert len(notes) == 1 and notes[0].startswith("bigramlm suggestions") and "5521" in notes[0]
        assert watcher.poll().commented == []  # nothing new: no second comment
        assert customer.post(f"/ticket/{ticket}/correspond",
                             json={"Content": "yes, that one please", "ContentType": "text/plain"}).status_code in (200, 201)
    assert ticket in watcher.poll().commented and len(comments(rt_server, ticket)) == 2
    with rt_server.client() as agent:
        agent.post(f"/ticket/{ticket}/correspond", json={"Content": "Order 5521 is cancelled.", "ContentType": "text/plain"})
        assert watcher.poll().commented == []  # the agent answered: the turn is not suggested for again
        assert agent.put(f"/ticket/{ticket}", json={"Status": "resolved"}).status_code == 200
    stored = watcher.poll().stored
    assert len(stored) == 1 and watcher.poll().stored == []
    case = store.get_case(stored[0])
    assert case is not None and case.case.reply == "Order 5521 is cancelled." and "cancel order 5521" in case.case.message
    source = store.conversation_source(stored[0])
    assert source is not None and (source.helpdesk, source.conversation_id) == ("rt", ticket)
    client.close()

"""Request Tracker 5, watched through its REST 2 API (``/REST/2.0``).

Each ``poll`` reads the queue's tickets updated since the last poll and, per ticket, its
history: the ticket's creation and every correspondence by one of its requestors are the
customer's turns, correspondence by anyone else the agents', comments private notes.
For an open ticket whose latest customer turn no agent has answered yet, the suggestions
go on the ticket as a comment (agents see it in the ticket's history; the requestor never
does); a resolved ticket is stored as a case, once. Each customer turn is answered once,
across restarts too: its transaction is a delivery taken in the store
(``CaseStore.claim_delivery``).

Auth is a token (RT 5's auth tokens: ``Authorization: token ...``) or a user and password
(basic), both secrets (``helpdesk.secrets``).
"""

from __future__ import annotations

import base64
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import httpx

from bigramlm.data.conversation import AGENT, CUSTOMER, NOTE, Conversation, Turn, conversation
from bigramlm.errors import BigramLMError
from bigramlm.helpdesk.core import Assist, note_text
from bigramlm.helpdesk.secrets import Secret

log = logging.getLogger("bigramlm.helpdesk")

SOURCE = "rt"
#: RT's statuses that end a ticket with an answer (``rejected`` and ``deleted`` have none).
RESOLVED = {"resolved"}
PER_PAGE = 100


def auth_header(token: Secret | None = None, user: str | None = None, password: Secret | None = None) -> str:
    if token is not None:
        return f"token {token.value}"
    if user and password is not None:
        return "Basic " + base64.b64encode(f"{user}:{password.value}".encode()).decode()
    raise BigramLMError("RT needs a token (RT_TOKEN) or a user and password (RT_USER, RT_PASSWORD)", param="secrets")


class RTClient:
    """The few REST 2 calls the watcher makes."""

    def __init__(self, url: str, auth: str, timeout_s: float = 30.0, transport: httpx.BaseTransport | None = None):
        self.http = httpx.Client(base_url=url.rstrip("/") + "/REST/2.0", headers={"Authorization": auth},
                                 timeout=timeout_s, transport=transport)

    def _get(self, path: str, **params: Any) -> Any:
        r = self.http.get(path, params=params)
        if r.status_code != 200:
            raise BigramLMError(f"RT answered {r.status_code} to GET {path}", param="url")
        return r.json()

    def _pages(self, path: str, **params: Any) -> list[dict[str, Any]]:
        items, page = [], 1
        while True:
            body = self._get(path, **params, page=page, per_page=PER_PAGE)
            items += body.get("items", [])
            if page >= int(body.get("pages") or 1):
                return items
            page += 1

    def tickets(self, queue: str, since: str | None) -> list[dict[str, Any]]:
        query = f"Queue = '{queue}'" + (f" AND LastUpdated >= '{since}'" if since else "")
        return self._pages("/tickets", query=query, fields="Status,Requestor", orderby="id")

    def history(self, ticket: str) -> list[dict[str, Any]]:
        return self._pages(f"/ticket/{ticket}/history", fields="Type,Creator,Created")

    def content(self, transaction: str) -> str:
        parts = self._pages(f"/transaction/{transaction}/attachments", fields="Content,ContentType")
        texts = [p.get("Content") or "" for p in parts if str(p.get("ContentType", "")).startswith("text/plain")]
        return "\n".join(t for t in texts if t).strip()

    def comment(self, ticket: str, text: str) -> None:
        r = self.http.post(f"/ticket/{ticket}/comment", json={"Content": text, "ContentType": "text/plain"})
        if r.status_code not in (200, 201):
            raise BigramLMError(f"RT answered {r.status_code} to the comment on ticket {ticket}", param="url")

    def close(self) -> None:
        self.http.close()


def ticket_conversation(client: RTClient, ticket: dict[str, Any]) -> tuple[Conversation, list[int]]:
    """The ticket as a conversation, and each turn's transaction id."""
    requestors = {str(r.get("id")) for r in ticket.get("Requestor") or []}
    turns, ids = [], []
    for txn in client.history(str(ticket["id"])):
        kind, creator = txn.get("Type"), str((txn.get("Creator") or {}).get("id"))
        if kind not in ("Create", "Correspond", "Comment"):
            continue
        role = NOTE if kind == "Comment" else CUSTOMER if kind == "Create" or creator in requestors else AGENT
        text = client.content(str(txn["id"]))
        if text:
            turns.append(Turn(role, text, _epoch(txn.get("Created")), str(txn["id"])))
            ids.append(int(txn["id"]))
    return conversation(str(ticket["id"]), SOURCE, turns), ids


def _epoch(created: Any) -> float | None:
    try:
        return time.mktime(time.strptime(str(created), "%Y-%m-%dT%H:%M:%SZ")) - time.timezone
    except ValueError:
        return None


@dataclass
class PollResult:
    commented: list[str] = field(default_factory=list)
    stored: list[int] = field(default_factory=list)
    stale: int = 0


class RTWatcher:
    """Watches one queue: ``poll`` once, or ``run`` every ``interval_s``."""

    def __init__(self, client: RTClient, assist: Assist, queue: str = "General"):
        self.client, self.assist, self.queue = client, assist, queue
        self.since: str | None = None

    def poll(self) -> PollResult:
        started = time.gmtime(time.time() - 2)  # RT's LastUpdated has whole seconds: overlap a little
        out = PollResult()
        for ticket in self.client.tickets(self.queue, self.since):
            self._ticket(ticket, out)
        self.since = time.strftime("%Y-%m-%d %H:%M:%S", started)
        return out

    def _ticket(self, ticket: dict[str, Any], out: PollResult) -> None:
        conv, ids = ticket_conversation(self.client, ticket)
        if str(ticket.get("Status")) in RESOLVED:
            stored = self.assist.resolve(conv)
            if stored is not None and stored[1]:
                out.stored.append(stored[0])
            return
        latest = conv.latest_customer()
        if latest is None:
            return
        if conv.stale(latest):
            out.stale += 1
            return
        store = self.assist.store
        if store is not None and not store.claim_delivery(SOURCE, f"{conv.id}:{ids[latest]}"):
            return  # answered in an earlier poll
        suggestions = self.assist.suggest(conv)
        try:
            self.client.comment(conv.id, note_text(suggestions))
        except (BigramLMError, httpx.HTTPError):
            if store is not None:  # the next poll tries again
                store.release_delivery(SOURCE, f"{conv.id}:{ids[latest]}")
            raise
        out.commented.append(conv.id)

    def run(self, interval_s: float, stop: Callable[[], bool], wait: Callable[[float], None] = time.sleep) -> None:
        while not stop():
            try:
                result = self.poll()
                if result.commented or result.stored:
                    log.info("rt: commented on %s, stored cases %s", result.commented, result.stored)
            except (BigramLMError, httpx.HTTPError) as failure:
                log.warning("rt: poll failed (%s); trying again in %.0f s", failure, interval_s)
            wait(interval_s)


__all__ = ["RTClient", "RTWatcher", "auth_header", "ticket_conversation"]

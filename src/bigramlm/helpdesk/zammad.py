"""Zammad: a trigger's webhook, answered with an internal note.

The webhook (Zammad's default ticket payload: ``ticket`` and ``article``) is checked first:
``X-Hub-Signature`` is ``sha1=`` and the HMAC-SHA1 of the body with the webhook's token,
compared in constant time; a delivery (``X-Zammad-Delivery``) is taken once. For an
article by the customer that is not internal, the ticket's articles are read
(``GET /api/v1/ticket_articles/by_ticket/{id}``) as a ``Conversation`` and the
suggestions go back as an internal note (``POST /api/v1/ticket_articles`` with
``ticket_id, body, type: note, internal: true``), with the API token
(``Authorization: Token token=...``). A ticket whose state is closed is stored as a case.
"""

from __future__ import annotations

import hashlib
import hmac
import html
import logging
import re
import time
from typing import Any, Mapping

import httpx

from bigramlm.data.conversation import AGENT, BOT, CUSTOMER, NOTE, Conversation, Turn, conversation
from bigramlm.helpdesk.core import Assist, StaleGuard, note_text
from bigramlm.helpdesk.http import call
from bigramlm.helpdesk.outbox import Outbox
from bigramlm.helpdesk.secrets import Secret

log = logging.getLogger("bigramlm.helpdesk")

SOURCE = "zammad"
CLOSED = {"closed"}
_TAG = re.compile(r"<br\s*/?>|</p>|</div>", re.IGNORECASE)


def signature_ok(body: bytes, header: str | None, token: Secret) -> bool:
    """Whether ``X-Hub-Signature`` is the HMAC-SHA1 of ``body`` with the token."""
    if not header or not header.startswith("sha1="):
        return False
    expected = hmac.new(token.value.encode(), body, hashlib.sha1).hexdigest()
    return hmac.compare_digest(expected, header[5:].strip())


def plain(body: str, content_type: str | None) -> str:
    """An article's text: HTML bodies (Zammad's default) without their tags."""
    if "html" not in (content_type or ""):
        return body.strip()
    return html.unescape(re.sub(r"<[^>]+>", "", _TAG.sub("\n", body))).strip()


def role_of(article: Mapping[str, Any]) -> str:
    if article.get("internal"):
        return NOTE
    sender = str(article.get("sender") or "")
    return CUSTOMER if sender == "Customer" else AGENT if sender == "Agent" else BOT


def zammad_conversation(ticket: str, articles: list[dict[str, Any]]) -> Conversation:
    turns = []
    for a in sorted(articles, key=lambda a: int(a.get("id") or 0)):
        text = plain(str(a.get("body") or ""), a.get("content_type"))
        if text:
            turns.append(Turn(role_of(a), text, None, str(a.get("id"))))
    return conversation(ticket, SOURCE, turns)


class ZammadClient:
    def __init__(self, url: str, token: Secret, timeout_s: float = 10.0, transport: httpx.BaseTransport | None = None):
        self.http = httpx.Client(base_url=url.rstrip("/"), headers={"Authorization": f"Token token={token.value}"},
                                 timeout=timeout_s, transport=transport)

    def articles(self, ticket: str) -> list[dict[str, Any]]:
        return list(call(self.http, "GET", f"/api/v1/ticket_articles/by_ticket/{ticket}", "reading the ticket") or [])

    def post_note(self, ticket: str, body: str) -> None:
        call(self.http, "POST", "/api/v1/ticket_articles", "posting the note",
             json={"ticket_id": int(ticket) if ticket.isdigit() else ticket, "body": body, "content_type": "text/plain",
                   "type": "note", "internal": True})


class ZammadHooks:
    def __init__(self, client: ZammadClient, assist: Assist, outbox: Outbox, guard: StaleGuard | None = None):
        self.client, self.assist, self.outbox = client, assist, outbox
        self.guard = guard or StaleGuard()
        self.posted: dict[str, float] = {}

    def receive(self, payload: Mapping[str, Any], delivery: str | None) -> str:
        ticket = payload.get("ticket") or {}
        article = payload.get("article") or {}
        ticket_id = str(ticket.get("id") or "")
        if not ticket_id:
            return "ignored: no ticket"
        store = self.assist.store
        if delivery and store is not None and not store.claim_delivery(SOURCE, f"delivery:{delivery}"):
            return "duplicate"
        if str(ticket.get("state") or "") in CLOSED:
            self.outbox.put(f"zammad resolved {ticket_id}", lambda: self._resolve(ticket_id))
            return "queued"
        if not article:
            return "ignored: no article"
        role, article_id = role_of(article), int(article.get("id") or 0)
        if role in (AGENT, BOT):
            self.guard.saw(ticket_id, article_id)
        if role != CUSTOMER:
            return "ignored: not the customer's article"
        self.guard.saw(ticket_id, article_id)
        self.outbox.put(f"zammad note {ticket_id}", self._suggester(ticket_id, article_id))
        return "queued"

    def _suggester(self, ticket: str, article: int) -> Any:
        note: list[str] = []

        def task() -> None:
            if not note:
                thread = zammad_conversation(ticket, self.client.articles(ticket))
                if thread.latest_customer() is None:
                    return
                note.append(note_text(self.assist.suggest(thread)))
            if self.guard.offer(ticket, article, lambda: self.client.post_note(ticket, note[0])):
                self.posted[str(article)] = time.monotonic()
                log.info("zammad: note posted on ticket %s for article %s", ticket, article)
            else:
                log.info("zammad: suggestions for article %s of ticket %s dropped: answered since", article, ticket)

        return task

    def _resolve(self, ticket: str) -> None:
        self.assist.resolve(zammad_conversation(ticket, self.client.articles(ticket)))


__all__ = ["ZammadClient", "ZammadHooks", "signature_ok", "zammad_conversation"]

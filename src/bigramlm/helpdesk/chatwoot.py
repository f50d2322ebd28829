"""Chatwoot: an account webhook or an Agent Bot's ``outgoing_url``, answered with private notes.

On ``message_created`` for an incoming message that is not private, the conversation's
messages are read (``GET /api/v1/accounts/{account}/conversations/{id}/messages``) as a
``Conversation``, and the suggestions for its latest customer turn are posted as a private
note (``POST .../messages`` with ``message_type: outgoing, private: true``), authenticated
by the ``api_access_token`` header. An outgoing message that is not private (an agent's
or a bot's reply) or a newer incoming one makes a suggestion still being written stale: it
is dropped (``core.StaleGuard``). On ``conversation_resolved``, or a status change to
resolved, the conversation is stored as a case. Each message is taken once
(``CaseStore.claim_delivery``): a webhook delivered twice gives one note. The receiver
(``serve.routes.helpdesk``) answers at once; the work is done in the ``Outbox``.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Mapping

import httpx

from bigramlm.data.conversation import AGENT, BOT, CUSTOMER, NOTE, Conversation, Turn, conversation
from bigramlm.helpdesk.core import Assist, StaleGuard, note_text
from bigramlm.helpdesk.http import call
from bigramlm.helpdesk.outbox import Outbox
from bigramlm.helpdesk.secrets import Secret

log = logging.getLogger("bigramlm.helpdesk")

SOURCE = "chatwoot"
#: Chatwoot's message types: an integer in its API's messages, a name in webhooks.
TYPES = {0: "incoming", 1: "outgoing", 2: "activity", 3: "template"}
RESOLVED_EVENTS = {"conversation_resolved"}
STATUS_EVENTS = {"conversation_status_changed", "conversation_updated"}


class ChatwootClient:
    def __init__(self, url: str, token: Secret, timeout_s: float = 10.0, transport: httpx.BaseTransport | None = None):
        self.http = httpx.Client(base_url=url.rstrip("/"), headers={"api_access_token": token.value}, timeout=timeout_s,
                                 transport=transport)

    def messages(self, account: str, conv: str) -> list[dict[str, Any]]:
        body = call(self.http, "GET", f"/api/v1/accounts/{account}/conversations/{conv}/messages", "reading the conversation")
        return list((body or {}).get("payload") or [])

    def post_note(self, account: str, conv: str, content: str) -> None:
        call(self.http, "POST", f"/api/v1/accounts/{account}/conversations/{conv}/messages", "posting the note",
             json={"content": content, "message_type": "outgoing", "private": True})


def message_type(message: Mapping[str, Any]) -> str:
    kind = message.get("message_type")
    return TYPES.get(kind, "activity") if isinstance(kind, int) else str(kind)


def role_of(message: Mapping[str, Any]) -> str | None:
    kind = message_type(message)
    if message.get("private"):
        return NOTE
    if kind == "incoming":
        return CUSTOMER
    if kind == "template":
        return BOT
    if kind == "outgoing":
        sender = message.get("sender") or {}
        bot = "bot" in str(message.get("sender_type") or sender.get("type") or "").lower()
        return BOT if bot else AGENT
    return None  # activity: "conversation was resolved", assignments


def chatwoot_conversation(conv_id: str, messages: list[dict[str, Any]]) -> Conversation:
    turns = []
    for m in sorted(messages, key=lambda m: int(m.get("id") or 0)):
        role, text = role_of(m), str(m.get("content") or "").strip()
        if role is not None and text:
            created = m.get("created_at")
            turns.append(Turn(role, text, float(created) if isinstance(created, (int, float)) else None, str(m.get("id"))))
    return conversation(conv_id, SOURCE, turns)


def _conversation_id(payload: Mapping[str, Any]) -> str:
    """The id Chatwoot's API takes for a conversation: its ``display_id``, shown to agents."""
    conv = payload.get("conversation") if payload.get("event", "").startswith("message_") else payload
    conv = conv or {}
    return str(conv.get("display_id") or conv.get("id") or "")


class ChatwootHooks:
    """Reads Chatwoot's webhook events; the work goes to the outbox."""

    def __init__(self, client: ChatwootClient, assist: Assist, outbox: Outbox, guard: StaleGuard | None = None):
        self.client, self.assist, self.outbox = client, assist, outbox
        self.guard = guard or StaleGuard()
        #: When each note was posted, by message id (the webhook-to-note latency is measured from it).
        self.posted: dict[str, float] = {}

    def receive(self, payload: Mapping[str, Any]) -> str:
        """What the event did: ``queued``, ``duplicate`` or ``ignored ...``."""
        event = str(payload.get("event") or "")
        # A message event names its account as an object, a conversation event by its id.
        account = str((payload.get("account") or {}).get("id") or payload.get("account_id") or "")
        conv = _conversation_id(payload)
        if not account or not conv:
            return "ignored: no account or conversation"
        if event == "message_created":
            return self._message(payload, account, conv)
        if event in RESOLVED_EVENTS or (event in STATUS_EVENTS and payload.get("status") == "resolved"):
            self.outbox.put(f"chatwoot resolved {conv}", lambda: self._resolve(account, conv))
            return "queued"
        return f"ignored: {event or 'no event'}"

    def _message(self, payload: Mapping[str, Any], account: str, conv: str) -> str:
        message, role = int(payload.get("id") or 0), role_of(payload)
        key = f"{account}:{conv}"
        if role in (AGENT, BOT):
            self.guard.saw(key, message)  # an answer: what was being written for earlier turns is stale
            return "ignored: an answer, not a customer's message"
        if role != CUSTOMER:
            return "ignored: a private note or an activity"
        self.guard.saw(key, message)
        store = self.assist.store
        delivery = f"message:{account}:{message}"
        if store is not None and not store.claim_delivery(SOURCE, delivery):
            return "duplicate"
        give_up = (lambda: store.release_delivery(SOURCE, delivery)) if store is not None else None
        self.outbox.put(f"chatwoot note {conv}", self._suggester(account, conv, message, key), give_up)
        return "queued"

    def _suggester(self, account: str, conv: str, message: int, key: str) -> Any:
        note: list[str] = []  # written once; a retry only posts again

        def task() -> None:
            if not note:
                thread = chatwoot_conversation(conv, self.client.messages(account, conv))
                if thread.latest_customer() is None:
                    return
                note.append(note_text(self.assist.suggest(thread)))
            if self.guard.offer(key, message, lambda: self.client.post_note(account, conv, note[0])):
                self.posted[str(message)] = time.monotonic()
                log.info("chatwoot: note posted on conversation %s for message %s", conv, message)
            else:
                log.info("chatwoot: suggestions for message %s of conversation %s dropped: answered since", message, conv)

        return task

    def _resolve(self, account: str, conv: str) -> None:
        self.assist.resolve(chatwoot_conversation(conv, self.client.messages(account, conv)))


__all__ = ["ChatwootClient", "ChatwootHooks", "chatwoot_conversation"]

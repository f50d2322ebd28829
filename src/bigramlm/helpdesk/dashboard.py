"""Chatwoot's Dashboard App: the suggestions inside the conversation view, with the agent's feedback.

Chatwoot loads the page (``static/chatwoot_app.html``) in an iframe beside a conversation
and hands it ``{"event": "appContext", "data": {"conversation", "contact",
"currentAgent"}}`` by ``postMessage`` (again whenever the page asks with
``chatwoot-dashboard-app:fetch-info``). The page sends the conversation here: ``suggest``
reads its messages as a ``Conversation`` and answers its latest customer turn (recorded as
shown to ``currentAgent``); ``accept`` (as it was, or edited) stores the case and
``dismiss`` the dismissal, both attributed to ``currentAgent``, as the desk does for its
own agents (``serve.routes.cases``, ``serve.routes.feedback``).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any, Mapping

from bigramlm.data.cases import DESK, Case
from bigramlm.errors import BigramLMError
from bigramlm.helpdesk.chatwoot import chatwoot_conversation
from bigramlm.helpdesk.core import Assist
from bigramlm.support.store import CaseStore, StoredCase
from bigramlm.support.store.case_store import normalized_edit_distance


@dataclass(frozen=True)
class Agent:
    """Chatwoot's ``currentAgent``: who is looking at the conversation."""

    name: str | None

    @classmethod
    def of(cls, current: Mapping[str, Any] | None) -> "Agent":
        current = current or {}
        name = str(current.get("email") or current.get("name") or "").strip()[:200]
        return cls(name or None)


class DashboardApp:
    def __init__(self, assist: Assist):
        self.assist = assist

    @property
    def store(self) -> CaseStore:
        if self.assist.store is None:
            raise BigramLMError("the Dashboard App needs the case store (feedback is recorded there)", param="store")
        return self.assist.store

    def suggest(self, conversation: Mapping[str, Any], agent: Agent) -> dict[str, Any]:
        conv_id = str(conversation.get("display_id") or conversation.get("id") or "")
        messages = conversation.get("messages")
        if not conv_id or not isinstance(messages, list):
            raise BigramLMError("appContext's conversation needs an id and its messages", param="conversation")
        conv = chatwoot_conversation(conv_id, [m for m in messages if isinstance(m, dict)])
        turn = conv.latest_customer()
        if turn is None:
            return {"conversation": conv_id, "turn": None, "message": None, "intent": None, "suggestions": []}
        answer = self.assist.suggest_result(conv)
        result = answer.result
        shown = [s for s in result.suggestions if s.filled_text.strip()]
        for s in shown:
            s.id = s.id or uuid.uuid4().hex
        self.store.record_suggestions([(s.id, s.filled_text, s.score, s.base_text or None) for s in shown],
                                      agent=agent.name)
        return {"conversation": conv_id, "turn": turn, "message": answer.request.message, "intent": result.understanding.intent,
                "with_context": answer.request.with_context,
                "suggestions": [{"id": s.id, "text": s.filled_text, "label": s.label} for s in shown]}

    def accept(self, suggestion_id: str, message: str, reply: str, intent: str | None, agent: Agent) -> dict[str, Any]:
        """Store the case the agent sent (the suggestion as it was, or edited); once per suggestion."""
        shown = self.store.get_suggestion(suggestion_id)
        if shown is None:
            raise BigramLMError(f"no suggestion with id {suggestion_id!r} was shown", param="suggestion_id")
        distance = normalized_edit_distance(shown.text, reply)
        case = Case(message, reply, intent, None, DESK)
        ((case_id, created),) = self.store.accept([StoredCase(case, None, suggestion_id, distance > 0, distance, agent.name)])
        return {"case_id": case_id, "created": created, "edited": distance > 0, "edit_distance": distance}

    def dismiss(self, suggestion_id: str, reason: str | None, agent: Agent) -> dict[str, Any]:
        dismissal = self.store.dismiss_suggestion(suggestion_id, reason, agent.name)
        if dismissal is None:
            raise BigramLMError(f"no suggestion with id {suggestion_id!r} was shown", param="suggestion_id")
        return {"dismissal_id": dismissal.id, "created": dismissal.created}


__all__ = ["Agent", "DashboardApp"]

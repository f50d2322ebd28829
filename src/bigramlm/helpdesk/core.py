"""What every helpdesk connector shares.

``Assist`` answers a conversation (its latest customer turn, read with its thread:
``support.thread``) with a note for agents, and stores a resolved conversation as one case
with its helpdesk and id (``CaseStore.add_conversation_case``). ``StaleGuard`` remembers,
per conversation, the newest customer or agent message seen, so that a suggestion computed
for an older one is dropped rather than posted (``Conversation.stale``'s rule, for
messages that arrive while the suggestion is being written).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable

from bigramlm.data.cases import MAX_MESSAGE_CHARS, MAX_REPLY_CHARS, Case
from bigramlm.data.conversation import AGENT, CUSTOMER, Conversation
from bigramlm.support.settings import SuggestSettings
from bigramlm.support.store import CaseStore, StoredCase

if TYPE_CHECKING:  # the assistant pulls in torch
    from bigramlm.support.assistant import Assistant
    from bigramlm.support.thread import ThreadResult

#: Where a case from a helpdesk comes from (``data.cases.Case.source``).
HELPDESK = "helpdesk"
#: How many suggestions a note shows: an agent reads a note at a glance.
NOTE_SUGGESTIONS = 3


@dataclass(frozen=True)
class Suggestions:
    """The suggestions for one customer turn, as a helpdesk shows them."""

    #: Index of the customer turn they answer.
    turn: int
    intent: str | None
    replies: list[str] = field(default_factory=list)
    #: Whether earlier customer turns were read with the latest.
    with_context: bool = False


def note_text(s: Suggestions) -> str:
    """The private note agents see: the intent, then the suggested replies, best first."""
    head = f"bigramlm suggestions (intent: {s.intent or 'none fits'})"
    if not s.replies:
        return head + "\nNo reply to suggest: the message is outside what the assistant answers."
    return "\n\n".join([head, *(f"{k}. {text}" for k, text in enumerate(s.replies, start=1))])


def resolved_case(conv: Conversation, intent: str | None = None) -> Case | None:
    """The case a resolved conversation makes: the customer's turns (the latest that fit) as
    its message and the agent's last reply as its reply; None without both."""
    asked = [t.text.strip() for t in conv.turns if t.role == CUSTOMER and t.text.strip()]
    replies = [t.text.strip() for t in conv.turns if t.role == AGENT and t.text.strip()]
    if not asked or not replies:
        return None
    message = "\n".join(asked)[-MAX_MESSAGE_CHARS:].strip()
    return Case(message, replies[-1][:MAX_REPLY_CHARS], intent, None, HELPDESK)


class Assist:
    """The assistant and its store, as the connectors use them (any thread may call)."""

    def __init__(self, assistant: "Assistant", store: CaseStore | None, n: int = NOTE_SUGGESTIONS, seed: int | None = 0):
        self.assistant, self.store, self.n, self.seed = assistant, store, n, seed
        # The assistant's decode is one at a time per model: concurrent webhooks queue here.
        self._lock = threading.Lock()

    def suggest_result(self, conv: Conversation) -> "ThreadResult":
        """The assistant's whole answer for the conversation's latest customer turn."""
        from bigramlm.support.thread import suggest_thread

        with self._lock:
            return suggest_thread(self.assistant, conv, SuggestSettings(n=self.n, seed=self.seed))

    def suggest(self, conv: Conversation) -> Suggestions:
        answer = self.suggest_result(conv)
        result = answer.result
        return Suggestions(answer.request.turn, result.understanding.intent,
                           [s.filled_text for s in result.suggestions][: self.n], answer.request.with_context)

    def resolve(self, conv: Conversation) -> tuple[int, bool] | None:
        """Store the resolved conversation as a case, once; (case id, stored now), or None
        (no store, or no customer turn and agent reply to make a case of)."""
        case = resolved_case(conv)
        if case is None or self.store is None:
            return None
        with self._lock:
            intent = self.assistant.understand(case.message, k_similar=0).intent
        labelled = Case(case.message, case.reply, intent, None, HELPDESK)
        return self.store.add_conversation_case(conv, StoredCase(labelled))


class StaleGuard:
    """The newest customer or agent message seen per conversation (by the helpdesk's
    increasing message ids), and how many suggestions were dropped as stale."""

    def __init__(self) -> None:
        self._newest: dict[str, int] = {}
        self._lock = threading.Lock()
        self.offered = 0
        self.dropped = 0

    def saw(self, conversation: str, message: int) -> None:
        with self._lock:
            self._newest[conversation] = max(message, self._newest.get(conversation, message))

    def offer(self, conversation: str, message: int, post: Callable[[], None]) -> bool:
        """``post`` the suggestions for ``message`` unless a newer message came; whether posted."""
        with self._lock:
            stale = self._newest.get(conversation, message) > message
            if stale:
                self.dropped += 1
                return False
        post()
        with self._lock:
            self.offered += 1
        return True


__all__ = ["Assist", "HELPDESK", "StaleGuard", "Suggestions", "note_text", "resolved_case"]

"""Suggestions for the latest customer turn of a conversation, read with its thread.

"yes, that one" after "I want to cancel order 5521" is a cancellation of order 5521. So:

- the intent comes from the latest customer turn alone where that turn is clear; a short
  turn (``CONTEXT_WORDS`` words or fewer) or one the understanding is unsure of (below
  ``CONTEXT_BELOW``, or out of scope) is read after the customer's earlier turns
  (``CONTEXT_TURNS`` of them), which is what the assistant is then asked about;
- values stated anywhere in the thread (an order number, an email) fill the reply's
  placeholders that the brand does not (``support.message_values``, turn by turn: a later
  turn's value replaces an earlier one), so a reply never asks again for what was said;
- a suggestion is for one turn: once a newer customer turn or an agent's reply is in the
  conversation it is stale (``data.conversation.Conversation.stale``) and not offered.

Measured (``benchmarks/helpdesk.py``, 200 test rows of a ``--recipe support`` run, each as
greeting, request, value asked, value stated): the intent of the last turn, read this way,
is right for 0.995 of the threads, as the request alone is (0.995); no top suggestion left
the stated order number or email open.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Callable

from bigramlm.data.conversation import AGENT, CUSTOMER, Conversation
from bigramlm.errors import BigramLMError
from bigramlm.support.message_values import message_values
from bigramlm.support.results import AssistResult, Understanding
from bigramlm.support.settings import SuggestSettings

if TYPE_CHECKING:  # the assistant pulls in torch
    from bigramlm.support.assistant import Assistant

#: A customer turn this short says too little on its own ("yes, that one", "ok thanks").
CONTEXT_WORDS = 4
#: Below this intent probability the latest turn alone is unsure; read with its thread.
CONTEXT_BELOW = 0.5
#: How many earlier customer turns are read before an unclear one (the request is
#: usually the turn just before; more would let an old topic outvote the new one).
CONTEXT_TURNS = 2
#: The longest message the assistant is asked about (the desk's max_message_chars default).
MAX_THREAD_CHARS = 2000


@dataclass(frozen=True)
class ThreadRequest:
    """What the assistant is asked about for a conversation."""

    #: Index of the latest customer turn (what the suggestions are for).
    turn: int
    #: The text the assistant reads: that turn, or the customer's earlier turns and it.
    message: str
    #: Whether earlier turns were read with it.
    with_context: bool
    #: Placeholder -> value stated in the thread.
    values: dict[str, str] = field(default_factory=dict)


@dataclass
class ThreadResult:
    """The assistant's answer for a conversation's latest customer turn."""

    request: ThreadRequest
    result: AssistResult
    conversation: Conversation

    def stale_in(self, now: Conversation) -> bool:
        """Whether the conversation as it is ``now`` makes these suggestions stale."""
        return now.stale(self.request.turn)


def thread_values(conv: Conversation) -> dict[str, str]:
    """Values stated by the customer or an agent anywhere in the thread; a later turn wins."""
    values: dict[str, str] = {}
    for turn in conv.turns:
        if turn.role in (CUSTOMER, AGENT):
            values.update(message_values(turn.text))
    return values


def unclear(text: str, understanding: Understanding) -> bool:
    if len(text.split()) <= CONTEXT_WORDS or understanding.out_of_scope:
        return True
    return understanding.intent_probability is not None and understanding.intent_probability < CONTEXT_BELOW


def read_thread(conv: Conversation, understand: Callable[[str], Understanding]) -> ThreadRequest:
    """The request for the latest customer turn; ``understand`` reads one text (the assistant's)."""
    turn = conv.latest_customer()
    if turn is None:
        raise BigramLMError("the conversation has no customer turn to suggest a reply to", param="turns")
    latest = conv.turns[turn].text.strip()
    if not latest:
        raise BigramLMError("the latest customer turn is empty", param="turns")
    earlier = [t.text.strip() for _, t in conv.customer_turns() if _ < turn and t.text.strip()][-CONTEXT_TURNS:]
    message, context = latest, False
    if earlier and unclear(latest, understand(latest)):
        message, context = "\n".join([*earlier, latest]), True
        message = message[-MAX_THREAD_CHARS:]
    return ThreadRequest(turn, message, context, thread_values(conv))


def fill_from_thread(result: AssistResult, values: dict[str, str], fill: Callable[..., Any]) -> AssistResult:
    """The suggestions' placeholders still open filled with the thread's values (``fill`` is the
    brand's ``BrandProfile.fill``), recorded in each one's ``from_message``."""
    suggestions = []
    for s in result.suggestions:
        if s.unfilled_placeholders and values:
            again = fill(s.filled_text, values)
            s = replace(s, filled_text=again.text, unfilled_placeholders=again.unfilled,
                        from_message={**s.from_message, **again.from_message})
        suggestions.append(s)
    return replace(result, suggestions=suggestions)


def suggest_thread(assistant: "Assistant", conv: Conversation, settings: SuggestSettings,
                   check: Callable[[], None] | None = None) -> ThreadResult:
    """``Assistant.suggest`` for the conversation's latest customer turn, read with its thread."""
    request = read_thread(conv, lambda text: assistant.understand(text, k_similar=0))
    result = assistant.suggest(request.message, settings, check=check)
    return ThreadResult(request, fill_from_thread(result, request.values, assistant.brand.fill), conv)


__all__ = ["ThreadRequest", "ThreadResult", "read_thread", "suggest_thread", "thread_values"]

"""The one form of a conversation, from a helpdesk's webhook to the store: turns with roles.

A customer writes threads, not single messages. A ``Conversation`` is its id on the
helpdesk it came from (``source``: "chatwoot", "zammad", "rt", "openai", "desk") and its
``Turn``s in order, each by the customer, an agent, a bot, or a private note between agents.
Suggestions are for the latest customer turn (``support.thread`` reads it with its thread);
a suggestion made for an older turn is stale (``stale``).

Torch-free: the HTTP routes, the CLI and the store read it without loading a model.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from bigramlm.errors import BigramLMError

CUSTOMER, AGENT, BOT, NOTE = "customer", "agent", "bot", "note"
ROLES = (CUSTOMER, AGENT, BOT, NOTE)
#: The most turns one conversation may hold, and characters per turn (a helpdesk's long
#: thread is read from its end: the latest turns are the ones a reply answers).
MAX_TURNS = 200
MAX_TURN_CHARS = 8000


@dataclass(frozen=True)
class Turn:
    """One message of a conversation: who wrote it, its text, when (seconds since the epoch, if known)."""

    role: str
    text: str
    time: float | None = None
    #: The helpdesk's id of the message (Chatwoot's message id, RT's transaction id), if any.
    id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"role": self.role, "text": self.text, "time": self.time, "id": self.id}


@dataclass(frozen=True)
class Conversation:
    """A thread on a helpdesk: its id there, which helpdesk, and its turns, oldest first."""

    id: str
    source: str
    turns: tuple[Turn, ...] = field(default_factory=tuple)

    def customer_turns(self) -> list[tuple[int, Turn]]:
        return [(i, t) for i, t in enumerate(self.turns) if t.role == CUSTOMER]

    def latest_customer(self) -> int | None:
        """The index of the latest customer turn, or None (no customer has written)."""
        turns = self.customer_turns()
        return turns[-1][0] if turns else None

    def stale(self, turn: int) -> bool:
        """Whether a suggestion for turn ``turn`` is stale: a newer customer turn has come, or an
        agent (or a bot) has replied since, so offering it would answer what is answered."""
        return any(t.role in (CUSTOMER, AGENT, BOT) for t in self.turns[turn + 1 :])

    def with_turn(self, turn: Turn) -> "Conversation":
        return Conversation(self.id, self.source, (*self.turns, turn)[-MAX_TURNS:])

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "source": self.source, "turns": [t.to_dict() for t in self.turns]}


def check_turn(turn: Turn, param: str = "turns") -> Turn:
    if turn.role not in ROLES:
        raise BigramLMError(f"{param}: role {turn.role!r} is not one of {', '.join(ROLES)}", param=param)
    if not isinstance(turn.text, str):
        raise BigramLMError(f"{param}: a turn's text must be text", param=param)
    if len(turn.text) > MAX_TURN_CHARS:
        raise BigramLMError(f"{param}: a turn has {len(turn.text):,} characters; at most {MAX_TURN_CHARS:,}", param=param)
    return turn


def conversation(id: str, source: str, turns: Sequence[Turn]) -> Conversation:
    """A checked conversation; its latest ``MAX_TURNS`` turns."""
    if not isinstance(id, str) or not id.strip() or not isinstance(source, str) or not source.strip():
        raise BigramLMError("a conversation needs an id and a source helpdesk", param="conversation")
    return Conversation(id, source, tuple(check_turn(t) for t in turns)[-MAX_TURNS:])


def from_dict(data: Mapping[str, Any]) -> Conversation:
    """A conversation from its JSON form (``Conversation.to_dict``); one-line errors naming the field."""
    turns = data.get("turns")
    if not isinstance(turns, list):
        raise BigramLMError("turns must be a list of {role, text, time}", param="turns")
    out = []
    for entry in turns:
        if not isinstance(entry, Mapping):
            raise BigramLMError("turns: each turn is an object {role, text, time}", param="turns")
        when = entry.get("time")
        out.append(Turn(str(entry.get("role")), entry.get("text", ""), float(when) if isinstance(when, (int, float)) else None,
                        None if entry.get("id") is None else str(entry.get("id"))))
    return conversation(str(data.get("id", "")), str(data.get("source", "")), out)


#: A transcript line's speaker, as helpdesks write them into prompts: Chatwoot's "Message
#: History:" has ``User:``, ``Support Agent:`` and ``Bot:`` lines; its label task writes
#: ``Customer:`` and ``Agent:``.
SPEAKERS = {"user": CUSTOMER, "customer": CUSTOMER, "contact": CUSTOMER, "support agent": AGENT, "agent": AGENT,
            "assistant": AGENT, "bot": BOT, "private note": NOTE, "note": NOTE}
_SPEAKER = re.compile(r"^\s*(" + "|".join(re.escape(s) for s in sorted(SPEAKERS, key=len, reverse=True)) + r")\s*:\s?(.*)$",
                      re.IGNORECASE)


def parse_transcript(text: str) -> list[Turn]:
    """The turns of a transcript written as ``Speaker: text`` lines; a line without a speaker
    continues the turn before it. Lines before the first speaker (a heading) are not turns."""
    turns: list[list[str]] = []
    for line in text.splitlines():
        match = _SPEAKER.match(line)
        if match:
            turns.append([SPEAKERS[match.group(1).lower()], match.group(2)])
        elif turns and line.strip():
            turns[-1][1] += "\n" + line
    return [Turn(role, body.strip()) for role, body in turns if body.strip()]


__all__ = ["AGENT", "BOT", "CUSTOMER", "Conversation", "NOTE", "ROLES", "Turn", "conversation", "from_dict",
           "parse_transcript"]

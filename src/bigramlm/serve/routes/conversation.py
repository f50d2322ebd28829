"""Conversations on the desk's API: ``POST /api/conversation/suggest`` and ``POST /api/conversation/resolve``.

A client that holds a thread (a helpdesk integration, a script) sends it whole, as
``data.conversation``'s JSON form: ``{"id", "source", "turns": [{"role", "text", "time"}]}``.
``suggest`` answers the latest customer turn read with its thread (``support.thread``):
the ``assist --json`` object, its suggestions recorded for feedback as ``/api/suggest``'s
are, and ``thread``: which turn it answers, whether earlier turns were read, the values
the thread stated. ``resolve`` stores the resolved conversation as one case, with its id
and source.
"""

# No ``from __future__ import annotations``: FastAPI must see the request model's class.

from typing import Any, Literal, Optional

from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from bigramlm.data.conversation import MAX_TURN_CHARS, MAX_TURNS, Conversation, Turn, conversation
from bigramlm.errors import BigramLMError
from bigramlm.helpdesk.core import HELPDESK, resolved_case
from bigramlm.serve.deps import DeskDep, LimitsDep
from bigramlm.serve.middleware import request_agent, request_id
from bigramlm.serve.routes.desk import need_assistant, remember
from bigramlm.support.settings import SuggestSettings
from bigramlm.support.store import StoredCase


class TurnIn(BaseModel):
    role: Literal["customer", "agent", "bot", "note"]
    text: str = Field(max_length=MAX_TURN_CHARS)
    time: Optional[float] = None
    id: Optional[str] = Field(None, max_length=200)


class ConversationIn(BaseModel):
    id: str = Field(min_length=1, max_length=200)
    source: str = Field(min_length=1, max_length=100)
    turns: list[TurnIn] = Field(min_length=1, max_length=MAX_TURNS)

    def typed(self) -> Conversation:
        return conversation(self.id, self.source, [Turn(t.role, t.text, t.time, t.id) for t in self.turns])


class ThreadSuggestRequest(BaseModel):
    conversation: ConversationIn
    n: int = Field(3, ge=1, le=8)
    seed: Optional[int] = None


router = APIRouter(tags=["desk"])


@router.post("/api/conversation/suggest")
async def suggest(req: ThreadSuggestRequest, desk: DeskDep, limits: LimitsDep, request: Request) -> dict[str, Any]:
    """Suggestions for the conversation's latest customer turn, read with its thread."""
    from bigramlm.support.thread import suggest_thread

    assistant, conv = need_assistant(desk), _typed(req.conversation)
    latest = conv.latest_customer()
    if latest is None:
        raise HTTPException(422, "conversation.turns: no customer turn to suggest a reply to")
    if len(conv.turns[latest].text) > limits.max_message_chars:
        raise HTTPException(422, f"conversation.turns: the latest customer turn is longer than "
                                 f"max_message_chars={limits.max_message_chars}")
    answer = await desk.slots.run(lambda job: suggest_thread(assistant, conv, SuggestSettings(n=req.n, seed=req.seed), check=job.check),
                                  gone=request.is_disconnected)
    body = await run_in_threadpool(remember, desk.store, answer.result, request_id(request.scope), request_agent(request.scope))
    r = answer.request
    body["thread"] = {"conversation": conv.id, "source": conv.source, "turn": r.turn, "with_context": r.with_context,
                      "values": r.values}
    return body


@router.post("/api/conversation/resolve")
async def resolve(req: ConversationIn, desk: DeskDep) -> dict[str, Any]:
    """Store a resolved conversation as one case (the customer's turns, the agent's last reply)."""
    conv = _typed(req)
    case = resolved_case(conv)
    if case is None:
        raise HTTPException(422, "turns: a resolved conversation needs a customer turn and an agent's reply")
    stored = await run_in_threadpool(desk.store.add_conversation_case, conv, StoredCase(case))
    return {"case_id": stored[0], "stored": stored[1], "source": HELPDESK, "conversation": conv.id, "helpdesk": conv.source}


def _typed(req: ConversationIn) -> Conversation:
    try:
        return req.typed()
    except BigramLMError as refused:
        raise HTTPException(422, str(refused)) from None

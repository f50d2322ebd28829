"""Suggested replies: ``POST /api/suggest`` (the ``assist --json`` object) and
``POST /api/suggest/stream`` (server-sent events: ``understanding``, ``token``, ``done``)."""

# No ``from __future__ import annotations``: the endpoints are annotated with the module's
# request models and take this app's (``schemas.with_models``), and FastAPI must see those
# classes, not names it cannot resolve.

import logging
import uuid
from typing import TYPE_CHECKING, Any, AsyncIterator, Iterator

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from bigramlm.errors import BigramLMError
from bigramlm.serve.deps import DeskDep, LimitsDep
from bigramlm.serve.desk import Desk
from bigramlm.serve.errors import store_message
from bigramlm.serve.limits import ServerLimits
from bigramlm.serve.middleware import request_agent, request_id
from bigramlm.serve.schemas import Schemas, SuggestBody, with_models
from bigramlm.serve.slots import GenerationTimeout, Job
from bigramlm.serve.sse import MEDIA_TYPE, STREAM_HEADERS, merge_token_events, sse
from bigramlm.support.results import AssistResult, DoneEvent, SuggestEvent
from bigramlm.support.store import CaseStore, StoreUnavailable

if TYPE_CHECKING:  # loaded with the run: the assistant pulls in torch and scikit-learn
    from bigramlm.support.assistant import Assistant

log = logging.getLogger("bigramlm.server")


def router(schemas: Schemas) -> APIRouter:
    api = APIRouter(tags=["desk"])
    app_models = with_models(req=schemas.SuggestRequest)

    @api.post("/api/suggest")
    @app_models
    async def suggest(req: SuggestBody, desk: DeskDep, request: Request) -> dict[str, Any]:
        """Intent, category, ranked suggested replies and similar cases: the ``assist --json`` object.
        A client that hangs up cancels its generation."""
        assistant = need_assistant(desk)
        result = await desk.slots.run(lambda job: assistant.suggest(req.message, req.settings(), intent=req.intent,
                                                                    check=job.check), gone=request.is_disconnected)
        return await run_in_threadpool(remember, desk.store, result, request_id(request.scope), request_agent(request.scope))

    @api.post("/api/suggest/stream")
    @app_models
    async def suggest_stream(req: SuggestBody, desk: DeskDep, limits: LimitsDep, request: Request) -> StreamingResponse:
        """Server-sent events: ``understanding``, ``token`` (index, text), then ``done`` with the full object."""
        assistant = need_assistant(desk)
        items = desk.slots.stream(lambda job: suggest_events(assistant, req, job))
        stream = event_stream(items, desk.store, limits, request_id(request.scope), request_agent(request.scope))
        return StreamingResponse(stream, media_type=MEDIA_TYPE, headers=STREAM_HEADERS)

    return api


def need_assistant(desk: Desk) -> "Assistant":
    assistant = desk.assistant
    if assistant is None:
        raise HTTPException(409, f"this run cannot suggest replies: {desk.assistant_error}")
    return assistant


def suggest_events(assistant: "Assistant", body: SuggestBody, job: Job) -> Iterator[SuggestEvent]:
    return assistant.suggest_stream(body.message, body.settings(), intent=body.intent, check=job.check)


def remember(store: CaseStore, result: AssistResult, rid: str, agent: str | None = None) -> dict[str, Any]:
    """Record what was shown (to ``agent``), so acceptance and edit distance are measured
    against it; the request's id (the access log's) ties the suggestions to it."""
    for s in result.suggestions:
        if not s.id:  # the assistant gives uuids; anything else gets one here
            s.id = uuid.uuid4().hex
    store.record_suggestions([(str(s.id), s.filled_text, s.score, s.base_text or None) for s in result.suggestions],
                             request_id=rid, agent=agent)
    return {**result.to_dict(), "request_id": rid}


async def event_stream(items: AsyncIterator[list[SuggestEvent]], store: CaseStore, limits: ServerLimits,
                       rid: str, agent: str | None = None) -> AsyncIterator[bytes]:
    try:
        async for batch in items:
            for event in merge_token_events(batch):
                if isinstance(event, DoneEvent):
                    yield sse(await run_in_threadpool(remember, store, event.result, rid, agent), "done")
                else:
                    yield sse(event.to_dict(), event.type)
    except GenerationTimeout:
        yield sse({"message": f"generation took longer than {limits.timeout_s:g} s"}, "error")
    except StoreUnavailable as exc:
        yield sse({"message": store_message(exc, "/api/suggest/stream")}, "error")
    except BigramLMError as exc:
        yield sse({"message": str(exc)}, "error")
    except Exception:
        log.exception("suggestion stream failed")
        yield sse({"message": "internal error"}, "error")

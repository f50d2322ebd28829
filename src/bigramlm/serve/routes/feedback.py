"""Agents' feedback on suggestions: ``POST /api/feedback`` (dismiss one).

A dismissal is negative feedback: the store keeps it (which suggestion, its request, when,
why), the desk's figures count it, and the assistant's ranking can push candidates that
look like it down (``bigramlm.support.ranking``). It never becomes a resolved case, so
``learn`` never trains on it.
"""

# No ``from __future__ import annotations``: the endpoints are annotated with the module's
# request models and take this app's (``schemas.with_models``), and FastAPI must see those
# classes, not names it cannot resolve.

from typing import Any

from fastapi import APIRouter, HTTPException, Request, Response

from bigramlm.serve.deps import DeskDep
from bigramlm.serve.desk import Desk
from bigramlm.serve.middleware import request_agent
from bigramlm.serve.schemas import FeedbackRequest, FeedbackSaved, Schemas, with_models
from bigramlm.support.store import SuggestionConflict

RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "the suggestion had been dismissed already; the first record is returned"},
    404: {"description": "no suggestion with this id was shown"},
    409: {"description": "the suggestion was accepted as a case; it cannot be dismissed"},
}


def router(schemas: Schemas) -> APIRouter:
    api = APIRouter(tags=["desk"])

    @api.post("/api/feedback", status_code=201, responses=RESPONSES)
    @with_models(req=schemas.FeedbackRequest)
    def add_feedback(req: FeedbackRequest, desk: DeskDep, response: Response, request: Request) -> FeedbackSaved:
        """Dismiss a suggestion. The answer (201) comes only after the record is committed."""
        saved = dismiss(desk, req, request_agent(request.scope))
        if not saved.created:
            response.status_code = 200
        return saved

    return api


def dismiss(desk: Desk, req: FeedbackRequest, agent: str | None = None) -> FeedbackSaved:
    try:
        dismissal = desk.store.dismiss_suggestion(req.suggestion_id, reason=req.reason, agent=agent)
    except SuggestionConflict as exc:
        raise HTTPException(409, str(exc)) from None
    if dismissal is None:
        raise HTTPException(404, f"no suggestion with id {req.suggestion_id!r} was shown")
    return FeedbackSaved(id=dismissal.id, suggestion_id=dismissal.suggestion_id, request_id=dismissal.request_id,
                         action="dismiss", reason=dismissal.reason, created_at=dismissal.created_at,
                         created=dismissal.created)

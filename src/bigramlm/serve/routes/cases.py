"""Resolved cases and the desk's figures: ``POST /api/cases``, ``GET /api/cases``, ``GET /api/stats``.

Accepting a suggestion that an agent dismissed is refused (409): a suggestion is accepted
or dismissed, never both (``bigramlm.support.store.feedback``).
"""

# No ``from __future__ import annotations``: the endpoints are annotated with the module's
# request models and take this app's (``schemas.with_models``), and FastAPI must see those
# classes, not names it cannot resolve.

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request, Response

from bigramlm.data.cases import DESK, Case
from bigramlm.serve.deps import DeskDep
from bigramlm.serve.desk import Desk
from bigramlm.serve.middleware import request_agent
from bigramlm.serve.schemas import CasePage, CasePageQuery, CaseRequest, CaseSaved, Schemas, with_models
from bigramlm.support.store import StoredCase, StoreStats, SuggestionConflict, normalized_edit_distance


#: An agent's name (``support.store.agents.NAME``).
AGENT_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"


def router(schemas: Schemas) -> APIRouter:
    api = APIRouter(tags=["desk"])

    @api.post("/api/cases", status_code=201, responses={
        200: {"description": "the suggestion had been accepted already: its case, stored once"},
        409: {"description": "the suggestion named was dismissed"}})
    @with_models(req=schemas.CaseRequest)
    def add_case(req: CaseRequest, desk: DeskDep, response: Response, request: Request) -> CaseSaved:
        """Store a resolved case (by the agent whose token came with it). The answer comes
        only after the row is committed."""
        saved, created = save_case(desk, req, request_agent(request.scope))
        if not created:
            response.status_code = 200
        return saved

    @api.get("/api/cases")
    @with_models(page=Annotated[schemas.CasePageQuery, Query()])
    def list_cases(page: Annotated[CasePageQuery, Query()], desk: DeskDep) -> CasePage:
        """Page through the stored cases, oldest first."""
        return case_page(desk, page)

    @api.get("/api/stats")
    def stats(desk: DeskDep, agent: Annotated[str | None, Query(pattern=AGENT_NAME, max_length=64)] = None) -> StoreStats:
        """Acceptance (all, and with light edits only: under 40% normalised edit distance), edit
        distance, dismissals (over suggestions shown), and cases stored since the last ``learn``;
        with ``agent``, that agent's (the suggestions shown to it, its accepts, its dismissals).
        The rates are null until there is something to divide by."""
        return desk.store.desk_stats(agent)

    @api.get("/api/me")
    def me(request: Request) -> dict[str, str | None]:
        """The agent this request's token belongs to (null on a desk without named agents)."""
        return {"agent": request_agent(request.scope)}

    return api


def save_case(desk: Desk, req: CaseRequest, agent: str | None = None) -> tuple[CaseSaved, bool]:
    edited, distance = req.edited, None
    if req.suggestion_id is not None:
        shown = desk.store.get_suggestion(req.suggestion_id)
        if shown is None:
            raise HTTPException(404, f"no suggestion with id {req.suggestion_id!r} was shown")
        # Measured here from what was really shown, not taken from the client.
        distance = normalized_edit_distance(shown.text, req.reply)
        edited = edited or distance > 0
    try:
        case = Case(req.message, req.reply, req.intent, req.category, DESK)
        ((case_id, created),) = desk.store.accept([StoredCase(case, None, req.suggestion_id, edited, distance, agent)])
    except SuggestionConflict as exc:
        raise HTTPException(409, str(exc)) from None
    if not created:  # what was stored the first time
        first = desk.store.get_case(case_id)
        edited, distance = (first.edited, first.edit_distance) if first else (edited, distance)
    return CaseSaved(id=case_id, edited=edited, edit_distance=distance), created


def case_page(desk: Desk, page: CasePageQuery) -> CasePage:
    offset, limit = page.offset, page.limit
    total = desk.store.count()
    items = [c.to_dict() for c in desk.store.list_cases(offset=offset, limit=limit)]
    nxt = offset + len(items)
    return CasePage(total=total, offset=offset, limit=limit, items=items, next_offset=nxt if nxt < total else None)

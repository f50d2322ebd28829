"""The team's edit rules: ``GET /api/rules``, ``POST /api/rules/{rule_id}/disable`` and ``/enable``.

A rule is an edit agents keep making before they send a suggestion, or one the brand
profile writes (``bigramlm.support.edits``); switching one off or on is kept in the store
and reaches the next suggestion at once. A learned rule no agent has switched yet is
``unreviewed`` (the desk marks it new); one with a ``review`` reason waits, disabled, for
an agent to enable it. The rules are the assistant's own (``Assistant.rules``, read as
accepts come): a desk without an assistant has none.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException

from bigramlm.serve.deps import DeskDep
from bigramlm.serve.desk import Desk
from bigramlm.support.edits import Rule

router = APIRouter(tags=["desk"])


@router.get("/api/rules")
def list_rules(desk: DeskDep) -> dict[str, Any]:
    """Every team edit rule, learned from accepts or written in the brand profile, with its switch."""
    return {"rules": [r.to_dict() for r in _rules(desk)]}


@router.post("/api/rules/{rule_id}/{action}", responses={404: {"description": "no such rule"}})
def switch_rule(rule_id: str, action: str, desk: DeskDep) -> dict[str, Any]:
    """``disable`` a rule (suggestions stop carrying it) or ``enable`` it again."""
    if action not in ("disable", "enable"):
        raise HTTPException(404, f"no action {action!r}: use disable or enable")
    rule = next((r for r in _rules(desk) if r.id == rule_id), None)
    if rule is None:
        raise HTTPException(404, f"no rule with id {rule_id!r}")
    desk.store.set_rule(rule_id, action == "enable", rule.describe())
    return {"rule": {**rule.to_dict(), "enabled": action == "enable", "unreviewed": False}}


def _rules(desk: Desk) -> list[Rule]:
    assistant = desk.assistant
    return assistant.rules() if assistant is not None else []

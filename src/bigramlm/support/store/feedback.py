"""The case store's desk feedback: the suggestions shown, the dismissed ones, and the
figures of the desk.

A suggestion an agent was shown ends in one of three ways: accepted (a case that names
it: ``CaseStore.add_case(..., suggestion_id=...)``), dismissed (a ``feedback`` row, action
``dismiss``), or neither. Never both: the store refuses to accept a dismissed suggestion
and to dismiss an accepted one (``SuggestionConflict``), each check inside the writing
transaction, so two agents racing on one suggestion cannot make it both. That is what
keeps a dismissed suggestion's text out of every ``learn``: learn reads the cases table
only, and the text can reach it only by being accepted.

The functions here run on a connection the store gives them, inside its transaction.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any, Collection, Sequence

from sqlalchemy import Connection, bindparam, text

from bigramlm.errors import BigramLMError
from bigramlm.support.store.cases import last_id

DISMISS = "dismiss"
ACTIONS = (DISMISS,)

#: An accepted suggestion counts as lightly edited below this normalised edit distance.
#: Agent-assist products usually count a suggestion as used when the agent sends it as it
#: is or with light edits, not only verbatim; the issue set the cut-off at 40 %.
LIGHT_EDIT_DISTANCE = 0.4


@dataclass(frozen=True)
class ShownSuggestion:
    """A suggestion as it was shown: what acceptance and edit distance are measured against."""

    id: str
    request_id: str
    created_at: float
    text: str
    score: float | None


def insert_suggestions(conn: Connection, suggestions: Sequence[tuple[str, str, float | None, str | None]],
                       request_id: str, agent: str | None = None) -> None:
    """Record shown suggestions: (id, text shown, score, text before team edits or None when
    the same), and the agent they were shown to."""
    if not suggestions:
        return
    now = time.time()
    conn.execute(text(
        "INSERT INTO suggestions(id, request_id, created_at, text, score, base_text, agent)"
        " VALUES (:id, :request_id, :now, :text, :score, :base, :agent) ON CONFLICT(id) DO UPDATE SET"
        " request_id = excluded.request_id, created_at = excluded.created_at, text = excluded.text,"
        " score = excluded.score, base_text = excluded.base_text, agent = excluded.agent"),
        [{"id": str(sid), "request_id": request_id, "now": now, "text": shown, "score": score, "base": base, "agent": agent}
         for sid, shown, score, base in suggestions])


@dataclass(frozen=True)
class AcceptedReply:
    """An accepted suggestion as the store keeps it: what team edit rules are learned from."""

    case_id: int
    intent: str
    #: The named agent who accepted it (None on a desk without agents).
    agent: str | None
    #: The suggestion before any team edit rule was made on it.
    shown: str
    #: The suggestion as the agent saw it (rules made).
    displayed: str
    sent: str


def accepted_replies(conn: Connection, intents: Collection[str], per_intent: int,
                     after_id: int = 0) -> tuple[list[AcceptedReply], int]:
    """The accepted suggestions of ``intents`` stored after the case ``after_id``, the latest
    ``per_intent`` of each, oldest first; and the newest case id now, the next call's
    ``after_id``. Only cases after ``after_id`` are read (a range of the primary key), so a
    reader that keeps the id reads each accept once, however many the store holds."""
    top = last_id(conn)
    if not intents or top <= after_id:
        return [], top
    query = text(
        "SELECT id, intent, agent, shown, displayed, reply FROM (SELECT c.id, c.intent, c.agent,"
        " COALESCE(s.base_text, s.text) AS shown, s.text AS displayed, c.reply,"
        " ROW_NUMBER() OVER (PARTITION BY c.intent ORDER BY c.id DESC) AS recent"
        " FROM cases c JOIN suggestions s ON s.id = c.suggestion_id"
        " WHERE c.id > :after AND c.id <= :top AND c.intent IN :intents) AS latest"
        " WHERE recent <= :n ORDER BY id").bindparams(bindparam("intents", expanding=True))
    rows = conn.execute(query, {"after": int(after_id), "top": top, "intents": sorted(intents), "n": int(per_intent)})
    return [AcceptedReply(int(r[0]), str(r[1]), r[2], str(r[3]), str(r[4]), str(r[5])) for r in rows], top


def rule_settings(conn: Connection) -> dict[str, bool]:
    return {str(r[0]): bool(r[1]) for r in conn.execute(text("SELECT rule_id, enabled FROM rule_settings"))}


def set_rule(conn: Connection, rule_id: str, enabled: bool, description: str | None) -> None:
    conn.execute(text("INSERT INTO rule_settings(rule_id, enabled, updated_at, description) VALUES (:id, :on, :now, :d)"
                      " ON CONFLICT(rule_id) DO UPDATE SET enabled = excluded.enabled, updated_at = excluded.updated_at,"
                      " description = excluded.description"),
                 {"id": rule_id, "on": 1 if enabled else 0, "now": time.time(), "d": description})


def select_suggestion(conn: Connection, suggestion_id: str) -> ShownSuggestion | None:
    row = conn.execute(text("SELECT id, request_id, created_at, text, score FROM suggestions WHERE id = :id"),
                       {"id": str(suggestion_id)}).first()
    return ShownSuggestion(str(row[0]), str(row[1]), float(row[2]), str(row[3]), row[4]) if row else None


class SuggestionConflict(BigramLMError):
    """A suggestion cannot be both accepted and dismissed."""

    def __init__(self, message: str):
        super().__init__(message, param="suggestion_id")


@dataclass(frozen=True)
class Dismissal:
    """One dismissed suggestion: which one, of which request, when, and why (if said)."""

    id: int
    suggestion_id: str
    request_id: str
    created_at: float
    reason: str | None
    text: str
    #: False when the suggestion had been dismissed already (the earlier row is returned).
    created: bool


@dataclass(frozen=True)
class StoreStats:
    """The desk's figures (``GET /api/stats``); the rates are None until there is something to divide by."""

    cases: int
    cases_since_last_learn: int
    last_learned_id: int
    suggestion_requests: int
    suggestions_shown: int
    accepted: int
    accepted_edited: int
    #: requests of which one suggestion was accepted, edited or not, over requests shown
    acceptance_rate: float | None
    #: requests whose accepted suggestion was edited by less than LIGHT_EDIT_DISTANCE, over requests shown
    light_edit_acceptance_rate: float | None
    unedited_rate: float | None
    mean_edit_distance: float | None
    #: suggestions dismissed, and their share of the suggestions shown
    dismissed: int
    dismissal_rate: float | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def insert_dismissal(conn: Connection, suggestion_id: str, reason: str | None,
                     agent: str | None = None) -> Dismissal | None:
    """Record a dismissal of ``suggestion_id``; None if no such suggestion was shown."""
    which = {"s": suggestion_id, "action": DISMISS}
    shown = conn.execute(text("SELECT request_id, text FROM suggestions WHERE id = :s"), which).first()
    if shown is None:
        return None
    accepted = conn.execute(text("SELECT id FROM cases WHERE suggestion_id = :s LIMIT 1"), which).first()
    if accepted is not None:
        raise SuggestionConflict(f"suggestion_id {suggestion_id!r} was accepted (case {accepted[0]}); it cannot be dismissed")
    cur = conn.execute(text(
        "INSERT INTO feedback(created_at, suggestion_id, request_id, action, reason, agent)"
        " VALUES (:now, :s, :request_id, :action, :reason, :agent) ON CONFLICT DO NOTHING"),
        {**which, "now": time.time(), "request_id": shown[0], "reason": reason, "agent": agent},
    )
    row = conn.execute(text("SELECT id, created_at, reason FROM feedback WHERE suggestion_id = :s AND action = :action"),
                       which).one()
    return Dismissal(int(row[0]), suggestion_id, str(shown[0]), float(row[1]), row[2], str(shown[1]), cur.rowcount == 1)


def refuse_dismissed(conn: Connection, suggestion_ids: list[str]) -> None:
    """Refuse to accept a suggestion that was dismissed (inside the transaction that would store it)."""
    for suggestion_id in suggestion_ids:
        if conn.execute(text("SELECT 1 FROM feedback WHERE suggestion_id = :s AND action = :action"),
                        {"s": suggestion_id, "action": DISMISS}).first() is not None:
            raise SuggestionConflict(f"suggestion_id {suggestion_id!r} was dismissed; it cannot be accepted")


def recent_dismissed_texts(conn: Connection, limit: int, exclude_reasons: Sequence[str] = ()) -> list[str]:
    """The texts of the ``limit`` latest dismissals, newest first, each text once; those
    dismissed for one of ``exclude_reasons`` left out."""
    skip = " AND (f.reason IS NULL OR f.reason NOT IN :reasons)" if exclude_reasons else ""
    query = text("SELECT s.text FROM feedback f JOIN suggestions s ON s.id = f.suggestion_id"
                 f" WHERE f.action = :action{skip} ORDER BY f.id DESC LIMIT :n")
    args: dict[str, object] = {"action": DISMISS, "n": int(limit)}
    if exclude_reasons:
        query, args["reasons"] = query.bindparams(bindparam("reasons", expanding=True)), list(exclude_reasons)
    rows = conn.execute(query, args).fetchall()
    return list(dict.fromkeys(str(r[0]) for r in rows))


def read_stats(conn: Connection, agent: str | None = None) -> StoreStats:
    """The figures, from one connection (the caller reads them in one transaction); with
    ``agent``, that agent's: the suggestions shown to it, its accepts and its dismissals."""
    args = {"agent": agent, "light": LIGHT_EDIT_DISTANCE, "action": DISMISS}
    one = lambda sql: conn.execute(text(sql), args).one()  # noqa: E731
    mine = "" if agent is None else " AND {}agent = :agent"  # each query's filter, on its table's alias
    total, since = one("SELECT COUNT(*), COUNT(*) FILTER (WHERE learn_id IS NULL) FROM cases WHERE TRUE" + mine.format(""))
    requests, shown = one("SELECT COUNT(DISTINCT request_id), COUNT(*) FROM suggestions WHERE TRUE" + mine.format(""))
    # An unedited acceptance counts as distance 0; one marked edited without a distance
    # (a library caller) is not known to be light, so it does not count as light.
    accepted_requests, light_requests = one(
        "SELECT COUNT(DISTINCT s.request_id), COUNT(DISTINCT s.request_id) FILTER (WHERE"
        " COALESCE(c.edit_distance, CASE WHEN c.edited <> 0 THEN 1.0 ELSE 0.0 END) < :light)"
        " FROM cases c JOIN suggestions s ON s.id = c.suggestion_id WHERE TRUE" + mine.format("c."))
    accepted, edited, mean_distance = one(
        "SELECT COUNT(*), COALESCE(SUM(edited), 0), AVG(edit_distance) FROM cases WHERE suggestion_id IS NOT NULL"
        + mine.format(""))
    (dismissed,) = one("SELECT COUNT(*) FROM feedback WHERE action = :action" + mine.format(""))
    (last,) = one("SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'last_learned_id'")
    rate = lambda part, whole: part / whole if whole else None  # noqa: E731
    return StoreStats(
        cases=int(total), cases_since_last_learn=int(since), last_learned_id=int(last or 0),
        suggestion_requests=int(requests), suggestions_shown=int(shown), accepted=int(accepted),
        accepted_edited=int(edited), acceptance_rate=rate(accepted_requests, requests),
        light_edit_acceptance_rate=rate(light_requests, requests),
        unedited_rate=rate(accepted - edited, accepted),
        mean_edit_distance=float(mean_distance) if mean_distance is not None else None,
        dismissed=int(dismissed), dismissal_rate=rate(dismissed, shown),
    )

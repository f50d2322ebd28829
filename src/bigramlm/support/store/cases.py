"""The store's resolved cases and the learns that trained on them.

Each case records the ``learn`` that trained on it (``learn_id``; NULL: not learned yet),
and ``learns`` keeps one row per learn with the sha256 of the weights before and after,
so that ``undo_learn`` can restore the weights and the marks together. ``learn --cases
FILE`` adds its cases only after the new weights are written, in the same transaction
that marks them learned, and a file's case is stored once however often it is learned
(a unique index on its content's sha256). ``last_learned_id`` (in ``meta``) is kept as
the newest learned case, for the desk's figures.

The functions here run on a connection the store gives them, inside its transaction.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass, replace
from typing import Any, Iterable, Sequence

from sqlalchemy import Connection, Row, text

from bigramlm.data.cases import DESK, LEARN, Case, check_case


@dataclass(frozen=True)
class StoredCase:
    """A case as the store keeps it: the case (its id is the store's), when it was stored,
    and, for one accepted on the desk, the suggestion it accepted and how much it was edited."""

    case: Case
    created_at: float | None = None  # None until stored
    suggestion_id: str | None = None
    edited: bool = False
    edit_distance: float | None = None
    #: The agent who accepted it on the desk (``support.store.agents``), when agents have names.
    agent: str | None = None

    @property
    def id(self) -> int | None:
        return self.case.id

    def to_dict(self) -> dict[str, Any]:
        c = self.case
        return {"id": c.id, "created_at": self.created_at, "message": c.message, "reply": c.reply, "intent": c.intent,
                "category": c.category, "suggestion_id": self.suggestion_id, "edited": self.edited,
                "edit_distance": self.edit_distance, "source": c.source, "agent": self.agent}


@dataclass(frozen=True)
class LearnChanges:
    """The sha256 of the learned files a learn changed, before and after (None: not changed)."""

    weights_before: str | None = None
    weights_after: str | None = None
    understanding_before: str | None = None
    understanding_after: str | None = None
    token: str | None = None


@dataclass(frozen=True)
class LearnRecord:
    """One learn: which cases it counted, and what it changed."""

    id: int
    created_at: float
    cases: int
    changes: LearnChanges


COLUMNS = "id, created_at, message, reply, intent, category, suggestion_id, edited, edit_distance, source, agent"
_INSERT = ("INSERT INTO cases(created_at, message, reply, intent, category, suggestion_id, edited, edit_distance,"
           " source, content_sha256, agent) VALUES (:created_at, :message, :reply, :intent, :category, :suggestion_id,"
           " :edited, :edit_distance, :source, :content_sha256, :agent)")
INSERT = text(_INSERT + " RETURNING id")
#: A learn's file case is stored once (the unique index on its content, for source 'learn').
INSERT_ONCE = text(_INSERT + " ON CONFLICT DO NOTHING")


def case_digest(case: Case) -> str:
    """What makes a case the same case: its message, reply and labels."""
    return hashlib.sha256(json.dumps([case.message, case.reply, case.intent, case.category],
                                     ensure_ascii=False).encode("utf-8")).hexdigest()


def row_values(stored: StoredCase, now: float) -> dict[str, Any]:
    c = stored.case
    check_case(c)
    return {"created_at": now, "message": c.message, "reply": c.reply, "intent": c.intent, "category": c.category,
            "suggestion_id": stored.suggestion_id, "edited": 1 if stored.edited else 0,
            "edit_distance": stored.edit_distance, "source": c.source if c.resolved else DESK,
            "content_sha256": case_digest(c), "agent": stored.agent}


def from_row(row: Row[Any]) -> StoredCase:
    case = Case(row.message, row.reply, row.intent, row.category, row.source, int(row.id))
    return StoredCase(case, float(row.created_at), row.suggestion_id, bool(row.edited), row.edit_distance, row.agent)


def insert(conn: Connection, cases: Sequence[StoredCase]) -> list[tuple[int, bool]]:
    """Store the cases; (id, stored now) each. A suggestion is accepted once: a case naming
    one that was accepted already is that case (ten agents on one suggestion make one case)."""
    now, out = time.time(), []
    for c in cases:
        found = conn.execute(text("SELECT id FROM cases WHERE suggestion_id = :s"), {"s": c.suggestion_id}).scalar() \
            if c.suggestion_id is not None else None
        out.append((int(found), False) if found is not None else
                   (int(conn.execute(INSERT, row_values(c, now)).scalar_one()), True))
    return out


@dataclass(frozen=True)
class CaseTexts:
    """The texts of the cases after one id up to ``last_id``: their messages, and each distinct
    reply with how many of the cases gave it."""

    last_id: int
    messages: list[str]
    replies: list[tuple[str, int]]


#: The newest cases whose texts a desk reads (the words and the word model its drafts are
#: checked against). All of 1,000,000 synthetic cases (SQLite, 2 cores) took 5.2 s to read
#: and 3.5 s to add, behind the serving desk, where suggestions meanwhile took up to 5.6 s
#: (their decode waits for the GIL); the newest 50,000: 0.3 s and 1.3 s (20,000: 0.15 s and
#: 1.2 s, mostly the distinct replies' word model). A word found only in older cases is
#: known again once a newer case uses it.
TEXT_WINDOW = 50_000


def last_id(conn: Connection) -> int:
    """The newest case's id (0 for an empty store). Ids only grow, so "the newest N cases" are
    those above ``last_id - N`` (fewer where ids were skipped): one index lookup at any size."""
    return int(conn.execute(text("SELECT COALESCE(MAX(id), 0) FROM cases")).scalar_one())


def texts_since(conn: Connection, after_id: int, newest: int = TEXT_WINDOW) -> CaseTexts:
    """``CaseTexts`` of the cases after ``after_id``, at most the ``newest`` of them, read in
    one snapshot (the caller's)."""
    last = last_id(conn)
    if last <= after_id:
        return CaseTexts(after_id, [], [])
    span = {"after": max(int(after_id), last - int(newest)), "last": last}
    # Not DISTINCT: its sort took 5.5 s of 1,000,000 messages against 1.3 s to read them all
    # (SQLite), and the reader keeps a set of their words anyway.
    messages = conn.execute(text("SELECT message FROM cases WHERE id > :after AND id <= :last"), span).scalars()
    replies = conn.execute(text("SELECT reply, COUNT(*) FROM cases WHERE id > :after AND id <= :last GROUP BY reply"), span)
    return CaseTexts(last, [str(m) for m in messages], [(str(r), int(n)) for r, n in replies])


def select(conn: Connection, where: str = "", args: dict[str, Any] | None = None, tail: str = "") -> list[StoredCase]:
    rows = conn.execute(text(f"SELECT {COLUMNS} FROM cases {where} ORDER BY id {tail}"), args or {}).fetchall()
    return [from_row(r) for r in rows]


def insert_learn_cases(conn: Connection, new_cases: Sequence[Case]) -> tuple[list[int], int]:
    """Store a learn's file cases, once each however often they are learned; returns their
    ids and how many of them were new to the store."""
    now, stored, ids = time.time(), 0, []
    for case in new_cases:
        learned = replace(case, source=LEARN)
        stored += conn.execute(INSERT_ONCE, row_values(StoredCase(learned), now)).rowcount
        ids.append(int(conn.execute(text("SELECT id FROM cases WHERE source = :source AND content_sha256 = :sha"),
                                    {"source": LEARN, "sha": case_digest(learned)}).scalar_one()))
    return ids, stored


def record_learn(conn: Connection, new_cases: Sequence[Case], learned_ids: Iterable[int],
                 changes: LearnChanges) -> tuple[list[int], int]:
    """Store a learn's file cases (once each) and, where it changed the weights, mark every
    case it trained on; returns the file cases' ids and how many were new to the store."""
    ids, stored = insert_learn_cases(conn, new_cases)
    trained = sorted(set(ids) | {int(i) for i in learned_ids}) if changes.weights_after else []
    learn_id = int(conn.execute(text(
        "INSERT INTO learns(created_at, cases, weights_before, weights_after, understanding_before, understanding_after,"
        " token) VALUES (:now, :cases, :weights_before, :weights_after, :understanding_before, :understanding_after,"
        " :token) RETURNING id"), {"now": time.time(), "cases": len(trained), **asdict(changes)}).scalar_one())
    if trained:
        conn.execute(text("UPDATE cases SET learn_id = :learn WHERE id = :id AND learn_id IS NULL"),
                     [{"learn": learn_id, "id": i} for i in trained])
    refresh_last_learned(conn)
    return ids, stored


_LEARN = ("SELECT id, created_at, cases, weights_before, weights_after, understanding_before, understanding_after, token"
          " FROM learns")


def _learn(row: Sequence[Any] | None) -> LearnRecord | None:
    if row is None:
        return None
    return LearnRecord(int(row[0]), float(row[1]), int(row[2]), LearnChanges(row[3], row[4], row[5], row[6], row[7]))


#: The learns that changed a learned file and were not undone: the chain ``learn --undo`` walks back.
_CHAIN = " WHERE undone_at IS NULL AND (weights_after IS NOT NULL OR understanding_after IS NOT NULL)"


def last_learn(conn: Connection) -> LearnRecord | None:
    """The latest learn that changed a learned file and was not undone, or None."""
    return _learn(conn.execute(text(f"{_LEARN}{_CHAIN} ORDER BY id DESC LIMIT 1")).first())


def learn_chain(conn: Connection) -> list[LearnRecord]:
    """Every learn that changed a learned file and was not undone, oldest first."""
    return [r for r in map(_learn, conn.execute(text(f"{_LEARN}{_CHAIN} ORDER BY id")).fetchall()) if r is not None]


def learn_by_token(conn: Connection, token: str) -> LearnRecord | None:
    return _learn(conn.execute(text(f"{_LEARN} WHERE token = :token"), {"token": token}).first())


def recent_learns(conn: Connection, limit: int) -> list[LearnRecord]:
    rows = conn.execute(text(f"{_LEARN} ORDER BY id DESC LIMIT :n"), {"n": int(limit)}).fetchall()
    return [r for r in map(_learn, rows) if r is not None]


def undo_learns(conn: Connection, learn_ids: Iterable[int]) -> int:
    """Mark the learns' cases as not learned and the learns as undone; returns how many cases.
    Doing it again changes nothing (an interrupted undo is finished by doing it again)."""
    now, unmarked = time.time(), 0
    for learn_id in learn_ids:
        unmarked += int(conn.execute(text("UPDATE cases SET learn_id = NULL WHERE learn_id = :id"),
                                     {"id": int(learn_id)}).rowcount)
        conn.execute(text("UPDATE learns SET undone_at = :now WHERE id = :id AND undone_at IS NULL"),
                     {"now": now, "id": int(learn_id)})
    refresh_last_learned(conn)
    return unmarked


def refresh_last_learned(conn: Connection) -> None:
    """``last_learned_id``: the newest case a learn trained on (kept for the desk's figures)."""
    conn.execute(text("UPDATE meta SET value = (SELECT CAST(COALESCE(MAX(id), 0) AS TEXT) FROM cases"
                      " WHERE learn_id IS NOT NULL) WHERE key = 'last_learned_id'"))

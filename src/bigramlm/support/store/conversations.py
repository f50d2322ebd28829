"""Resolved conversations from a helpdesk, and the deliveries its webhooks already brought.

A resolved conversation is stored as a case (the customer's turns as its message, the
agent's reply that resolved it as its reply) beside a row that says where it came from:
the helpdesk and the conversation's id there, with the turns as JSON. One case per
conversation: a resolution delivered twice is the case already stored.

The functions here run on a connection the store gives them, inside its transaction.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

from sqlalchemy import Connection, text

from bigramlm.data.conversation import Conversation
from bigramlm.support.store import cases as case_rows
from bigramlm.support.store.cases import StoredCase


@dataclass(frozen=True)
class ConversationSource:
    """Where a stored case came from: its helpdesk and the conversation's id there."""

    case_id: int
    helpdesk: str
    conversation_id: str


def add_conversation_case(conn: Connection, conv: Conversation, stored: StoredCase) -> tuple[int, bool]:
    """Store the conversation's case once; (case id, stored now)."""
    found = conn.execute(text("SELECT case_id FROM conversation_cases WHERE helpdesk = :h AND conversation_id = :c"),
                         {"h": conv.source, "c": conv.id}).scalar()
    if found is not None:
        return int(found), False
    case_id = case_rows.insert(conn, [stored])[0][0]
    conn.execute(text("INSERT INTO conversation_cases(case_id, helpdesk, conversation_id, turns, created_at)"
                      " VALUES (:case, :h, :c, :turns, :now)"),
                 {"case": case_id, "h": conv.source, "c": conv.id, "now": time.time(),
                  "turns": json.dumps([t.to_dict() for t in conv.turns], ensure_ascii=False)})
    return case_id, True


def source_of(conn: Connection, case_id: int) -> ConversationSource | None:
    row = conn.execute(text("SELECT case_id, helpdesk, conversation_id FROM conversation_cases WHERE case_id = :id"),
                       {"id": int(case_id)}).first()
    return None if row is None else ConversationSource(int(row[0]), str(row[1]), str(row[2]))


def claim_delivery(conn: Connection, helpdesk: str, delivery: str) -> bool:
    """Record a delivery as handled; False where it was already (a webhook sent again)."""
    return bool(conn.execute(text("INSERT INTO helpdesk_deliveries(helpdesk, delivery, created_at) VALUES (:h, :d, :now)"
                                  " ON CONFLICT DO NOTHING"), {"h": helpdesk, "d": delivery, "now": time.time()}).rowcount)


def release_delivery(conn: Connection, helpdesk: str, delivery: str) -> None:
    """Forget a delivery whose work failed for good, so that the helpdesk's own retry is taken."""
    conn.execute(text("DELETE FROM helpdesk_deliveries WHERE helpdesk = :h AND delivery = :d"), {"h": helpdesk, "d": delivery})

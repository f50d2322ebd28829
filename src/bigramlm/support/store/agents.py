"""Agents with names: each has a token, which the store keeps only as its sha256.

``bigramlm agents add NAME RUN`` prints a new agent's token once; the desk then accepts
only agents' tokens (``serve.middleware.RequestGuard``), and what an agent accepts,
edits, dismisses and is shown is recorded under its name, for ``/api/stats?agent=NAME``.
A removed agent's token is refused from the next request on. ``bigramlm agents rotate
NAME RUN`` gives an active agent a new token in one statement: the old one is refused from
the next request on, and there is never a moment without that agent (a desk beyond loopback
with no active agent is locked, ``serve.middleware.RequestGuard``).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass

from sqlalchemy import Connection, text

from bigramlm.errors import BigramLMError

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
#: Tokens start with this, so that one found in a log or a config says what it is.
TOKEN_PREFIX = "bla_"


@dataclass(frozen=True)
class Agent:
    name: str
    created_at: float
    removed_at: float | None = None

    @property
    def active(self) -> bool:
        return self.removed_at is None


def digest(token: str | bytes) -> str:
    return hashlib.sha256(token if isinstance(token, bytes) else token.encode("utf-8")).hexdigest()


def check_name(name: str) -> str:
    if not isinstance(name, str) or not NAME.match(name):
        raise BigramLMError(f"agent name {name!r} must be 1-64 letters, digits, '.', '_' or '-', starting with a "
                            "letter or digit", param="name")
    return name


def add_agent(conn: Connection, name: str) -> str:
    """A new agent (or a removed one back, with a new token); returns its token."""
    check_name(name)
    row = conn.execute(text("SELECT removed_at FROM agents WHERE name = :name"), {"name": name}).first()
    if row is not None and row[0] is None:
        raise BigramLMError(f"agent {name!r} exists already; give it a new token with `bigramlm agents rotate {name} RUN`",
                            param="name")
    token = new_token()
    conn.execute(text("INSERT INTO agents(name, token_sha256, created_at, removed_at) VALUES (:name, :sha, :now, NULL)"
                      " ON CONFLICT(name) DO UPDATE SET token_sha256 = excluded.token_sha256,"
                      " created_at = excluded.created_at, removed_at = NULL"),
                 {"name": name, "sha": digest(token), "now": time.time()})
    return token


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def rotate_agent(conn: Connection, name: str) -> str:
    """A new token for the active agent ``name`` (returned); the old one is refused from the
    next request on. One UPDATE: the agent stays active throughout."""
    token = new_token()
    changed = conn.execute(text("UPDATE agents SET token_sha256 = :sha WHERE name = :name AND removed_at IS NULL"),
                           {"sha": digest(token), "name": check_name(name)}).rowcount
    if changed != 1:
        raise BigramLMError(f"no active agent {name!r}; add it with `bigramlm agents add {name} RUN`", param="name")
    return token


def remove_agent(conn: Connection, name: str) -> bool:
    """Refuse the agent's token from now on (its records keep its name); False if no such agent."""
    return conn.execute(text("UPDATE agents SET removed_at = :now WHERE name = :name AND removed_at IS NULL"),
                        {"now": time.time(), "name": check_name(name)}).rowcount == 1


def list_agents(conn: Connection) -> list[Agent]:
    return [Agent(str(r[0]), float(r[1]), r[2]) for r in
            conn.execute(text("SELECT name, created_at, removed_at FROM agents ORDER BY name")).fetchall()]


def identify(conn: Connection, token: bytes) -> tuple[bool, str | None]:
    """Whether the store has active agents, and the one whose token this is (None: none).
    One query a request; every active agent's digest is compared in constant time, so the
    answer's timing says nothing about the token."""
    wanted = digest(token).encode("ascii")
    rows = conn.execute(text("SELECT name, token_sha256 FROM agents WHERE removed_at IS NULL")).fetchall()
    found = None
    for name, stored in rows:
        if hmac.compare_digest(wanted, str(stored).encode("ascii")):
            found = str(name)
    return bool(rows), found


def any_agents(conn: Connection) -> bool:
    return conn.execute(text("SELECT 1 FROM agents WHERE removed_at IS NULL LIMIT 1")).first() is not None

"""Pure ASGI middleware: the access log, the request guard, the security headers.

Outermost first at request time: log, then security headers, then the guard, so that
every answer, the guard's refusals included, is logged once and carries the headers.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import re
import time
import uuid
from typing import Any, Callable, Iterable, MutableMapping, Protocol

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool

from bigramlm.serve.docs import DOCS_ASSETS_URL, DOCS_URL
from bigramlm.serve.errors import app_path, json_error, store_error
from bigramlm.serve.limits import ServerLimits
from bigramlm.serve.network import host_name
from bigramlm.support.store.database import StoreUnavailable

log = logging.getLogger("bigramlm.server")

#: Reachable without the bearer token: the page, its files, liveness and the API's documentation.
PUBLIC_PATHS = {"/", "/healthz", DOCS_URL, DOCS_URL + "/oauth2-redirect", "/openapi.json", "/favicon.ico"}
PUBLIC_PREFIXES = ("/static/", DOCS_ASSETS_URL + "/")
_JSON_TYPES = ("application/json",)


def printable(text: str) -> str:
    """``text`` with every character that could break a log line escaped, as ``repr`` would.

    Control characters (a decoded ``%0A`` in a path could forge a second log line), other
    non-printables, spaces (the log's field separator) and backslashes (so an escape in
    the log is never ambiguous) become ``\\n``, ``\\x00``, ``\\x20``, ``\\\\``.
    """
    return "".join(c if c.isprintable() and c not in " \\" else _escape(c) for c in text)


def _escape(c: str) -> str:
    return "\\x20" if c == " " else c.encode("unicode_escape").decode("ascii")


class _HTTPMiddleware:
    """Pure ASGI middleware that acts on HTTP requests and passes anything else (lifespan) through."""

    def __init__(self, app: Callable):
        self.app = app

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        await self.handle(scope, receive, send)

    async def handle(self, scope: dict, receive: Callable, send: Callable) -> None:
        raise NotImplementedError


#: A client's own ``X-Request-ID`` is kept when it is this plain (a proxy's id, say); any other gets a new one.
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


def request_id(scope: MutableMapping[str, Any]) -> str:
    """The request's id: the one ``AccessLog`` gave it (the API's ``request_id``, the
    ``X-Request-ID`` header and the access line all carry it)."""
    return str(scope.setdefault("state", {}).setdefault("request_id", uuid.uuid4().hex))


class AccessLog(_HTTPMiddleware):
    """One log line per request when its response has finished: method, route, status,
    latency and the request's id (also sent back as ``X-Request-ID``).

    The path is logged without its query string, escaped (``printable``), and bodies are
    never looked at, so a customer's message cannot reach the log nor a client forge a line.
    """

    async def handle(self, scope: dict, receive: Callable, send: Callable) -> None:
        start = time.perf_counter()
        status = {"code": 500}
        given = dict(scope.get("headers") or []).get(b"x-request-id", b"").decode("latin-1")
        scope.setdefault("state", {})["request_id"] = given if _REQUEST_ID.match(given) else uuid.uuid4().hex
        rid = request_id(scope)

        async def send_logged(message: dict) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                message = {**message, "headers": [*message.get("headers", []), (b"x-request-id", rid.encode("ascii"))]}
            await send(message)

        try:
            await self.app(scope, receive, send_logged)
        finally:
            route = scope.get("route")
            path = getattr(route, "path", None) or app_path(scope) or "?"
            log.info("%s %s %d %.1fms request_id=%s", printable(str(scope.get("method", "?"))), printable(str(path)),
                     status["code"], (time.perf_counter() - start) * 1000, rid,
                     extra={"request_id": rid, "status": status["code"]})


#: ``RequestGuard._caller``'s answer for a request without a valid token.
_REFUSED = object()
#: Its answer on a desk beyond loopback without a token once no agent is active: no request passes.
_LOCKED = object()
_LOCKED_MESSAGE = ("this desk is locked: it listens beyond loopback without a token and has no active agent; "
                   "add one with `bigramlm agents add NAME RUN` (or restart it with --token)")


class AgentDirectory(Protocol):
    """Who may use the desk (the case store: ``support.store.agents``)."""

    def identify(self, token: bytes) -> tuple[bool, str | None]: ...


def request_agent(scope: MutableMapping[str, Any]) -> str | None:
    """The named agent a request comes from (None on a desk without agents)."""
    agent = scope.get("state", {}).get("agent")
    return str(agent) if agent is not None else None


class RequestGuard(_HTTPMiddleware):
    """Host, bearer token, JSON content type, body size and body deadline, checked before any route runs.

    ``allowed_hosts``: on loopback the desk has no token, so a web page elsewhere could
    try DNS rebinding (its own name resolving to 127.0.0.1) to read the API from the
    agent's browser; such requests carry that foreign name in ``Host`` and are refused.

    ``token``: compared with the UTF-8 bytes after ``Bearer `` in ``Authorization``. Header
    values are bytes on the wire, so a non-ASCII token is sent as its UTF-8 bytes (the desk
    page does so; with httpx, pass the header value as bytes).

    ``agents``: once the store has an agent (``bigramlm agents add``), only an active
    agent's token is accepted (``token`` no longer is), and the agent's name goes with the
    request (``request_agent``) into what it stores.

    ``closed``: the desk listens beyond loopback without ``token`` (``serve``), so only
    agents' tokens guard it; with no active agent (the last one removed) it refuses every
    guarded request rather than opening to anyone (``_LOCKED``).
    """

    def __init__(self, app: Callable, token: str | None, limits: ServerLimits, allowed_hosts: Iterable[str] | None = None,
                 agents: "AgentDirectory | None" = None, closed: bool = False):
        super().__init__(app)
        self.token = token.encode("utf-8") if token else None
        self.agents = agents
        self.closed = closed
        self.limits = limits
        self.allowed_hosts = {h.lower() for h in allowed_hosts} if allowed_hosts is not None else None

    async def handle(self, scope: dict, receive: Callable, send: Callable) -> None:
        path: str = app_path(scope)
        raw = {k.lower(): v for k, v in scope.get("headers", [])}
        refusal = self._wrong_host(path, raw)
        if refusal is None and not _is_public(path):
            refusal = await self._identify(scope, path, raw)
        if refusal is None:
            refusal = self._wrong_body(path, raw, scope.get("method"))
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        if scope.get("method") not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        try:
            # Read the body here, bounded in size and time, so that neither a chunked upload
            # without end nor a client trickling bytes can hold the server.
            async with asyncio.timeout(self.limits.body_timeout_s):
                body = await self._read_body(receive)
        except TimeoutError:
            await json_error(408, f"the request body took longer than {self.limits.body_timeout_s:g} s to arrive", path,
                             {"Connection": "close"}, bound="body_timeout_s")(scope, receive, send)
            return
        if body is None:  # the client went away
            return
        if len(body) > self.limits.max_body_bytes:
            await self._too_large(path)(scope, receive, send)
            return
        if json_too_deep(body, self.limits.max_json_depth):
            await json_error(400, f"request body: JSON nested deeper than {self.limits.max_json_depth} levels", path,
                             bound="max_json_depth")(scope, receive, send)
            return
        await self.app(scope, _replay(body, receive), send)

    def _wrong_host(self, path: str, raw: dict[bytes, bytes]) -> Callable | None:
        if self.allowed_hosts is not None and host_name(raw.get(b"host", b"").decode("latin-1")) not in self.allowed_hosts:
            return json_error(421, "this server answers only to its loopback address", path)
        return None

    def _wrong_body(self, path: str, raw: dict[bytes, bytes], method: str | None) -> Callable | None:
        """The response that refuses this request's body before it is read, or None."""
        if method in ("POST", "PUT", "PATCH"):
            ctype = raw.get(b"content-type", b"").decode("latin-1").split(";")[0].strip().lower()
            if ctype not in _JSON_TYPES:
                return json_error(415, f"content type must be application/json (got {ctype or 'none'})", path)
            declared = raw.get(b"content-length", b"")
            if declared.isdigit() and int(declared) > self.limits.max_body_bytes:
                return self._too_large(path)
        return None

    async def _identify(self, scope: dict, path: str, raw: dict[bytes, bytes]) -> Callable | None:
        """Who the request comes from (``scope["state"]["agent"]``), or the response that refuses it.
        The store is asked in a worker thread: a store far away (or down) never holds the event loop."""
        header = raw.get(b"authorization", b"")
        try:
            agent = self._caller(header) if self.agents is None else await run_in_threadpool(self._caller, header)
        except StoreUnavailable as exc:
            return store_error(exc, path)
        if agent is _REFUSED:
            return json_error(401, "missing or wrong bearer token", path, {"WWW-Authenticate": "Bearer"})
        if agent is _LOCKED:
            return json_error(401, _LOCKED_MESSAGE, path, {"WWW-Authenticate": "Bearer"})
        scope.setdefault("state", {})["agent"] = agent
        return None

    def _caller(self, header: bytes) -> "str | None | object":
        """The agent the request comes from (None: no agents, or none needed), ``_REFUSED``, or
        ``_LOCKED`` (a ``closed`` desk without a ``token`` and with no active agent)."""
        scheme, _, value = header.partition(b" ")
        bearer, value = scheme.lower() == b"bearer", value.strip()
        if self.agents is not None:
            configured, name = self.agents.identify(value if bearer else b"")
            if configured:
                return name if name is not None else _REFUSED
        if self.token is None:
            return _LOCKED if self.closed else None
        # compare_digest takes time independent of where the secrets differ.
        return None if bearer and hmac.compare_digest(value, self.token) else _REFUSED

    def _too_large(self, path: str) -> Any:
        return json_error(413, f"request body too large: at most {self.limits.max_body_bytes} bytes", path,
                          bound="max_body_bytes")

    async def _read_body(self, receive: Callable) -> bytearray | None:
        body = bytearray()
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > self.limits.max_body_bytes:
                break
        return body


#: Every byte but JSON's brackets, deleted by ``bytes.translate`` to leave the brackets alone.
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_ESCAPE = re.compile(rb"\\.", re.DOTALL)
_STRING = re.compile(rb'"[^"]*"')


def json_too_deep(body: bytes | bytearray, limit: int) -> bool:
    """Whether arrays and objects nest deeper than ``limit`` in ``body``, told without parsing
    it (brackets inside strings do not count). Linear in the body: escapes go first (so
    ``\\"`` is no quote), then strings, then every byte but brackets; only a body with more
    than ``limit`` opening brackets is walked."""
    brackets = _STRING.sub(b"", _ESCAPE.sub(b"", body)).translate(None, _NOT_BRACKETS)
    if brackets.count(b"[") + brackets.count(b"{") <= limit:
        return False
    depth = 0
    for b in brackets:
        depth += 1 if b in b"[{" else -1
        if depth > limit:
            return True
    return False


def _is_public(path: str) -> bool:
    return path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES)


def _replay(body: bytearray, receive: Callable) -> Callable:
    replayed = {"done": False}

    async def replay() -> dict:
        if not replayed["done"]:
            replayed["done"] = True
            return {"type": "http.request", "body": bytes(body), "more_body": False}
        return await receive()

    return replay


class SecurityHeaders(_HTTPMiddleware):
    """No framing, no sniffing, no referrer; a strict CSP on the desk page itself.

    The CSP is a second line behind inserting model text with ``textContent``: even if
    markup slipped into the DOM, inline scripts and event handlers would not run.
    """

    CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
           "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")

    async def handle(self, scope: dict, receive: Callable, send: Callable) -> None:
        path = app_path(scope)

        async def send_with_headers(message: dict) -> None:
            if message["type"] == "http.response.start":
                extra = [(b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer"),
                         (b"x-frame-options", b"DENY")]
                if path == "/" or path.startswith("/static/"):
                    extra.append((b"content-security-policy", self.CSP.encode()))
                message = {**message, "headers": list(message.get("headers", [])) + extra}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def add_middleware(app: FastAPI, limits: ServerLimits, token: str | None, allowed_hosts: Iterable[str] | None,
                   agents: AgentDirectory | None = None, closed: bool = False) -> None:
    # Added innermost first: Starlette wraps each new one around the ones before.
    app.add_middleware(RequestGuard, token=token, limits=limits, allowed_hosts=allowed_hosts, agents=agents, closed=closed)
    app.add_middleware(SecurityHeaders)
    app.add_middleware(AccessLog)

"""Helpdesk webhooks: ``POST /hooks/chatwoot`` and ``POST /hooks/zammad``; Chatwoot's Dashboard
App: ``GET /chatwoot/app`` (the page, framed only by Chatwoot's origin) and its
``POST /chatwoot/app/suggest`` and ``/chatwoot/app/feedback`` (``helpdesk.dashboard``).

Each answers at once (the work is done in the connector's outbox, ``helpdesk.outbox``):
200 with what it did (``queued``, ``duplicate``, ``ignored: ...``). Chatwoot's sender is
checked by the shared secret in the URL (``?secret=``, Chatwoot's webhook form has no
header field) or an ``X-BigramLM-Secret`` header; Zammad's by its signature
(``X-Hub-Signature``). A refusal says what is wrong, never the secret.
"""

import hmac
import html
import json
from typing import Any, Callable, TypeVar

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse
from starlette.concurrency import run_in_threadpool

from bigramlm.errors import BigramLMError
from bigramlm.helpdesk.chatwoot import ChatwootHooks
from bigramlm.helpdesk.dashboard import Agent, DashboardApp
from bigramlm.helpdesk.secrets import Secret
from bigramlm.helpdesk.zammad import ZammadHooks, signature_ok
from bigramlm.serve.routes.meta import STATIC_DIR
from bigramlm.support.store import SuggestionConflict


def router() -> APIRouter:
    api = APIRouter(tags=["helpdesk"])

    @api.post("/hooks/chatwoot")
    async def chatwoot(request: Request) -> dict[str, str]:
        """A Chatwoot account webhook or Agent Bot event."""
        hooks, secret = _connector(request, "chatwoot", ChatwootHooks)
        given = request.query_params.get("secret") or request.headers.get("x-bigramlm-secret") or ""
        if not hmac.compare_digest(given.encode(), secret.value.encode()):
            raise HTTPException(401, "the webhook's secret is missing or wrong")
        return {"status": await run_in_threadpool(hooks.receive, await _json(request))}

    @api.post("/hooks/zammad")
    async def zammad(request: Request) -> dict[str, str]:
        """A Zammad trigger's webhook (the default ticket payload)."""
        hooks, secret = _connector(request, "zammad", ZammadHooks)
        body = await request.body()
        if not signature_ok(body, request.headers.get("x-hub-signature"), secret):
            raise HTTPException(401, "X-Hub-Signature is missing or is not the HMAC-SHA1 of the body with the token")
        payload = _parse(body)
        return {"status": await run_in_threadpool(hooks.receive, payload, request.headers.get("x-zammad-delivery"))}

    @api.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return api


Hooks = TypeVar("Hooks", ChatwootHooks, ZammadHooks)


def _connector(request: Request, name: str, kind: type[Hooks]) -> tuple[Hooks, Secret]:
    """The app's receiver of ``name``'s webhooks and its secret; 404 where it takes none."""
    hooks, secret = getattr(request.app.state, name), getattr(request.app.state, f"{name}_secret")
    if not isinstance(hooks, kind) or not isinstance(secret, Secret):
        raise HTTPException(404, f"this connector does not take {name.capitalize()}'s webhooks")
    return hooks, secret


def dashboard_router() -> APIRouter:
    """Chatwoot's Dashboard App: its page and the two calls the page makes."""
    api = APIRouter(tags=["helpdesk"])

    @api.get("/chatwoot/app", response_class=HTMLResponse)
    def dashboard_page(request: Request) -> HTMLResponse:
        """The Dashboard App page Chatwoot frames beside a conversation: only Chatwoot's origin may frame it."""
        origin = _dashboard(request)[1]
        page = (STATIC_DIR / "chatwoot_app.html").read_text(encoding="utf-8").replace("{{CHATWOOT_ORIGIN}}", html.escape(origin))
        csp = (f"default-src 'self'; script-src 'self'; style-src 'self'; connect-src 'self'; object-src 'none'; "
               f"base-uri 'none'; form-action 'none'; frame-ancestors {origin}")
        return HTMLResponse(page, headers={"Content-Security-Policy": csp, "Referrer-Policy": "no-referrer",
                                           "X-Content-Type-Options": "nosniff"})

    @api.get("/chatwoot/app.js")
    def dashboard_script() -> FileResponse:
        return FileResponse(STATIC_DIR / "chatwoot_app.js", media_type="text/javascript")

    @api.get("/chatwoot/app.css")
    def dashboard_style() -> FileResponse:
        return FileResponse(STATIC_DIR / "chatwoot_app.css", media_type="text/css")

    @api.post("/chatwoot/app/suggest")
    async def dashboard_suggest(request: Request) -> dict[str, Any]:
        """The suggestions for appContext's conversation, recorded as shown to its currentAgent."""
        app = _checked_dashboard(request)
        body = await _json(request)
        conversation = body.get("conversation")
        if not isinstance(conversation, dict):
            raise HTTPException(422, "conversation: appContext's conversation object is needed")
        return await _library(app.suggest, conversation, Agent.of(_mapping(body.get("currentAgent"))))

    @api.post("/chatwoot/app/feedback")
    async def dashboard_feedback(request: Request) -> dict[str, Any]:
        """``accept`` (the reply as sent, edited or not) or ``dismiss`` a suggestion, by currentAgent."""
        app = _checked_dashboard(request)
        body = await _json(request)
        agent, suggestion = Agent.of(_mapping(body.get("currentAgent"))), str(body.get("suggestion_id") or "")
        if body.get("action") == "dismiss":
            return await _library(app.dismiss, suggestion, _text(body.get("reason")), agent)
        if body.get("action") != "accept" or not _text(body.get("message")) or not _text(body.get("reply")):
            raise HTTPException(422, "action must be accept (with message and reply) or dismiss")
        return await _library(app.accept, suggestion, str(body["message"]), str(body["reply"]), _text(body.get("intent")), agent)

    return api


def _dashboard(request: Request) -> tuple[DashboardApp, str]:
    app: DashboardApp | None = request.app.state.dashboard
    if app is None:
        raise HTTPException(404, "this connector does not serve Chatwoot's Dashboard App")
    return app, str(request.app.state.chatwoot_origin)


def _checked_dashboard(request: Request) -> DashboardApp:
    secret: Secret | None = request.app.state.chatwoot_secret
    given = request.headers.get("x-bigramlm-secret") or ""
    if secret is None or not hmac.compare_digest(given.encode(), secret.value.encode()):
        raise HTTPException(401, "the Dashboard App's secret is missing or wrong (its URL's ?secret=)")
    return _dashboard(request)[0]


async def _library(fn: Callable[..., dict[str, Any]], *args: Any) -> dict[str, Any]:
    try:
        return await run_in_threadpool(fn, *args)
    except BigramLMError as refused:
        raise HTTPException(409 if isinstance(refused, SuggestionConflict) else 422, str(refused)) from None


def _mapping(value: Any) -> dict[str, Any] | None:
    return value if isinstance(value, dict) else None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value.strip() else None


async def _json(request: Request) -> dict[str, Any]:
    return _parse(await request.body())


def _parse(body: bytes) -> dict[str, Any]:
    try:
        payload = json.loads(body)
    except ValueError:
        raise HTTPException(400, "the body is not JSON") from None
    if not isinstance(payload, dict):
        raise HTTPException(400, "the body is not a JSON object")
    return payload

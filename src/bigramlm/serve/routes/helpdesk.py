"""Helpdesk webhooks: ``POST /hooks/chatwoot`` and ``POST /hooks/zammad``.

Each answers at once (the work is done in the connector's outbox, ``helpdesk.outbox``):
200 with what it did (``queued``, ``duplicate``, ``ignored: ...``). Chatwoot's sender is
checked by the shared secret in the URL (``?secret=``, Chatwoot's webhook form has no
header field) or an ``X-BigramLM-Secret`` header; Zammad's by its signature
(``X-Hub-Signature``). A refusal says what is wrong, never the secret.
"""

import hmac
import json
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from starlette.concurrency import run_in_threadpool

from bigramlm.helpdesk.chatwoot import ChatwootHooks
from bigramlm.helpdesk.secrets import Secret
from bigramlm.helpdesk.zammad import ZammadHooks, signature_ok


def router() -> APIRouter:
    api = APIRouter(tags=["helpdesk"])

    @api.post("/hooks/chatwoot")
    async def chatwoot(request: Request) -> dict[str, str]:
        """A Chatwoot account webhook or Agent Bot event."""
        hooks: ChatwootHooks | None = request.app.state.chatwoot
        secret: Secret | None = request.app.state.chatwoot_secret
        if hooks is None or secret is None:
            raise HTTPException(404, "this connector does not take Chatwoot's webhooks")
        given = request.query_params.get("secret") or request.headers.get("x-bigramlm-secret") or ""
        if not hmac.compare_digest(given.encode(), secret.value.encode()):
            raise HTTPException(401, "the webhook's secret is missing or wrong")
        return {"status": await run_in_threadpool(hooks.receive, await _json(request))}

    @api.post("/hooks/zammad")
    async def zammad(request: Request) -> dict[str, str]:
        """A Zammad trigger's webhook (the default ticket payload)."""
        hooks: ZammadHooks | None = request.app.state.zammad
        secret: Secret | None = request.app.state.zammad_secret
        if hooks is None or secret is None:
            raise HTTPException(404, "this connector does not take Zammad's webhooks")
        body = await request.body()
        if not signature_ok(body, request.headers.get("x-hub-signature"), secret):
            raise HTTPException(401, "X-Hub-Signature is missing or is not the HMAC-SHA1 of the body with the token")
        payload = _parse(body)
        return {"status": await run_in_threadpool(hooks.receive, payload, request.headers.get("x-zammad-delivery"))}

    @api.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return api


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

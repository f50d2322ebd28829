"""The helpdesk connector's web app: the webhook routes (``routes/helpdesk.py``) and nothing
else; ``bigramlm connect chatwoot|zammad`` serves it. It is an app of its own, not the
desk's: a helpdesk authenticates with its own secret, not an agent's token."""

from __future__ import annotations

from fastapi import FastAPI

from bigramlm.helpdesk.chatwoot import ChatwootHooks
from bigramlm.helpdesk.secrets import Secret
from bigramlm.helpdesk.zammad import ZammadHooks
from bigramlm.serve.limits import ServerLimits
from bigramlm.serve.routes import helpdesk


def helpdesk_app(chatwoot: ChatwootHooks | None = None, chatwoot_secret: Secret | None = None,
                 zammad: ZammadHooks | None = None, zammad_secret: Secret | None = None) -> FastAPI:
    app = FastAPI(title="bigramlm helpdesk connector", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.chatwoot, app.state.chatwoot_secret = chatwoot, chatwoot_secret
    app.state.zammad, app.state.zammad_secret = zammad, zammad_secret
    app.state.limits = ServerLimits()  # uvicorn_config reads its deadlines from here
    app.include_router(helpdesk.router())
    return app

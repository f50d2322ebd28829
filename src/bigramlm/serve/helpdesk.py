"""The helpdesk connector: its web app (the webhook routes, ``routes/helpdesk.py``, and
nothing else) for Chatwoot and Zammad, or RT's watcher; ``bigramlm connect`` runs it.
The app is its own, not the desk's: a helpdesk authenticates with its own secret, not an
agent's token."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import httpx
from fastapi import FastAPI

from bigramlm.errors import BigramLMError
from bigramlm.helpdesk.chatwoot import ChatwootClient, ChatwootHooks
from bigramlm.helpdesk.core import Assist
from bigramlm.helpdesk.dashboard import DashboardApp
from bigramlm.helpdesk.outbox import Outbox
from bigramlm.helpdesk.rt import RTClient, RTWatcher, auth_header
from bigramlm.helpdesk.secrets import Secret, read_secret_file, secret
from bigramlm.helpdesk.zammad import ZammadClient, ZammadHooks
from bigramlm.serve.limits import ServerLimits
from bigramlm.serve.routes import helpdesk

log = logging.getLogger("bigramlm.helpdesk")


def helpdesk_app(chatwoot: ChatwootHooks | None = None, chatwoot_secret: Secret | None = None,
                 zammad: ZammadHooks | None = None, zammad_secret: Secret | None = None,
                 dashboard: DashboardApp | None = None, chatwoot_origin: str | None = None) -> FastAPI:
    """The connector's app; ``dashboard`` serves Chatwoot's Dashboard App, framed by ``chatwoot_origin`` only."""
    app = FastAPI(title="bigramlm helpdesk connector", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.chatwoot, app.state.chatwoot_secret = chatwoot, chatwoot_secret
    app.state.dashboard, app.state.chatwoot_origin = dashboard, chatwoot_origin
    app.state.zammad, app.state.zammad_secret = zammad, zammad_secret
    app.state.limits = ServerLimits()  # uvicorn_config reads its deadlines from here
    app.include_router(helpdesk.router())
    app.include_router(helpdesk.dashboard_router())
    return app


#: The secrets each connector reads (environment, else ``--secrets FILE``).
SECRETS = {"chatwoot": ("CHATWOOT_API_TOKEN", "BIGRAMLM_HOOK_SECRET"), "zammad": ("ZAMMAD_API_TOKEN", "BIGRAMLM_HOOK_SECRET"),
           "rt": ("RT_TOKEN", "RT_USER", "RT_PASSWORD")}


@dataclass(frozen=True)
class ConnectSettings:
    """What ``bigramlm connect`` was asked: which helpdesk, its URL, where to listen or which queue."""

    helpdesk: str
    run_dir: Path
    url: str
    host: str = "127.0.0.1"
    port: int = 8010
    queue: str = "General"
    interval_s: float = 10.0
    secrets_file: Path | None = None
    store: str | None = None


def origin_of(url: str) -> str:
    """``scheme://host[:port]`` of a URL: what a browser calls the page's origin."""
    parts = httpx.URL(url)
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{parts.host}{port}"


def _assist(settings: ConnectSettings) -> Assist:
    from bigramlm.support.assistant import Assistant

    assistant = Assistant.load(settings.run_dir, store=settings.store)
    return Assist(assistant, assistant.store)


def connect(settings: ConnectSettings) -> None:
    """Run the connector until interrupted: RT's watcher, or the webhook receiver for Chatwoot or Zammad."""
    if settings.helpdesk not in SECRETS:
        raise BigramLMError(f"helpdesk must be one of {', '.join(SECRETS)} (got {settings.helpdesk!r})", param="helpdesk")
    if not settings.url.startswith(("http://", "https://")):
        raise BigramLMError(f"url must be the helpdesk's http(s) address (got {settings.url!r})", param="url")
    values = read_secret_file(settings.secrets_file) if settings.secrets_file is not None else {}
    if settings.helpdesk == "rt":
        auth = auth_header(secret("RT_TOKEN", values, required=False), (values.get("RT_USER") or os.environ.get("RT_USER")),
                           secret("RT_PASSWORD", values, required=False))
        watcher = RTWatcher(RTClient(settings.url, auth), _assist(settings), settings.queue)
        log.info("watching RT queue %s at %s every %g s", settings.queue, settings.url, settings.interval_s)
        watcher.run(settings.interval_s, stop=lambda: False)
        return
    api_token, hook_secret = (secret(name, values) for name in SECRETS[settings.helpdesk][:2])
    assert api_token is not None and hook_secret is not None  # required=True raised otherwise
    outbox = Outbox().start()
    if settings.helpdesk == "chatwoot":
        assist = _assist(settings)
        hooks = ChatwootHooks(ChatwootClient(settings.url, api_token), assist, outbox)
        app = helpdesk_app(chatwoot=hooks, chatwoot_secret=hook_secret, dashboard=DashboardApp(assist),
                           chatwoot_origin=origin_of(settings.url))
    else:
        zhooks = ZammadHooks(ZammadClient(settings.url, api_token), _assist(settings), outbox)
        app = helpdesk_app(zammad=zhooks, zammad_secret=hook_secret)
    import uvicorn

    from bigramlm.serve.server import uvicorn_config

    try:
        uvicorn.Server(uvicorn_config(app, settings.host, settings.port)).run()
    finally:
        outbox.stop()

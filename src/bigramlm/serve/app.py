"""The app factory: ``create_app(run_dir)`` builds the desk's FastAPI app.

It loads the ``Desk`` (run, assistant, store, slots) and keeps it, the limits and the
request schemas on the app's ``state``, where the routes' dependencies read them; mounts the
page's static files; adds the middleware; installs the error handlers; includes one
router per concern (``routes/``). The lifespan starts the desk's reload watcher and
closes the desk at shutdown.
"""

from __future__ import annotations

import os
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, AsyncIterator, Iterable

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from bigramlm.checkpoint import Run
from bigramlm.serve.desk import Desk
from bigramlm.serve.docs import make_fastapi
from bigramlm.serve.errors import install_error_handlers
from bigramlm.serve.limits import ServerLimits
from bigramlm.serve.middleware import add_middleware
from bigramlm.serve.routes import cases, conversation, desk as desk_routes, feedback, meta, openai, rules
from bigramlm.serve.routes.meta import STATIC_DIR
from bigramlm.serve.schemas import build_schemas

if TYPE_CHECKING:
    from bigramlm.support.assistant import Assistant

__all__ = ["STATIC_DIR", "create_app"]


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    desk: Desk = app.state.desk
    desk.start_watching()
    try:
        yield
    finally:
        desk.close()


def create_app(
    run_dir: str | os.PathLike[str],
    brand_path: str | os.PathLike[str] | None = None,
    token: str | None = None,
    limits: ServerLimits | None = None,
    assistant: "Assistant | None" = None,
    run: Run | None = None,
    allowed_hosts: Iterable[str] | None = None,
    store: str | None = None,
    closed: bool = False,
) -> FastAPI:
    """Build the desk app for ``run_dir``.

    ``token`` turns on bearer authentication for everything but the page, its static
    files, ``/healthz`` and the API's documentation. ``assistant``/``run`` let a caller
    pass objects it already loaded (tests, notebooks); by default both are loaded from
    ``run_dir`` (and reloaded when its weights change). ``allowed_hosts``: the only
    ``Host`` names served (``serve`` sets the loopback names when it binds loopback);
    None serves any. ``store``: the case store (``support.store.store_target``: by default
    the run's SQLite file; a ``postgresql://`` URL for several desks). ``closed``: without
    ``token``, refuse every guarded request while the store has no active agent (``serve``
    sets it beyond loopback: removing the last agent must not open the desk to anyone).
    """
    limits = limits or ServerLimits()
    desk = Desk(Path(run_dir), Path(brand_path) if brand_path else None, limits, assistant=assistant, run=run, store=store)
    schemas = build_schemas(limits)
    app = make_fastapi(
        lifespan=lifespan,
        title="bigramlm agent desk",
        version=_version(),
        description="Suggested replies for support agents, resolved-case feedback, and OpenAI-compatible completions.",
    )
    app.state.desk, app.state.limits, app.state.schemas = desk, limits, schemas
    install_error_handlers(app)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    app.include_router(meta.router)
    app.include_router(desk_routes.router(schemas))
    app.include_router(cases.router(schemas))
    app.include_router(feedback.router(schemas))
    app.include_router(rules.router)
    app.include_router(openai.router(schemas))
    app.include_router(conversation.router)
    add_middleware(app, limits, token, allowed_hosts, desk.store, closed=closed)
    return app


def _version() -> str:
    from bigramlm import __version__

    return __version__

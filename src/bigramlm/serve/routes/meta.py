"""The page, liveness and the bounds: ``GET /``, ``GET /healthz``, ``GET /api/config``."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse, Response

from bigramlm.serve.deps import DeskDep, LimitsDep
from bigramlm.serve.schemas import Health, ServerConfig

STATIC_DIR = Path(__file__).resolve().parents[1] / "static"

router = APIRouter()


@router.get("/", include_in_schema=False)
def page() -> FileResponse:
    return FileResponse(STATIC_DIR / "desk.html", media_type="text/html")


@router.get("/favicon.ico", include_in_schema=False)
def favicon() -> FileResponse:
    """The page names its icon; browsers that ask for /favicon.ico anyway get the same one."""
    return FileResponse(STATIC_DIR / "favicon.svg", media_type="image/svg+xml")


@router.get("/healthz", tags=["meta"], responses={503: {"model": Health, "description": "the store does not answer"}})
def healthz(desk: DeskDep, limits: LimitsDep, response: Response) -> Health:
    """Liveness, running generations, reloads of the run (``reload_error`` when one was
    refused), and whether the case store answers: a load balancer takes a desk whose store
    is down out of rotation (503), and puts it back once it answers again."""
    store_ok = desk.store.ping()
    if not store_ok:
        response.status_code = 503
    return Health(
        status="ok" if store_ok else "store unavailable",
        store="sqlite" if desk.store.path is not None else "postgresql",
        store_ok=store_ok,
        store_texts="read" if desk.store_texts_read.is_set() else "reading",
        run=desk.model_id,
        assistant=desk.assistant is not None,
        assistant_error=desk.assistant_error,
        generations_running=desk.slots.running,
        max_concurrent=limits.max_concurrent,
        reloads=desk.reloads,
        reload_error=desk.reload_error,
        understanding=desk.assistant.understanding_method if desk.assistant is not None else None,
        understanding_degraded=desk.assistant.degraded if desk.assistant is not None else None,
        uptime_s=round(time.time() - desk.started, 1),
    )


@router.get("/api/config", tags=["desk"])
def config(desk: DeskDep, limits: LimitsDep) -> ServerConfig:
    """The bounds, for the page and for clients that want to stay inside them."""
    return ServerConfig(limits=dataclasses.asdict(limits), assistant=desk.assistant is not None,
                        assistant_error=desk.assistant_error)

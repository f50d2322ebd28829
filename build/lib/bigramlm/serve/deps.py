"""What routes get through FastAPI's dependency injection: the app's desk and limits."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from bigramlm.serve.desk import Desk
from bigramlm.serve.limits import ServerLimits


def get_desk(request: Request) -> Desk:
    return request.app.state.desk


def get_limits(request: Request) -> ServerLimits:
    return request.app.state.limits


DeskDep = Annotated[Desk, Depends(get_desk)]
LimitsDep = Annotated[ServerLimits, Depends(get_limits)]

"""Error responses: OpenAI's shape under ``/v1``, ``{"detail": ...}`` elsewhere, one line each."""

from __future__ import annotations

import logging
import re
from typing import Any, Awaitable, Callable, Mapping, TypeVar, cast

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException
from starlette.types import HTTPExceptionHandler

from bigramlm.errors import BigramLMError
from bigramlm.serve.slots import Busy, GenerationTimeout
from bigramlm.support.store.database import StoreMoved, StoreUnavailable

_OPENAI_TYPES = {400: "invalid_request_error", 401: "authentication_error", 404: "not_found_error",
                 405: "invalid_request_error", 408: "timeout", 409: "invalid_request_error", 413: "invalid_request_error",
                 415: "invalid_request_error", 421: "invalid_request_error", 422: "invalid_request_error",
                 503: "server_overloaded", 504: "timeout"}
#: OpenAI's ``code`` strings for the errors that have one (it is null for the others).
_OPENAI_CODES = {401: "invalid_api_key", 413: "request_too_large", 503: "server_overloaded", 504: "timeout"}
#: The bounds pydantic reports in an error's context, shown as ``(le=8)``.
_BOUNDS = ("ge", "gt", "le", "lt", "min_length", "max_length")
#: How pydantic names a union member in an error's location: ``str``, ``list[ContentPart]``.
_UNION_MEMBER = re.compile(r"^(str|int|float|bool|none|[\w-]+\[.*\])$")


class Unsupported(Exception):
    """A ``/v1`` request used an option this server does not support: OpenAI's 400, naming it."""

    def __init__(self, param: str, message: str, code: str):
        super().__init__(message)
        self.param, self.message, self.code = param, message, code


class ModelNotFound(Exception):
    """A ``/v1`` request named a model this server does not serve."""

    def __init__(self, model: str):
        super().__init__(model)
        self.model = model


log = logging.getLogger("bigramlm.server")


def app_path(scope: Mapping[str, Any]) -> str:
    """The path the app routes: the prefix a reverse proxy mounts it under (``--root-path``,
    which the ASGI path includes) taken off."""
    path, root = str(scope.get("path", "")), str(scope.get("root_path", ""))
    if root and path.startswith(root):
        return path[len(root):] or "/"
    return path


def json_error(status: int, message: str, path: str, headers: Mapping[str, str] | None = None,
               **extra: Any) -> JSONResponse:
    """Errors in the shape the caller's client expects: OpenAI's for /v1, ours elsewhere."""
    if path.startswith("/v1/"):
        # OpenAI answers a request it cannot take with 400 (FastAPI's validation says 422).
        status = 400 if status == 422 else status
        kind = _OPENAI_TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
        body: dict[str, Any] = {"error": {"message": message, "type": kind, "param": extra.get("field"),
                                          "code": extra.get("code", _OPENAI_CODES.get(status))}}
    else:
        body = {"detail": message, **extra}
    return JSONResponse(body, status_code=status, headers=headers)


def describe_validation(errors: list[dict[str, Any]]) -> tuple[str, str | None]:
    """One line naming the broken bound, e.g. ``n: must be at most 8 (le=8)``, and the field.

    A value that fits no member of a union (``str | list[ContentPart]``) gets one error per
    member; the one that got deepest into the value is the informative one.
    """
    first = max(errors, key=lambda e: len(e.get("loc", ())))  # max keeps the first of equals
    field_name = ".".join(_field_path(first.get("loc", ()))) or None
    msg = first.get("msg", "invalid value")
    ctx = first.get("ctx") or {}
    bound = ", ".join(f"{k}={v}" for k, v in ctx.items() if k in _BOUNDS)
    text = f"{field_name}: {msg}" if field_name else msg
    if bound:
        text += f" ({bound})"
    if len(errors) > 1:
        text += f"; and {len(errors) - 1} more problem(s)"
    return text, field_name


def _field_path(loc: tuple[Any, ...] | list[Any]) -> list[str]:
    parts = list(loc)
    if parts and parts[0] in ("body", "query"):
        parts = parts[1:]
    return [str(p) for p in parts if not (isinstance(p, str) and _UNION_MEMBER.match(p))]


async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
    errors = list(exc.errors())
    if any(e.get("type") == "json_invalid" for e in errors):
        return json_error(400, "request body is not valid JSON", app_path(request.scope))
    message, field_name = describe_validation(errors)
    safe = [{"loc": list(e.get("loc", ())), "msg": e.get("msg"), "type": e.get("type")} for e in errors]
    return json_error(422, message, app_path(request.scope), field=field_name, errors=safe)


async def _http(request: Request, exc: HTTPException) -> JSONResponse:
    # Starlette's class, so that unknown routes (404, 405) answer in the caller's shape too.
    return json_error(exc.status_code, str(exc.detail), app_path(request.scope), headers=exc.headers)


async def _busy(request: Request, exc: Busy) -> JSONResponse:
    limits = request.app.state.limits
    return json_error(503, f"all {limits.max_concurrent} generation slots are busy; retry shortly",
                      app_path(request.scope), headers={"Retry-After": str(limits.retry_after_s)})


async def _timeout(request: Request, exc: GenerationTimeout) -> JSONResponse:
    return json_error(504, f"generation took longer than {request.app.state.limits.timeout_s:g} s", app_path(request.scope))


async def _user_error(request: Request, exc: BigramLMError) -> JSONResponse:
    return json_error(422, str(exc), app_path(request.scope), field=exc.param)


async def _model_not_found(request: Request, exc: ModelNotFound) -> JSONResponse:
    # OpenAI's own answer to an unknown model, which clients turn into NotFoundError.
    message = f"The model `{exc.model}` does not exist; this server serves `{request.app.state.desk.model_id}`."
    body = {"error": {"message": message, "type": "invalid_request_error", "param": "model", "code": "model_not_found"}}
    return JSONResponse(body, status_code=404)


async def _unsupported(request: Request, exc: Unsupported) -> JSONResponse:
    return json_error(400, exc.message, app_path(request.scope), field=exc.param, code=exc.code)


def store_message(exc: StoreUnavailable, path: str) -> str:
    """What a client hears when the store could not be reached or could not write (a full
    disk, a locked or read-only file, a PostgreSQL server down or restarting); the driver's
    own words (a host, a port, a file) go to the log, one line, not to every client."""
    log.error("store unavailable on %s: %s", path, exc)
    if isinstance(exc, StoreMoved):  # retrying cannot help: the desk must be restarted on the new store
        return "the case store was copied to another database and takes no more writes; nothing was stored: " \
               "the desk must be restarted on the new store"
    why = "it is full" if exc.full else "it does not answer, or is busy"
    return f"the case store cannot be used now ({why}); nothing was stored, try again"


def store_error(exc: StoreUnavailable, path: str) -> JSONResponse:
    """507 (full) or 503 in JSON, never a traceback; nothing was acknowledged, so nothing is lost."""
    return json_error(507 if exc.full else 503, store_message(exc, path), path)


async def _storage(request: Request, exc: StoreUnavailable) -> JSONResponse:
    return store_error(exc, app_path(request.scope))


_E = TypeVar("_E", bound=Exception)


def _add_handler(app: FastAPI, kind: type[_E], handler: Callable[[Request, _E], Awaitable[Response]]) -> None:
    """``app.add_exception_handler(kind, handler)``, with the handler's type checked against ``kind``:
    Starlette types a handler as taking any ``Exception``, but calls it only with a ``kind``."""
    app.add_exception_handler(kind, cast(HTTPExceptionHandler, handler))


def install_error_handlers(app: FastAPI) -> None:
    _add_handler(app, StoreUnavailable, _storage)
    _add_handler(app, RequestValidationError, _validation)
    _add_handler(app, HTTPException, _http)
    _add_handler(app, Busy, _busy)
    _add_handler(app, GenerationTimeout, _timeout)
    _add_handler(app, BigramLMError, _user_error)
    _add_handler(app, ModelNotFound, _model_not_found)
    _add_handler(app, Unsupported, _unsupported)

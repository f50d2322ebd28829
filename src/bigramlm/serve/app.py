"""The agent desk: a FastAPI app over the support assistant and the raw model.

Routes:

- ``GET /``: the desk page (``static/desk.html``), ``/static/*`` its script and style;
- ``POST /api/suggest`` (the ``assist --json`` object), ``POST /api/suggest/stream``
  (server-sent events: understanding, tokens, done);
- ``POST /api/cases``, ``GET /api/cases``, ``GET /api/stats``, ``GET /healthz``;
- OpenAI-compatible ``GET /v1/models``, ``POST /v1/completions`` and
  ``POST /v1/chat/completions``, streaming or not.

Everything that generates runs in a small thread pool whose size is the cap on
concurrent generations. A request that finds every slot taken gets 503 with
``Retry-After`` at once: nothing waits in a queue. Each generation has a deadline that
the worker checks between tokens, so a timed-out request frees its slot promptly.

No ``from __future__ import annotations`` here: the request models are built inside
``create_app`` (their bounds come from ``ServerLimits``), and FastAPI must see the real
classes, not strings it cannot resolve, in the route signatures.
"""


import asyncio
import hmac
import ipaddress
import json
import logging
import os
import threading
import time
import uuid
from contextlib import asynccontextmanager
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, AsyncIterator, Callable, Iterable, Iterator, Literal

from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, StreamingResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field

from bigramlm.errors import BigramLMError
from bigramlm.serve.limits import ServerLimits
from bigramlm.support.store import CaseStore, normalized_edit_distance

log = logging.getLogger("bigramlm.server")

STATIC_DIR = Path(__file__).with_name("static")


# --- request bodies -----------------------------------------------------------------
# Bounds are set from ServerLimits when the app is built (see _models), so the OpenAPI
# schema at /docs shows the real limits.


def _models(limits: ServerLimits) -> dict[str, type[BaseModel]]:
    strict = ConfigDict(extra="forbid")
    # OpenAI clients send fields we do not use (user, logit_bias, ...): ignore those.
    lenient = ConfigDict(extra="ignore")

    class SuggestRequest(BaseModel):
        model_config = strict
        message: str = Field(min_length=1, max_length=limits.max_message_chars, description="the customer's message")
        n: int = Field(3, ge=1, le=limits.max_n, description="candidate replies to generate")
        max_new_tokens: int | None = Field(None, ge=1, le=limits.max_new_tokens, description="length limit of each reply")
        temperature: float | None = Field(None, ge=0.0, le=5.0)
        top_k: int | None = Field(None, ge=1, le=1_000_000)
        top_p: float | None = Field(None, gt=0.0, le=1.0)
        seed: int | None = Field(None, ge=0, le=2**63 - 1)

    class CaseRequest(BaseModel):
        model_config = strict
        message: str = Field(min_length=1, max_length=limits.max_message_chars)
        reply: str = Field(min_length=1, max_length=limits.max_reply_chars)
        intent: str | None = Field(None, max_length=200)
        category: str | None = Field(None, max_length=200)
        suggestion_id: str | None = Field(None, max_length=200, description="id of the suggestion the reply started from")
        edited: bool = Field(False, description="whether the agent changed the suggestion")

    class CompletionRequest(BaseModel):
        model_config = lenient
        model: str | None = None
        prompt: str | list[str] = Field(max_length=limits.max_prompt_chars)
        max_tokens: int = Field(16, ge=1, le=limits.max_new_tokens)
        temperature: float = Field(1.0, ge=0.0, le=2.0)
        top_p: float = Field(1.0, gt=0.0, le=1.0)
        n: int = Field(1, ge=1, le=limits.max_n)
        stream: bool = False
        stop: str | list[str] | None = Field(None, max_length=4)
        seed: int | None = Field(None, ge=0, le=2**63 - 1)

    class ChatMessage(BaseModel):
        model_config = lenient
        role: Literal["system", "user", "assistant", "tool", "developer"]
        content: str | list[dict[str, Any]] | None = None

    class ChatRequest(BaseModel):
        model_config = lenient
        model: str | None = None
        messages: list[ChatMessage] = Field(min_length=1, max_length=limits.max_chat_messages)
        max_tokens: int | None = Field(None, ge=1, le=limits.max_new_tokens)
        max_completion_tokens: int | None = Field(None, ge=1, le=limits.max_new_tokens)
        temperature: float = Field(1.0, ge=0.0, le=2.0)
        top_p: float = Field(1.0, gt=0.0, le=1.0)
        n: int = Field(1, ge=1, le=limits.max_n)
        stream: bool = False
        stop: str | list[str] | None = Field(None, max_length=4)
        seed: int | None = Field(None, ge=0, le=2**63 - 1)

    return {m.__name__: m for m in (SuggestRequest, CaseRequest, CompletionRequest, ChatMessage, ChatRequest)}


# --- generation slots ---------------------------------------------------------------


class Busy(Exception):
    """Every generation slot is taken."""


class GenerationTimeout(Exception):
    """A generation ran past its deadline."""


class GenerationSlots:
    """At most ``size`` generations at once, each in a worker thread.

    The slot is taken before the work is submitted and given back by the worker when
    it really stops, so the pool never holds a queue and the cap counts threads that
    are still busy after their request has gone (a timed-out one finishing its token).
    """

    def __init__(self, size: int):
        if size < 1:
            raise BigramLMError(f"the cap on concurrent generations must be at least 1 (got {size})")
        self.size = size
        self._free = threading.BoundedSemaphore(size)
        self._lock = threading.Lock()
        self.running = 0
        self.rejected = 0
        self.executor = ThreadPoolExecutor(max_workers=size, thread_name_prefix="bigramlm-gen")

    def acquire(self) -> None:
        if not self._free.acquire(blocking=False):
            with self._lock:
                self.rejected += 1
            raise Busy()
        with self._lock:
            self.running += 1

    def release(self) -> None:
        with self._lock:
            self.running -= 1
        self._free.release()

    def shutdown(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)


class Job:
    """One generation: a cancel flag and a deadline that the worker checks between tokens."""

    def __init__(self, timeout_s: float):
        self.cancelled = threading.Event()
        self.deadline = time.monotonic() + timeout_s

    def check(self) -> None:
        if self.cancelled.is_set():
            raise GenerationTimeout("cancelled")
        if time.monotonic() > self.deadline:
            raise GenerationTimeout("deadline")


_END = object()


class Desk:
    """What the routes share: the run, the assistant (for instruction runs), the store, the slots.

    ``learn`` replaces the run's weights while the server runs. At most once a second a
    generating request looks at the weights file; when it changed, a background thread
    loads the run again and swaps the (assistant, run) pair in one assignment. Requests
    already running keep the pair they started with.
    """

    RELOAD_CHECK_S = 1.0

    def __init__(self, run_dir: Path, brand_path: Path | None, limits: ServerLimits, assistant: Any = None, run: Any = None):
        self.run_dir = Path(run_dir)
        self.brand_path = brand_path
        self.limits = limits
        self.assistant_error: str | None = None
        # Objects handed in by the caller are theirs to manage: no reloading those.
        self.reloadable = assistant is None and run is None
        self._stamp = self._weights_stamp()
        if assistant is None:
            assistant, self.assistant_error = _load_assistant(self.run_dir, brand_path)
        if run is None:
            run = _run_of(assistant) or _load_plain_run(self.run_dir)
        _configure_threads(run)
        self.loaded: tuple[Any, Any] = (assistant, run)
        # One store object per process: share the assistant's, whose index reads it.
        self.store = getattr(assistant, "store", None) or CaseStore.for_run(self.run_dir)
        self.slots = GenerationSlots(limits.max_concurrent)
        self.model_id = self.run_dir.resolve().name or "bigramlm"
        self.started = time.time()
        self.reloads = 0
        self._last_check = time.monotonic()
        self._reloading = threading.Lock()

    @property
    def assistant(self) -> Any:
        return self.loaded[0]

    @property
    def run(self) -> Any:
        return self.loaded[1]

    def _weights_stamp(self) -> tuple[int, int, int] | None:
        from bigramlm.checkpoint import WEIGHTS

        try:
            st = (self.run_dir / WEIGHTS).stat()
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    def maybe_reload(self) -> None:
        """Start a background reload if the weights file changed (checked at most once a second)."""
        now = time.monotonic()
        if not self.reloadable or now - self._last_check < self.RELOAD_CHECK_S:
            return
        self._last_check = now
        stamp = self._weights_stamp()
        if stamp is None or stamp == self._stamp or not self._reloading.acquire(blocking=False):
            return
        threading.Thread(target=self._reload, args=(stamp,), name="bigramlm-reload", daemon=True).start()

    def _reload(self, stamp: tuple[int, int, int]) -> None:
        try:
            assistant, error = _load_assistant(self.run_dir, self.brand_path)
            run = _run_of(assistant) or _load_plain_run(self.run_dir)
            _configure_threads(run)
            self.loaded = (assistant, run)  # one assignment: readers see old or new pair
            self.assistant_error = error
            self._stamp = stamp
            self.reloads += 1
            log.info("reloaded %s after its weights changed", self.model_id)
        except Exception as exc:  # keep serving the old model; try again on a later change
            self._stamp = stamp
            log.warning("could not reload %s: %s", self.model_id, str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        finally:
            self._reloading.release()

    # Both helpers below run `produce` in a worker thread; `produce(job)` must call
    # job.check() between tokens.

    async def run_blocking(self, produce: Callable[[Job], Any]) -> Any:
        self.slots.acquire()
        job = Job(self.limits.timeout_s)
        loop = asyncio.get_running_loop()

        def work() -> Any:
            try:
                return produce(job)
            finally:
                self.slots.release()

        try:
            future = loop.run_in_executor(self.slots.executor, work)
        except RuntimeError:  # executor shut down
            self.slots.release()
            raise
        try:
            # A little grace past the deadline: normally the worker raises GenerationTimeout itself.
            return await asyncio.wait_for(asyncio.shield(future), self.limits.timeout_s + 1.0)
        except asyncio.TimeoutError:
            job.cancelled.set()
            raise GenerationTimeout("deadline") from None
        except asyncio.CancelledError:
            job.cancelled.set()
            raise

    def start_stream(self, produce: Callable[[Job], Iterable[Any]], max_batch: int = 512) -> tuple[Job, AsyncIterator[list[Any]]]:
        """Take a slot now (so Busy becomes a 503 before any byte is sent) and stream ``produce``'s items.

        Items come in batches of whatever the worker has produced so far, so a fast
        model costs a few network writes rather than one per token.
        """
        self.slots.acquire()
        job = Job(self.limits.timeout_s)
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue = asyncio.Queue()

        def put(item: Any) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, item)

        def work() -> None:
            try:
                for item in produce(job):
                    job.check()
                    put(item)
            except BaseException as exc:  # handed to the event loop, which reports it
                put(exc)
            finally:
                self.slots.release()
                put(_END)

        try:
            self.slots.executor.submit(work)
        except RuntimeError:
            self.slots.release()
            raise

        async def batches() -> AsyncIterator[list[Any]]:
            try:
                while True:
                    pending = [await queue.get()]
                    while len(pending) < max_batch and not queue.empty():
                        pending.append(queue.get_nowait())
                    batch: list[Any] = []
                    for item in pending:
                        if item is _END or isinstance(item, BaseException):
                            if batch:
                                yield batch
                            if item is _END:
                                return
                            raise item
                        batch.append(item)
                    yield batch
            finally:
                job.cancelled.set()  # the client went away or we are done: stop the worker

        return job, batches()

    def close(self) -> None:
        self.slots.shutdown()
        self.store.close()


def _load_assistant(run_dir: Path, brand_path: Path | None) -> tuple[Any, str | None]:
    """The support assistant for an instruction run; for any other run, None and why."""
    try:
        from bigramlm.support.assistant import Assistant
        from bigramlm.support.brand import BrandProfile
    except ImportError as exc:
        return None, f"the support assistant is not available in this install ({exc})"
    if brand_path is not None:
        BrandProfile.load(brand_path)  # a broken --brand is an error at start, not "no assistant"
    try:
        return Assistant.load(run_dir, brand_path=brand_path), None
    except BigramLMError as exc:
        return None, str(exc)


def _configure_threads(run: Any) -> None:
    if hasattr(run, "model"):
        from bigramlm.training.threads import configure_cpu_threads

        # Small models: one intra-op thread each, or the worker threads fight over
        # OpenMP joins (measured: 2x slower suggestions with torch's default of 2).
        configure_cpu_threads(run.model)


def _run_of(assistant: Any) -> Any:
    return getattr(assistant, "run", None) if assistant is not None else None


def _load_plain_run(run_dir: Path) -> Any:
    from bigramlm.checkpoint import load_run

    return load_run(run_dir)


# --- middleware -----------------------------------------------------------------------

_PUBLIC_PATHS = {"/", "/healthz", "/docs", "/openapi.json", "/favicon.ico"}
_JSON_TYPES = ("application/json",)


def _json_error(status: int, message: str, path: str, headers: dict[str, str] | None = None, **extra: Any) -> JSONResponse:
    """Errors in the shape the caller's client expects: OpenAI's for /v1, ours elsewhere."""
    if path.startswith("/v1/"):
        kind = {400: "invalid_request_error", 401: "authentication_error", 404: "not_found_error",
                413: "invalid_request_error", 415: "invalid_request_error", 422: "invalid_request_error",
                503: "server_overloaded", 504: "timeout"}.get(status, "server_error")
        body = {"error": {"message": message, "type": kind, "param": extra.get("field"), "code": status}}
    else:
        body = {"detail": message, **extra}
    return JSONResponse(body, status_code=status, headers=headers)


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


class AccessLog(_HTTPMiddleware):
    """One log line per request when its response has finished: method, route, status, latency.

    The path is logged without its query string, and bodies are never looked at, so a
    customer's message cannot reach the log.
    """

    async def handle(self, scope: dict, receive: Callable, send: Callable) -> None:
        start = time.perf_counter()
        status = {"code": 500}

        async def send_logged(message: dict) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_logged)
        finally:
            route = scope.get("route")
            path = getattr(route, "path", None) or scope.get("path", "?")
            log.info("%s %s %d %.1fms", scope.get("method", "?"), path, status["code"], (time.perf_counter() - start) * 1000)


class RequestGuard(_HTTPMiddleware):
    """Host, bearer token, JSON content type and body size, checked before any route runs.

    ``allowed_hosts``: on loopback the desk has no token, so a web page elsewhere could
    try DNS rebinding (its own name resolving to 127.0.0.1) to read the API from the
    agent's browser; such requests carry that foreign name in ``Host`` and are refused.
    """

    def __init__(self, app: Callable, token: str | None, max_body_bytes: int, allowed_hosts: Iterable[str] | None = None):
        super().__init__(app)
        self.token = token.encode("utf-8") if token else None
        self.max_body_bytes = max_body_bytes
        self.allowed_hosts = {h.lower() for h in allowed_hosts} if allowed_hosts is not None else None

    async def handle(self, scope: dict, receive: Callable, send: Callable) -> None:
        path: str = scope.get("path", "")
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        if self.allowed_hosts is not None and _host_name(headers.get("host", "")) not in self.allowed_hosts:
            await _json_error(421, "this server answers only to its loopback address", path)(scope, receive, send)
            return
        if self.token is not None and path not in _PUBLIC_PATHS and not path.startswith("/static/"):
            given = headers.get("authorization", "")
            scheme, _, value = given.partition(" ")
            # compare_digest takes time independent of where the strings differ.
            if scheme.lower() != "bearer" or not hmac.compare_digest(value.strip().encode("utf-8"), self.token):
                await _json_error(401, "missing or wrong bearer token", path, {"WWW-Authenticate": "Bearer"})(scope, receive, send)
                return
        if scope.get("method") in ("POST", "PUT", "PATCH"):
            ctype = headers.get("content-type", "").split(";")[0].strip().lower()
            if ctype not in _JSON_TYPES:
                await _json_error(415, f"content type must be application/json (got {ctype or 'none'})", path)(scope, receive, send)
                return
            declared = headers.get("content-length")
            if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
                await _json_error(413, f"request body too large: at most {self.max_body_bytes} bytes", path, bound="max_body_bytes")(scope, receive, send)
                return
            # Read the body here, bounded, so a chunked upload cannot grow without limit.
            body = bytearray()
            more = True
            while more:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return
                body += message.get("body", b"")
                more = message.get("more_body", False)
                if len(body) > self.max_body_bytes:
                    await _json_error(413, f"request body too large: at most {self.max_body_bytes} bytes", path, bound="max_body_bytes")(scope, receive, send)
                    return
            replayed = {"done": False}

            async def replay() -> dict:
                if not replayed["done"]:
                    replayed["done"] = True
                    return {"type": "http.request", "body": bytes(body), "more_body": False}
                return await receive()

            await self.app(scope, replay, send)
            return
        await self.app(scope, receive, send)


class SecurityHeaders(_HTTPMiddleware):
    """No framing, no sniffing, no referrer; a strict CSP on the desk page itself.

    The CSP is a second line behind inserting model text with ``textContent``: even if
    markup slipped into the DOM, inline scripts and event handlers would not run.
    """

    CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
           "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")

    async def handle(self, scope: dict, receive: Callable, send: Callable) -> None:
        path = scope.get("path", "")

        async def send_with_headers(message: dict) -> None:
            if message["type"] == "http.response.start":
                extra = [(b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer"),
                         (b"x-frame-options", b"DENY")]
                if path == "/" or path.startswith("/static/"):
                    extra.append((b"content-security-policy", self.CSP.encode()))
                message = {**message, "headers": list(message.get("headers", [])) + extra}
            await send(message)

        await self.app(scope, receive, send_with_headers)


# --- helpers ------------------------------------------------------------------------------


def _describe_validation(errors: list[dict[str, Any]]) -> tuple[str, str | None]:
    """One line naming the broken bound, e.g. ``n: must be at most 8 (le=8)``."""
    first = errors[0]
    loc = [str(p) for p in first.get("loc", ()) if p not in ("body", "query")]
    field_name = ".".join(loc) or None
    msg = first.get("msg", "invalid value")
    ctx = first.get("ctx") or {}
    bound = ", ".join(f"{k}={v}" for k, v in ctx.items() if k in ("ge", "gt", "le", "lt", "min_length", "max_length"))
    text = f"{field_name}: {msg}" if field_name else msg
    if bound:
        text += f" ({bound})"
    if len(errors) > 1:
        text += f"; and {len(errors) - 1} more problem(s)"
    return text, field_name


def _sse(data: Any, event: str | None = None) -> bytes:
    payload = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {payload}\n\n".encode("utf-8")


def _stops(stop: str | list[str] | None) -> list[str]:
    if stop is None:
        return []
    return [stop] if isinstance(stop, str) else [s for s in stop if s]


def _chat_content(content: str | list[dict[str, Any]] | None) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "".join(part.get("text", "") for part in content if part.get("type") == "text")


def _host_name(host_header: str) -> str:
    """``Host`` without its port: ``127.0.0.1:8000`` -> ``127.0.0.1``, ``[::1]:80`` -> ``::1``."""
    host = host_header.strip().lower()
    if host.startswith("["):
        return host[1:].split("]", 1)[0]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# --- the app --------------------------------------------------------------------------------


def create_app(
    run_dir: str | os.PathLike[str],
    brand_path: str | os.PathLike[str] | None = None,
    token: str | None = None,
    limits: ServerLimits | None = None,
    assistant: Any = None,
    run: Any = None,
    allowed_hosts: Iterable[str] | None = None,
) -> FastAPI:
    """Build the desk app for ``run_dir``.

    ``token`` turns on bearer authentication for everything but the page, its static
    files, ``/healthz`` and the schema. ``assistant``/``run`` let a caller pass objects
    it already loaded (tests, notebooks); by default both are loaded from ``run_dir``.
    ``allowed_hosts``: the only ``Host`` names served (``serve`` sets the loopback names
    when it binds loopback); None serves any.
    """
    limits = limits or ServerLimits()
    desk = Desk(Path(run_dir), Path(brand_path) if brand_path else None, limits, assistant=assistant, run=run)
    M = _models(limits)
    SuggestRequest, CaseRequest = M["SuggestRequest"], M["CaseRequest"]
    CompletionRequest, ChatRequest = M["CompletionRequest"], M["ChatRequest"]

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        desk.close()

    app = FastAPI(
        lifespan=lifespan,
        title="bigramlm agent desk",
        version=_version(),
        description="Suggested replies for support agents, resolved-case feedback, and OpenAI-compatible completions.",
    )
    app.state.desk = desk

    # --- errors -----------------------------------------------------------------------

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = list(exc.errors())
        if any(e.get("type") == "json_invalid" for e in errors):
            return _json_error(400, "request body is not valid JSON", request.url.path)
        message, field_name = _describe_validation(errors)
        safe = [{"loc": list(e.get("loc", ())), "msg": e.get("msg"), "type": e.get("type")} for e in errors]
        return _json_error(422, message, request.url.path, field=field_name, errors=safe)

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> JSONResponse:
        return _json_error(exc.status_code, str(exc.detail), request.url.path, headers=exc.headers)

    @app.exception_handler(Busy)
    async def _busy(request: Request, exc: Busy) -> JSONResponse:
        return _json_error(503, f"all {limits.max_concurrent} generation slots are busy; retry shortly",
                           request.url.path, headers={"Retry-After": str(limits.retry_after_s)})

    @app.exception_handler(GenerationTimeout)
    async def _timeout(request: Request, exc: GenerationTimeout) -> JSONResponse:
        return _json_error(504, f"generation took longer than {limits.timeout_s:g} s", request.url.path)

    @app.exception_handler(BigramLMError)
    async def _user_error(request: Request, exc: BigramLMError) -> JSONResponse:
        return _json_error(422, str(exc), request.url.path)

    # --- page --------------------------------------------------------------------------

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC_DIR / "desk.html", media_type="text/html")

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.get("/healthz", tags=["meta"])
    def healthz() -> dict[str, Any]:
        return {
            "status": "ok",
            "run": desk.model_id,
            "assistant": desk.assistant is not None,
            "assistant_error": desk.assistant_error,
            "generations_running": desk.slots.running,
            "max_concurrent": limits.max_concurrent,
            "reloads": desk.reloads,
            "uptime_s": round(time.time() - desk.started, 1),
        }

    @app.get("/api/config", tags=["desk"])
    def config() -> dict[str, Any]:
        """The bounds, for the page and for clients that want to stay inside them."""
        return {"limits": limits.__dict__, "assistant": desk.assistant is not None, "assistant_error": desk.assistant_error}

    # --- assistant ----------------------------------------------------------------------

    def need_assistant() -> Any:
        desk.maybe_reload()
        assistant = desk.assistant
        if assistant is None:
            raise HTTPException(409, f"this run cannot suggest replies: {desk.assistant_error}")
        return assistant

    def suggest_options(req: Any) -> dict[str, Any]:
        options: dict[str, Any] = {"n": req.n, "seed": req.seed}
        for name in ("max_new_tokens", "temperature", "top_k", "top_p"):
            value = getattr(req, name)
            if value is not None:
                options[name] = value
        return options

    def remember(result: dict[str, Any]) -> dict[str, Any]:
        """Record what was shown, so acceptance and edit distance are measured against it."""
        request_id = uuid.uuid4().hex
        shown = []
        for s in result.get("suggestions", []):
            if not s.get("id"):  # the assistant gives uuids; anything else gets one here
                s["id"] = uuid.uuid4().hex
            shown.append((str(s["id"]), s.get("filled_text", s.get("text", "")), s.get("score")))
        desk.store.record_suggestions(shown, request_id=request_id)
        result["request_id"] = request_id
        return result

    def suggest_events(assistant: Any, message: str, options: dict[str, Any], job: Job) -> Iterator[dict[str, Any]]:
        for event in assistant.suggest_stream(message, **options):
            job.check()
            yield event.to_dict()

    @app.post("/api/suggest", tags=["desk"])
    async def suggest(req: SuggestRequest) -> dict[str, Any]:  # type: ignore[valid-type]
        """Intent, category, ranked suggested replies and similar cases: the ``assist --json`` object."""
        assistant = need_assistant()
        options = suggest_options(req)

        def produce(job: Job) -> dict[str, Any]:
            # The streaming generator is the one implementation; here we just keep its result.
            result = None
            for event in suggest_events(assistant, req.message, options, job):
                if event.get("type") == "done":
                    result = event["result"]
            if result is None:
                raise RuntimeError("the assistant's stream ended without a result")
            return result

        result = await desk.run_blocking(produce)
        return await asyncio.get_running_loop().run_in_executor(None, remember, result)

    @app.post("/api/suggest/stream", tags=["desk"])
    async def suggest_stream(req: SuggestRequest) -> StreamingResponse:  # type: ignore[valid-type]
        """Server-sent events: ``understanding``, ``token`` (index, text), then ``done`` with the full object."""
        assistant = need_assistant()
        options = suggest_options(req)
        _, items = desk.start_stream(lambda job: suggest_events(assistant, req.message, options, job))

        async def events() -> AsyncIterator[bytes]:
            try:
                async for batch in items:
                    for event in _merge_token_events(batch):
                        kind = event.get("type", "message")
                        if kind == "done":
                            result = await asyncio.get_running_loop().run_in_executor(None, remember, event["result"])
                            yield _sse(result, "done")
                        else:
                            yield _sse(event, kind)
            except GenerationTimeout:
                yield _sse({"message": f"generation took longer than {limits.timeout_s:g} s"}, "error")
            except BigramLMError as exc:
                yield _sse({"message": str(exc)}, "error")
            except Exception:
                log.exception("suggestion stream failed")
                yield _sse({"message": "internal error"}, "error")

        return StreamingResponse(events(), media_type="text/event-stream", headers={"Cache-Control": "no-store"})

    # --- cases and stats -----------------------------------------------------------------------

    @app.post("/api/cases", status_code=201, tags=["desk"])
    def add_case(req: CaseRequest) -> dict[str, Any]:  # type: ignore[valid-type]
        """Store a resolved case. The answer comes only after the row is committed."""
        edited, distance = req.edited, None
        if req.suggestion_id is not None:
            shown = desk.store.get_suggestion(req.suggestion_id)
            if shown is None:
                raise HTTPException(404, f"no suggestion with id {req.suggestion_id!r} was shown")
            # Measured here from what was really shown, not taken from the client.
            distance = normalized_edit_distance(shown["text"], req.reply)
            edited = edited or distance > 0
        case_id = desk.store.add_case(req.message, req.reply, intent=req.intent, category=req.category,
                                      suggestion_id=req.suggestion_id, edited=edited, edit_distance=distance, source="desk")
        return {"id": case_id, "edited": edited, "edit_distance": distance}

    @app.get("/api/cases", tags=["desk"])
    def list_cases(
        offset: int = Query(0, ge=0, le=2**62),
        limit: int = Query(50, ge=1, le=limits.max_page),
    ) -> dict[str, Any]:
        """Page through the stored cases, oldest first."""
        total = desk.store.count()
        items = desk.store.list_cases(offset=offset, limit=limit)
        nxt = offset + len(items)
        return {"total": total, "offset": offset, "limit": limit, "items": items, "next_offset": nxt if nxt < total else None}

    @app.get("/api/stats", tags=["desk"])
    def stats() -> dict[str, Any]:
        """Acceptance rate, mean normalised edit distance, and cases stored since the last ``learn``."""
        return desk.store.stats()

    # --- OpenAI-compatible -------------------------------------------------------------------------

    @app.get("/v1/models", tags=["openai"])
    def models() -> dict[str, Any]:
        return {"object": "list", "data": [{"id": desk.model_id, "object": "model", "created": int(desk.started), "owned_by": "bigramlm"}]}

    def raw_candidates(run: Any, prompt: str, n: int, max_tokens: int, temperature: float, top_p: float, seed: int | None,
                       stop: list[str], job: Job) -> Iterator[tuple[int, str]]:
        from bigramlm.generation import generate_candidates
        from bigramlm.tokenization import normalize_for_vocab

        text, _ = normalize_for_vocab(prompt, run.tokenizer)
        for index, piece in generate_candidates(run.model, run.tokenizer, text, n, max_tokens,
                                                temperature=temperature, top_k=None, top_p=top_p, seed=seed, stop=stop):
            job.check()
            yield index, piece

    def count_tokens(run: Any, text: str) -> int:
        return int(len(run.tokenizer.encode(text, on_unknown="replace"))) if text else 0

    def finish_reason(run: Any, text: str, max_tokens: int) -> str:
        return "length" if count_tokens(run, text) >= max_tokens else "stop"

    @app.post("/v1/completions", tags=["openai"])
    async def completions(req: CompletionRequest):  # type: ignore[valid-type]
        """Continue a prompt with the run's model, as OpenAI's legacy completions endpoint."""
        prompts = [req.prompt] if isinstance(req.prompt, str) else list(req.prompt)
        if not prompts or len(prompts) * req.n > limits.max_n:
            raise HTTPException(422, f"prompt: give 1 to {limits.max_n // req.n} prompts for n={req.n} (max_n={limits.max_n})")
        if sum(len(p) for p in prompts) > limits.max_prompt_chars:
            raise HTTPException(422, f"prompt: at most {limits.max_prompt_chars} characters in all (max_prompt_chars)")
        stop = _stops(req.stop)
        cid, created = f"cmpl-{uuid.uuid4().hex}", int(time.time())
        desk.maybe_reload()
        run = desk.run

        def produce(job: Job) -> Iterator[tuple[int, str]]:
            for p, prompt in enumerate(prompts):
                for index, piece in raw_candidates(run, prompt, req.n, req.max_tokens, req.temperature, req.top_p, req.seed, stop, job):
                    yield p * req.n + index, piece

        def chunk(choices: list[dict[str, Any]]) -> dict[str, Any]:
            return {"id": cid, "object": "text_completion", "created": created, "model": desk.model_id, "choices": choices}

        total = len(prompts) * req.n
        if not req.stream:
            texts = await desk.run_blocking(lambda job: _collect(produce(job), total))
            prompt_tokens = sum(count_tokens(run, p) for p in prompts)
            choices = [{"text": t, "index": i, "logprobs": None, "finish_reason": finish_reason(run, t, req.max_tokens)}
                       for i, t in enumerate(texts)]
            completion_tokens = sum(count_tokens(run, t) for t in texts)
            return {**chunk(choices), "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                                                "total_tokens": prompt_tokens + completion_tokens}}

        _, items = desk.start_stream(produce)

        async def events() -> AsyncIterator[bytes]:
            texts = [""] * total
            try:
                async for batch in items:
                    for index, piece in _merge_pieces(batch):
                        texts[index] += piece
                        yield _sse(chunk([{"text": piece, "index": index, "logprobs": None, "finish_reason": None}]))
                for i, t in enumerate(texts):
                    yield _sse(chunk([{"text": "", "index": i, "logprobs": None, "finish_reason": finish_reason(run, t, req.max_tokens)}]))
            except GenerationTimeout:
                yield _sse({"error": {"message": f"generation took longer than {limits.timeout_s:g} s", "type": "timeout", "code": 504}})
            yield _sse("[DONE]")

        return StreamingResponse(events(), media_type="text/event-stream", headers={"Cache-Control": "no-store"})

    @app.post("/v1/chat/completions", tags=["openai"])
    async def chat_completions(req: ChatRequest):  # type: ignore[valid-type]
        """Chat with the assistant (instruction runs: the last user message is the customer's) or the raw model."""
        max_tokens = req.max_completion_tokens or req.max_tokens or 256
        stop = _stops(req.stop)
        cid, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())
        users = [_chat_content(m.content) for m in req.messages if m.role == "user"]

        def chunk(choices: list[dict[str, Any]], obj: str = "chat.completion.chunk") -> dict[str, Any]:
            return {"id": cid, "object": obj, "created": created, "model": desk.model_id, "choices": choices}

        desk.maybe_reload()
        assistant, run = desk.loaded
        if assistant is not None:
            if not users or not users[-1].strip():
                raise HTTPException(422, "messages: the last user message is the customer's message and must not be empty")
            message = users[-1]
            if len(message) > limits.max_message_chars:
                raise HTTPException(422, f"messages: the user message is longer than max_message_chars={limits.max_message_chars}")
            options = {"n": req.n, "max_new_tokens": max_tokens, "temperature": req.temperature, "top_p": req.top_p, "seed": req.seed}

            brand = getattr(assistant, "brand", None)
            fill: Callable[[str], str] = (lambda text: brand.fill(text).text) if brand is not None else (lambda text: text)

            def produce(job: Job) -> Iterator[tuple[int, Any]]:
                # Token pieces, brand-filled as they stream; the ranked replies come with "done".
                fillers = [PlaceholderStream(fill) for _ in range(req.n)]
                for event in suggest_events(assistant, message, options, job):
                    if event.get("type") == "token":
                        index = int(event["index"])
                        piece = fillers[index].feed(str(event["text"]))
                        if piece:
                            yield index, piece
                    elif event.get("type") == "done":
                        for index, filler in enumerate(fillers):
                            rest = filler.flush()
                            if rest:
                                yield index, rest
                        yield -1, event["result"]
            prompt_text = message
        else:
            prompt_text = "\n".join(_chat_content(m.content) for m in req.messages) + "\n"
            if len(prompt_text) > limits.max_prompt_chars:
                raise HTTPException(422, f"messages: at most {limits.max_prompt_chars} characters in all (max_prompt_chars)")

            def produce(job: Job) -> Iterator[tuple[int, Any]]:
                yield from raw_candidates(run, prompt_text, req.n, max_tokens, req.temperature, req.top_p, req.seed, stop, job)

        def final_texts(pieces: list[str], result: dict[str, Any] | None) -> list[str]:
            if result is None:
                return pieces
            return [s.get("filled_text", s.get("text", "")) for s in result.get("suggestions", [])]

        if not req.stream:
            def collect(job: Job) -> tuple[list[str], dict[str, Any] | None]:
                pieces, result = [""] * req.n, None
                for index, piece in produce(job):
                    if index < 0:
                        result = piece
                    else:
                        pieces[index] += piece
                return pieces, result

            pieces, result = await desk.run_blocking(collect)
            texts = final_texts(pieces, result)
            prompt_tokens = count_tokens(run, prompt_text)
            completion_tokens = sum(count_tokens(run, t) for t in texts)
            reasons = [finish_reason(run, p, max_tokens) for p in pieces]
            choices = [{"index": i, "message": {"role": "assistant", "content": t}, "logprobs": None,
                        "finish_reason": reasons[i] if i < len(reasons) else "stop"} for i, t in enumerate(texts)]
            body = chunk(choices, "chat.completion")
            if result is not None:
                body["bigramlm"] = {k: result.get(k) for k in ("intent", "category", "intent_probability")}
            body["usage"] = {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens, "total_tokens": prompt_tokens + completion_tokens}
            return body

        _, items = desk.start_stream(produce)

        async def events() -> AsyncIterator[bytes]:
            pieces = [""] * req.n
            for i in range(req.n):
                yield _sse(chunk([{"index": i, "delta": {"role": "assistant", "content": ""}, "logprobs": None, "finish_reason": None}]))
            try:
                async for batch in items:
                    for index, piece in _merge_pieces(batch):
                        if index < 0:
                            continue  # the assistant's final object; streamed clients got its tokens
                        pieces[index] += piece
                        yield _sse(chunk([{"index": index, "delta": {"content": piece}, "logprobs": None, "finish_reason": None}]))
                for i, p in enumerate(pieces):
                    yield _sse(chunk([{"index": i, "delta": {}, "logprobs": None, "finish_reason": finish_reason(run, p, max_tokens)}]))
            except GenerationTimeout:
                yield _sse({"error": {"message": f"generation took longer than {limits.timeout_s:g} s", "type": "timeout", "code": 504}})
            yield _sse("[DONE]")

        return StreamingResponse(events(), media_type="text/event-stream", headers={"Cache-Control": "no-store"})

    # Outermost first at request time: log, then security headers, then the guard.
    app.add_middleware(_Wrap, inner=RequestGuard, token=token, max_body_bytes=limits.max_body_bytes, allowed_hosts=allowed_hosts)
    app.add_middleware(_Wrap, inner=SecurityHeaders)
    app.add_middleware(_Wrap, inner=AccessLog)
    return app


class _Wrap:
    """Adapter so the pure ASGI middlewares above plug into ``app.add_middleware``."""

    def __init__(self, app: Callable, inner: type, **kwargs: Any):
        self._mw = inner(app, **kwargs)

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        await self._mw(scope, receive, send)


class PlaceholderStream:
    """Brand-fills a reply while it streams.

    Text from an unclosed ``{{`` on (or a trailing ``{``) is held back until the
    placeholder closes or can no longer be one (a newline, or longer than any name), so
    each released piece holds only whole placeholders and filling it piecewise gives
    the same text as filling the whole reply.
    """

    MAX_PLACEHOLDER = 84  # "{{" + a name of at most 80 characters + "}}"

    def __init__(self, fill: Callable[[str], str]):
        self.fill = fill
        self.pending = ""

    def _safe_end(self, text: str) -> int:
        start = text.rfind("{{")
        if start >= 0:
            tail = text[start:]
            if "}}" not in tail and "\n" not in tail and len(tail) < self.MAX_PLACEHOLDER:
                return start
        return len(text) - 1 if text.endswith("{") else len(text)

    def feed(self, piece: str) -> str:
        self.pending += piece
        cut = self._safe_end(self.pending)
        out, self.pending = self.pending[:cut], self.pending[cut:]
        return self.fill(out) if out else ""

    def flush(self) -> str:
        out, self.pending = self.pending, ""
        return self.fill(out) if out else ""


def _collect(items: Iterable[tuple[int, str]], n: int) -> list[str]:
    texts = [""] * n
    for index, piece in items:
        texts[index] += piece
    return texts


def _merge_token_events(batch: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Join consecutive ``token`` events of the same candidate into one."""
    out: list[dict[str, Any]] = []
    for event in batch:
        prev = out[-1] if out else None
        if (event.get("type") == "token" and prev is not None and prev.get("type") == "token"
                and prev.get("index") == event.get("index")):
            out[-1] = {**prev, "text": prev["text"] + event["text"]}
        else:
            out.append(event)
    return out


def _merge_pieces(batch: list[Any]) -> list[tuple[int, Any]]:
    """Join consecutive text pieces of the same index (and of dict token events) in a batch."""
    out: list[tuple[int, Any]] = []
    for item in batch:
        index, piece = item
        if out and out[-1][0] == index and isinstance(piece, str) and isinstance(out[-1][1], str) and index >= 0:
            out[-1] = (index, out[-1][1] + piece)
        else:
            out.append((index, piece))
    return out


def _version() -> str:
    from bigramlm import __version__

    return __version__


def check_exposure(host: str, token: str | None) -> None:
    """Refuse to listen beyond loopback without a token."""
    if not _is_loopback(host) and not token:
        raise BigramLMError(
            f"--host {host} is not a loopback address: set a bearer token with --token or BIGRAMLM_TOKEN"
        )


def serve(run_dir: str | os.PathLike[str], host: str = "127.0.0.1", port: int = 8000, brand_path: str | None = None,
          token: str | None = None, limits: ServerLimits | None = None, log_level: str = "info") -> None:
    """Run the desk with uvicorn until interrupted."""
    import uvicorn

    check_exposure(host, token)
    logging.basicConfig(level=getattr(logging, log_level.upper(), logging.INFO), format="%(asctime)s %(levelname)s %(name)s %(message)s")
    allowed = LOOPBACK_NAMES + ((host,) if host not in LOOPBACK_NAMES else ()) if _is_loopback(host) else None
    app = create_app(run_dir, brand_path=brand_path, token=token, limits=limits, allowed_hosts=allowed)
    # uvicorn's own access log would be a second line per request (with the query string).
    uvicorn.run(app, host=host, port=port, access_log=False, log_level=log_level, timeout_graceful_shutdown=5)

"""A helpdesk's API on loopback that takes only its documented calls (``tests/fixtures/*/calls.json``).

Every call is recorded; one that matches no documented call (method, path, headers, body
fields and values) is answered 400 and recorded as a violation, which the tests assert
there are none of. ``down_until``: before that time (by the injected ``clock``), every
call gets 503, as a helpdesk that is down.
"""

from __future__ import annotations

import json
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

FIXTURES = Path(__file__).parent / "fixtures"


@dataclass
class Call:
    name: str
    method: str
    path: str
    body: Any
    #: When it arrived (``time.perf_counter``), for benchmarks/helpdesk.py's latencies.
    at: float = field(default_factory=time.perf_counter)


@dataclass
class FakeHelpdesk:
    helpdesk: str
    token: str
    clock: Callable[[], float] = time.monotonic
    down_until: float = float("-inf")
    calls: list[Call] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    refused: int = 0
    #: A call's answer instead of its fixture file's, by the file's name (a thread that has moved on).
    answers: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.spec = json.loads((FIXTURES / self.helpdesk / "calls.json").read_text())
        self.lock = threading.Lock()

    def named(self, name: str) -> list[Call]:
        with self.lock:
            return [c for c in self.calls if c.name == name]

    def _match(self, method: str, path: str) -> dict[str, Any] | None:
        for call in self.spec:
            pattern = "^" + re.sub(r"\\{[a-z_]+\\}", "[^/]+", re.escape(call["path"])) + "$"
            if call["method"] == method and re.match(pattern, path):
                return call
        return None

    def _check(self, call: dict[str, Any], request: Request, body: Any) -> list[str]:
        wrong = []
        for header, value in call.get("headers", {}).items():
            if request.headers.get(header) != value.replace("$token", self.token):
                wrong.append(f"header {header}")
        spec = call.get("body")
        if spec is not None:
            if not isinstance(body, dict):
                return wrong + ["body is not an object"]
            wrong += [f"unknown field {k}" for k in body if k not in spec]
            for key, expected in spec.items():
                got = body.get(key)
                ok = isinstance(got, str) and got.strip() != "" if expected == "$string" else got == expected
                if not ok:
                    wrong.append(f"field {key}={got!r}")
        return wrong

    async def handle(self, request: Request) -> JSONResponse:
        if self.clock() < self.down_until:
            with self.lock:
                self.refused += 1
            return JSONResponse({"error": "down"}, status_code=503)
        raw = await request.body()
        body = json.loads(raw) if raw else None
        call = self._match(request.method, request.url.path)
        if call is None:
            self.violations.append(f"undocumented call {request.method} {request.url.path}")
            return JSONResponse({"error": "not documented"}, status_code=400)
        wrong = self._check(call, request, body)
        with self.lock:
            self.calls.append(Call(call["name"], request.method, request.url.path, body))
        if wrong:
            self.violations.append(f"{call['name']}: {', '.join(wrong)}")
            return JSONResponse({"error": wrong}, status_code=400)
        answer = self.answers.get(call["response"])
        return JSONResponse(answer if answer is not None else fixture(self.helpdesk, call["response"]))

    def app(self) -> Starlette:
        from bigramlm.serve.limits import ServerLimits

        async def healthz(request: Request) -> JSONResponse:
            return JSONResponse({"status": "ok"})

        app = Starlette(routes=[Route("/healthz", healthz),
                                Route("/{path:path}", self.handle, methods=["GET", "POST", "PUT"])])
        app.state.limits = ServerLimits()
        return app


def fixture(helpdesk: str, name: str) -> Any:
    return json.loads((FIXTURES / helpdesk / name).read_text())

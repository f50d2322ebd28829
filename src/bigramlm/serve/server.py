"""Running the desk: uvicorn, with deadlines on slow clients, the port bound up front and
listened on once the desk can answer.

While the desk loads its run (a recipe GPT's desk was ready 6-7 s after its process started,
benchmarks/store_scale.py, 2 cores), its port is bound but not listening, so a connection is
refused at once. A load balancer's probe then
fails at once instead of waiting in the backlog; nginx takes a refused connection as an
upstream error and tries the next desk (with ``proxy_next_upstream``'s default), where a 503
would have reached the agent; and no request is answered 5xx because the desk is starting.

uvicorn times out idle keep-alive connections but not a client that sends its request
headers slowly: each such connection is held for as long as the client likes (measured:
100 slow connections all held for 30 s). ``HeaderDeadline`` closes a connection whose
request headers are not complete within ``header_timeout_s``; slow *bodies* get a 408
from the request guard (``body_timeout_s``).
"""

from __future__ import annotations

import logging
import os
import socket
from typing import Any

import uvicorn
from fastapi import FastAPI
from uvicorn.protocols.http.h11_impl import H11Protocol

from bigramlm.serve.app import create_app
from bigramlm.serve.limits import ServerLimits
from bigramlm.serve.network import allowed_host_names, bind_listener, check_exposure, is_loopback, listen
from bigramlm.support.store import run_has_agents

log = logging.getLogger("bigramlm.server")


class HeaderDeadline(H11Protocol):
    """uvicorn's HTTP/1.1 protocol with a deadline on each request's headers.

    The deadline is armed when the connection opens and after each response (waiting for
    the next request) and disarmed when a request's headers are complete.
    """

    header_timeout_s = ServerLimits.header_timeout_s
    _TIMEOUT_RESPONSE = b"HTTP/1.1 408 Request Timeout\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"

    def connection_made(self, transport: Any) -> None:
        no_delay(transport)
        super().connection_made(transport)
        self._headers_deadline: Any = None
        self._arm()

    def on_response_complete(self) -> None:
        self._arm()  # before the pipelined next request is parsed, which disarms it
        super().on_response_complete()

    def handle_events(self) -> None:
        cycle = self.cycle
        super().handle_events()
        if self.cycle is not cycle:  # a request's headers arrived
            self._disarm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._disarm()
        if not self.transport.is_closing():
            self._headers_deadline = self.loop.call_later(self.header_timeout_s, self._headers_too_slow)

    def _disarm(self) -> None:
        if getattr(self, "_headers_deadline", None) is not None:
            self._headers_deadline.cancel()
            self._headers_deadline = None

    def _headers_too_slow(self) -> None:
        self._headers_deadline = None
        if not self.transport.is_closing():
            log.info("closed a connection whose request headers took longer than %g s", self.header_timeout_s)
            self.transport.write(self._TIMEOUT_RESPONSE)
            self.transport.close()


def no_delay(transport: Any) -> None:
    """Turn off Nagle's algorithm (``TCP_NODELAY``) on an accepted connection.

    asyncio does so itself only where the socket's ``proto`` is ``IPPROTO_TCP``; the listener
    ``bind_listener`` makes (``socket.create_server``) has ``proto`` 0, and so had each connection
    it accepted. uvicorn writes a response's headers and its body apart, so the body waited for
    the ACK of the headers, which the client delays: about 40 ms on every request after the
    first of a kept-alive connection (the first is ACKed at once, in TCP's quick-ACK start)."""
    sock = transport.get_extra_info("socket")
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def uvicorn_config(app: FastAPI, host: str, port: int, log_level: str = "info", root_path: str = "") -> uvicorn.Config:
    """uvicorn's settings for ``app``, with the deadlines of the app's ``ServerLimits``.
    No logging configuration of its own: its lines go wherever the program sends its logs
    (``serve.logs``). ``root_path``: the prefix a reverse proxy mounts the desk under."""
    limits: ServerLimits = app.state.limits
    protocol = type("HeaderDeadline", (HeaderDeadline,), {"header_timeout_s": limits.header_timeout_s})
    # uvicorn's own access log would be a second line per request (with the query string).
    # timeout_keep_alive: uvicorn annotates it int, but hands it to loop.call_later, which takes float seconds.
    return uvicorn.Config(app, host=host, port=port, http=protocol, access_log=False, log_level=log_level,
                          log_config=None, root_path=root_path,
                          timeout_keep_alive=limits.keep_alive_s,  # type: ignore[arg-type]  # float seconds work (above)
                          timeout_graceful_shutdown=5)


def serve(run_dir: str | os.PathLike[str], host: str = "127.0.0.1", port: int = 8000, brand_path: str | None = None,
          token: str | None = None, limits: ServerLimits | None = None, log_level: str = "info",
          allowed_hosts: tuple[str, ...] = (), root_path: str = "", store: str | None = None) -> None:
    """Run the desk with uvicorn until interrupted; a port in use is a one-line ``BigramLMError``.

    ``allowed_hosts``: ``Host`` names answered besides loopback's (a reverse proxy on the
    same host that passes its own name); ``root_path``: the prefix it mounts the desk under;
    ``store``: the case store (the run's SQLite file by default; the team's database URL).
    Beyond loopback without ``token`` the desk is ``closed``: only active agents' tokens pass,
    and with none left every guarded request is refused (the agents guard it, or nothing passes)."""
    check_exposure(host, token, run_has_agents(run_dir, store))
    sock = bind_listener(host, port)  # before loading the run: a busy port fails at once
    try:
        app = create_app(run_dir, brand_path=brand_path, token=token, limits=limits,
                         allowed_hosts=allowed_host_names(host, allowed_hosts), store=store,
                         closed=not is_loopback(host))
        listen(sock, host, port)  # refused at once until now (the module's docstring)
        bound = sock.getsockname()[1]
        log.info("serving %s on http://%s:%d/ (store %s)", app.state.desk.model_id, f"[{host}]" if ":" in host else host,
                 bound, app.state.desk.store.name)
        uvicorn.Server(uvicorn_config(app, host, bound, log_level, root_path)).run(sockets=[sock])
    finally:
        sock.close()

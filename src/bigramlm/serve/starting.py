"""What the desk answers while it starts: 503 "starting", at once, until the app is built.

``serve`` binds its port before loading the run (a busy port fails at once), and loading
takes seconds (the model, the understanding, the store's texts: 5.2 s with 100,000 cases).
A request that came in then used to wait in the listen backlog, so a load balancer's
``/healthz`` probe timed out instead of hearing "not ready". ``Starting`` accepts on the
socket meanwhile and answers every request ``503`` with ``Retry-After: 1`` and
``{"status": "starting"}``, then hands the socket to uvicorn. Plain sockets only: no
FastAPI, and nothing of the run is needed to say it is not ready.
"""

from __future__ import annotations

import socket
import threading

BODY = b'{"status":"starting","detail":"the desk is loading its run; try again in a second"}'
RESPONSE = (b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: 1\r\n"
            b"Connection: close\r\nContent-Length: " + str(len(BODY)).encode() + b"\r\n\r\n" + BODY)
#: Seconds between looks at the stop flag, and the most a slow client holds the answerer.
POLL_S = 0.1
READ_S = 1.0


class Starting:
    """Answer 503 "starting" on ``sock`` from ``start`` until ``stop`` (a context manager)."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._answer, name="bigramlm-starting", daemon=True)
        self.answered = 0

    def __enter__(self) -> "Starting":
        self._timeout = self.sock.gettimeout()
        self.sock.settimeout(POLL_S)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.settimeout(self._timeout)

    def _answer(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except (socket.timeout, BlockingIOError):
                continue
            except OSError:
                return
            with conn:
                try:
                    conn.settimeout(READ_S)
                    conn.recv(65536)  # the request's head: answered whatever it asks
                    conn.sendall(RESPONSE)
                    self.answered += 1
                except OSError:
                    pass

"""While the desk loads its run, its port answers 503 "starting" at once (issue 30)."""

from __future__ import annotations

import socket

import httpx

from bigramlm.serve.network import bind_listener
from bigramlm.serve.starting import Starting


def test_the_port_answers_starting_until_the_app_takes_it():
    sock = bind_listener("127.0.0.1", 0)
    port = sock.getsockname()[1]
    try:
        with Starting(sock) as starting:
            for path in ("/healthz", "/api/suggest"):
                r = httpx.get(f"http://127.0.0.1:{port}{path}", timeout=5)
                assert r.status_code == 503 and r.json()["status"] == "starting" and r.headers["retry-after"] == "1"
        assert starting.answered == 2 and sock.gettimeout() is None
        # After it, the socket is the app's: a connection waits to be accepted, unanswered.
        with socket.create_connection(("127.0.0.1", port), timeout=5) as client:
            conn, _ = sock.accept()
            conn.close()
    finally:
        sock.close()

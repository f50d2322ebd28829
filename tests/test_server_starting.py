"""While the desk loads its run, its port is bound but refuses connections at once (issue 30)."""

from __future__ import annotations

import socket
import time

import httpx
import pytest

from bigramlm.errors import BigramLMError
from bigramlm.serve.network import bind_listener, listen


def test_the_port_refuses_at_once_until_the_desk_listens():
    sock = bind_listener("127.0.0.1", 0)
    port = sock.getsockname()[1]
    try:
        start = time.perf_counter()
        with pytest.raises(httpx.ConnectError):  # refused: neither held in a backlog nor answered 5xx
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
        assert time.perf_counter() - start < 1.0
        listen(sock, "127.0.0.1", port)
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            conn, _ = sock.accept()  # now the connection waits for the app
            conn.close()
        with pytest.raises(BigramLMError, match=f"cannot listen on host 127.0.0.1 port {port}") as info:
            bind_listener("127.0.0.1", port)  # a port a desk listens on fails at once
        assert info.value.params == ("host", "port")
    finally:
        sock.close()


def test_two_desks_binding_one_port_the_second_to_listen_fails_in_one_line():
    first = bind_listener("127.0.0.1", 0)
    port = first.getsockname()[1]
    second = bind_listener("127.0.0.1", port)  # both still loading: neither listens yet
    try:
        listen(first, "127.0.0.1", port)
        with pytest.raises(BigramLMError, match=f"cannot listen on host 127.0.0.1 port {port}"):
            listen(second, "127.0.0.1", port)
    finally:
        first.close()
        second.close()

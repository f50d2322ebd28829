"""Hostile and unlucky clients: forged log lines, slow clients, non-ASCII tokens, a busy port, offline docs."""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import time

import httpx
import pytest
from fastapi.testclient import TestClient

from bigramlm.serve.app import create_app
from bigramlm.serve.limits import ServerLimits
from bigramlm.serve.middleware import printable
from bigramlm.serve.network import LOOPBACK_NAMES
from desk_helpers import ThreadServer, train_text_run


@pytest.fixture(scope="module")
def text_run(tmp_path_factory):
    return train_text_run(tmp_path_factory.mktemp("desk-hardening"))


def server_lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "bigramlm.server"]


# --- the access log ------------------------------------------------------------------------------


def test_printable_escapes_what_could_break_a_line():
    assert printable("/api/stats") == "/api/stats"
    assert printable("/a\nGET /forged 200 1.0ms") == "/a\\nGET\\x20/forged\\x20200\\x201.0ms"
    assert printable("/x\x00\r\t\x1b[31m\u2028\\") == "/x\\x00\\r\\t\\x1b[31m\\u2028\\\\"
    assert printable("/café/ünïcode") == "/café/ünïcode"  # printable text stays readable


@pytest.mark.parametrize("status", [401, 404, 421])
def test_a_forged_newline_in_the_path_leaves_one_log_line(text_run, caplog, status):
    forged = "/api/x%0AGET%20/api/stats%20200%201.0ms%0D%00%1B[2J"
    if status == 401:
        app, base = create_app(text_run, token="tok"), "http://testserver"
    elif status == 421:
        app, base = create_app(text_run, allowed_hosts=LOOPBACK_NAMES), "http://evil.example"
    else:
        app, base = create_app(text_run), "http://testserver"
    with TestClient(app, base_url=base) as client, caplog.at_level(logging.INFO, logger="bigramlm.server"):
        caplog.clear()
        assert client.get(forged).status_code == status
        lines = server_lines(caplog)
    assert len(lines) == 1, lines
    (line,) = lines
    assert len(line.splitlines()) == 1 and line.isprintable(), line
    assert line.startswith("GET /api/x\\nGET\\x20/api/stats") and f" {status} " in line


# --- slow clients --------------------------------------------------------------------------------


def read_until_closed(sock: socket.socket, limit_s: float) -> bytes:
    """Everything the server sends until it closes the connection (or ``limit_s`` passes)."""
    sock.settimeout(limit_s)
    data = b""
    try:
        while chunk := sock.recv(4096):
            data += chunk
    except ConnectionResetError:
        pass
    return data


def test_a_body_trickled_slower_than_the_deadline_gets_408(text_run):
    app = create_app(text_run, limits=ServerLimits(body_timeout_s=0.5))
    with ThreadServer(app) as server, socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.sendall(b"POST /api/cases HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 1000\r\n\r\n{")
        start = time.monotonic()
        answer = b""
        sock.settimeout(0.2)
        while time.monotonic() - start < 30 and not answer:  # a byte every 0.2 s: never done in 0.5 s
            try:
                sock.sendall(b" ")
                answer = sock.recv(4096)
            except socket.timeout:
                continue
            except (BrokenPipeError, ConnectionResetError):
                break
        answer += read_until_closed(sock, 10)
        assert answer.startswith(b"HTTP/1.1 408 "), answer[:200]
        assert b"connection: close" in answer.lower() and b"body_timeout_s" in answer
        # The server still answers everyone else.
        assert httpx.get(f"{server.base}/healthz").status_code == 200


def test_headers_slower_than_the_deadline_close_the_connection(text_run):
    import bigramlm.serve.server as server_module

    app = create_app(text_run, limits=ServerLimits(header_timeout_s=0.5))
    with ThreadServer(app) as server, socket.create_connection(("127.0.0.1", server.port)) as sock:
        assert server.server.config.http_protocol_class.header_timeout_s == 0.5
        assert issubclass(server.server.config.http_protocol_class, server_module.HeaderDeadline)
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        closed = False
        start = time.monotonic()
        while time.monotonic() - start < 30:
            try:
                sock.sendall(b"X-Slow: 1\r\n")  # never the blank line that ends the headers
            except (BrokenPipeError, ConnectionResetError):
                closed = True
                break
            sock.settimeout(0.2)
            try:
                data = sock.recv(4096)
            except socket.timeout:
                continue
            except ConnectionResetError:
                closed = True
                break
            assert data.startswith(b"HTTP/1.1 408 ") or data == b"", data
            closed = True
            break
        assert closed, "the server held a connection whose headers never ended"
        # A prompt client on a new connection is served, and keeps its connection across requests.
        with httpx.Client(base_url=server.base) as client:
            assert client.get("/healthz").status_code == 200
            assert client.get("/api/stats").status_code == 200


# --- a non-ASCII token -----------------------------------------------------------------------------


def test_non_ascii_token_is_compared_as_utf8_bytes(text_run):
    token = "pässwörd-🔑"
    with TestClient(create_app(text_run, token=token)) as client:
        good = b"Bearer " + token.encode("utf-8")
        assert client.get("/api/stats", headers={"Authorization": good}).status_code == 200
        for wrong in (b"Bearer " + token.encode("utf-8")[:-1], b"Bearer p\xe4ssw\xf6rd-", b"Bearer " + "pässwörd-".encode("utf-8")):
            assert client.get("/api/stats", headers={"Authorization": wrong}).status_code == 401
        # The latin-1 spelling of the same characters is other bytes: refused.
        assert client.get("/api/stats", headers={"Authorization": b"Bearer " + "pässwörd".encode("latin-1")}).status_code == 401


def test_non_ascii_token_from_the_command_line(text_run, tmp_path):
    """`bigramlm serve --token` with a non-ASCII token, end to end over a socket."""
    from desk_helpers import free_port, wait_healthy

    token = "geheim-äöü-秘密"
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "BIGRAMLM_TOKEN"}
    proc = subprocess.Popen([sys.executable, "-m", "bigramlm", "serve", str(text_run), "--port", str(port), "--token", token,
                             "--log-level", "warning"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_healthy(base, timeout=90, proc=proc)
        assert httpx.get(f"{base}/api/stats", headers={"Authorization": b"Bearer " + token.encode("utf-8")}).status_code == 200
        assert httpx.get(f"{base}/api/stats", headers={"Authorization": b"Bearer geheim"}).status_code == 401
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


# --- a busy port ---------------------------------------------------------------------------------------


def test_a_port_in_use_is_one_error_line_and_status_2(text_run):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        env = {k: v for k, v in os.environ.items() if k != "BIGRAMLM_TOKEN"}
        proc = subprocess.run([sys.executable, "-m", "bigramlm", "serve", str(text_run), "--port", str(port)],
                              capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert f"--port {port}" in lines[0] and "in use" in lines[0].lower()


# --- /docs offline ---------------------------------------------------------------------------------------


def test_docs_need_nothing_from_outside(text_run):
    with TestClient(create_app(text_run, token="tok")) as client:  # public even with a token
        page = client.get("/docs")
        assert page.status_code == 200 and "text/html" in page.headers["content-type"]
        assert "://" not in page.text, "the docs page loads something from another host"
        assert client.get("/openapi.json").status_code == 200
        try:
            import fastapi_offline  # noqa: F401
        except ImportError:
            assert 'href="/openapi.json"' in page.text and "/v1/chat/completions" in page.text
            return
        for asset in ("swagger-ui-bundle.js", "swagger-ui.css"):
            assert f"/docs-assets/{asset}" in page.text
            r = client.get(f"/docs-assets/{asset}")
            assert r.status_code == 200 and len(r.content) > 10_000, asset

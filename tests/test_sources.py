"""Corpus resolution and downloads, against an HTTP server on 127.0.0.1 (never the internet)."""

from __future__ import annotations

import dataclasses
import hashlib
import http.server
import socket
import threading
from pathlib import Path

import pytest

from bigramlm.errors import BigramLMError
from bigramlm.data.registry import REGISTRY, resolve_source
from bigramlm.data.sources import cache_dir, ensure_corpus

BODY = ("First Citizen:\nBefore we proceed any further, hear me speak.\n" * 200).encode("utf-8")
SHA = hashlib.sha256(BODY).hexdigest()


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        if self.path == "/ok.txt":
            self._send(200, BODY, len(BODY))
        elif self.path == "/truncated.txt":
            # Promise more bytes than are sent, then close: a cut transfer.
            self._send(200, BODY[:1000], len(BODY))
        elif self.path == "/tampered.txt":
            body = BODY.replace(b"speak", b"SPEAK")
            self._send(200, body, len(body))
        else:
            self._send(404, b"not found", 9)

    def _send(self, status: int, body: bytes, length: int) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(length))
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()
        self.close_connection = True

    def log_message(self, *args) -> None:  # keep test output clean
        pass


@pytest.fixture(scope="module")
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def corpus(monkeypatch):
    # A copy of the real registry entry, pointed at the loopback server; no offline
    # copy may short-circuit the download.
    monkeypatch.delenv("BIGRAMLM_DATA_DIR", raising=False)
    return dataclasses.replace(REGISTRY["tinyshakespeare"], name="loopback-corpus", sha256=SHA)


def _cached_files() -> list[Path]:
    root = cache_dir()
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


def test_download_success_is_cached_and_verified(server, corpus) -> None:
    path = ensure_corpus(dataclasses.replace(corpus, url=f"{server}/ok.txt"))
    assert path == cache_dir() / "loopback-corpus" / "input.txt"
    assert path.read_bytes() == BODY
    assert _cached_files() == [path]  # no temporary file left beside it
    # The second call uses the cache: the URL no longer matters.
    assert ensure_corpus(dataclasses.replace(corpus, url=f"{server}/missing.txt")) == path


@pytest.mark.parametrize(
    ("route", "expected"),
    [("missing.txt", "HTTP 404"), ("truncated.txt", "truncated|IncompleteRead"), ("tampered.txt", "checksum")],
)
def test_failed_download_caches_nothing(server, corpus, route: str, expected: str) -> None:
    with pytest.raises(BigramLMError, match=expected) as info:
        ensure_corpus(dataclasses.replace(corpus, url=f"{server}/{route}"))
    message = str(info.value)
    assert "\n" not in message
    assert "input.txt" in message and "BIGRAMLM_DATA_DIR" in message  # where to put the file
    assert _cached_files() == []


def test_offline_error_is_one_line_and_says_where_to_put_the_file(corpus) -> None:
    with socket.socket() as s:  # a port that nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(BigramLMError) as info:
        ensure_corpus(dataclasses.replace(corpus, url=f"http://127.0.0.1:{port}/input.txt"))
    message = str(info.value)
    assert "\n" not in message
    assert "offline?" in message
    assert "$BIGRAMLM_DATA_DIR/loopback-corpus/input.txt" in message
    assert str(cache_dir() / "loopback-corpus" / "input.txt") in message
    assert _cached_files() == []


def test_data_dir_comes_first(tmp_path, monkeypatch, corpus) -> None:
    offline = tmp_path / "data" / "loopback-corpus" / "input.txt"
    offline.parent.mkdir(parents=True)
    offline.write_bytes(BODY)
    monkeypatch.setenv("BIGRAMLM_DATA_DIR", str(tmp_path / "data"))
    # No URL at all: only the offline copy can satisfy this.
    assert ensure_corpus(dataclasses.replace(corpus, url=None)) == offline


def test_resolve_source_paths(tmp_path) -> None:
    f = tmp_path / "a.txt"
    f.write_text("hello", encoding="utf-8")
    assert resolve_source(str(f)) == (f, None)
    with pytest.raises(BigramLMError, match="no such file or named corpus"):
        resolve_source(str(tmp_path / "absent.txt"))
    with pytest.raises(BigramLMError, match="directory"):
        resolve_source(str(tmp_path))


def test_real_shakespeare_resolves_by_name(shakespeare_path, monkeypatch) -> None:
    monkeypatch.setenv("BIGRAMLM_DATA_DIR", str(shakespeare_path.parent.parent))
    path, corpus = resolve_source("tinyshakespeare")
    assert path == shakespeare_path and corpus is REGISTRY["tinyshakespeare"]

"""The Bitext download path through huggingface_hub, against a Hub-like server on 127.0.0.1.

huggingface_hub resolves ``{endpoint}/datasets/{repo}/resolve/{revision}/{file}``: a HEAD
for the metadata (it needs ``X-Repo-Commit`` and an ``ETag``), then a GET for the body.
``HF_ENDPOINT`` points it at the local server.
"""

from __future__ import annotations

import dataclasses
import hashlib
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from bigramlm._fs import sha256_of
from bigramlm.data import load_data, registry
from bigramlm.errors import BigramLMError
from bigramlm.data.registry import BITEXT, BITEXT_FILE, BITEXT_REPO, BITEXT_REVISION
from bigramlm.data.sources import cache_dir, ensure_corpus

from test_support_data import write_small_csv


class _Hub:
    def __init__(self, body: bytes):
        self.body = body
        self.requests: list[tuple[str, str]] = []
        self.missing = False
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # keep test output quiet
                pass

            def _respond(self, send_body: bool) -> None:
                hub.requests.append((self.command, self.path))
                expected = f"/datasets/{BITEXT_REPO}/resolve/{BITEXT_REVISION}/{BITEXT_FILE}"
                if hub.missing or self.path != expected:
                    self.send_response(404)
                    self.send_header("X-Error-Code", "EntryNotFound")
                    self.send_header("X-Repo-Commit", BITEXT_REVISION)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Type", "text/csv")
                self.send_header("Content-Length", str(len(hub.body)))
                self.send_header("X-Repo-Commit", BITEXT_REVISION)
                self.send_header("ETag", '"' + hashlib.sha256(hub.body).hexdigest() + '"')
                self.end_headers()
                if send_body:
                    self.wfile.write(hub.body)

            def do_HEAD(self) -> None:
                self._respond(False)

            def do_GET(self) -> None:
                self._respond(True)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> "_Hub":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hub_env(tmp_path, monkeypatch):
    body = write_small_csv(tmp_path / "served.csv").read_bytes()
    empty_data_dir = tmp_path / "data"
    empty_data_dir.mkdir()
    monkeypatch.setenv("BIGRAMLM_DATA_DIR", str(empty_data_dir))
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    with _Hub(body) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        yield hub


def _cached_files() -> list[Path]:
    root = cache_dir()
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def test_download_success_pinned_and_checked(hub_env, monkeypatch):
    corpus = dataclasses.replace(BITEXT, sha256=hashlib.sha256(hub_env.body).hexdigest())
    path = ensure_corpus(corpus)
    assert path == cache_dir() / "bitext" / BITEXT_FILE
    assert path.read_bytes() == hub_env.body
    assert _cached_files() == [path]  # no temporary hub cache or partial file left behind
    assert {method for method, _ in hub_env.requests} == {"HEAD", "GET"}
    assert all(BITEXT_REVISION in p for _, p in hub_env.requests)
    # through the registry name, as `--data bitext` does; the second time from the cache
    monkeypatch.setitem(registry.REGISTRY, "bitext", corpus)
    hub_env.requests.clear()
    data = load_data("bitext")
    assert data.kind == "instructions" and data.spec["source"] == "bitext"
    assert hub_env.requests == []


def test_download_checksum_mismatch_caches_nothing(hub_env):
    corpus = dataclasses.replace(BITEXT, sha256="0" * 64)
    with pytest.raises(BigramLMError, match="failed its checksum") as info:
        ensure_corpus(corpus)
    assert "\n" not in str(info.value) and "bitext" in str(info.value)
    assert _cached_files() == []


def test_download_missing_file_caches_nothing(hub_env):
    hub_env.missing = True
    with pytest.raises(BigramLMError) as info:
        ensure_corpus(BITEXT)
    message = str(info.value)
    assert "\n" not in message and "failed" in message and BITEXT_FILE in message  # says where to put it
    assert _cached_files() == [] and not (cache_dir() / "bitext").exists()


def test_offline_data_dir_copy_is_used(tmp_path, monkeypatch):
    root = tmp_path / "data"
    (root / "bitext").mkdir(parents=True)
    copy = write_small_csv(root / "bitext" / BITEXT_FILE)
    monkeypatch.setenv("BIGRAMLM_DATA_DIR", str(root))
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # would fail if it were used
    corpus = dataclasses.replace(BITEXT, sha256=sha256_of(copy))
    assert ensure_corpus(corpus) == root / "bitext" / BITEXT_FILE


def test_offline_copy_with_other_bytes_is_refused(tmp_path, monkeypatch):
    """A local copy is verified like a download: junk appended is a checksum mismatch, not "offline?"."""
    root = tmp_path / "data"
    (root / "bitext").mkdir(parents=True)
    copy = write_small_csv(root / "bitext" / BITEXT_FILE)
    corpus = dataclasses.replace(BITEXT, sha256=sha256_of(copy))
    with open(copy, "a", encoding="utf-8") as f:
        f.write("junk\n")
    monkeypatch.setenv("BIGRAMLM_DATA_DIR", str(root))
    with pytest.raises(BigramLMError, match="checksum mismatch") as info:
        ensure_corpus(corpus)
    assert "offline?" not in str(info.value) and "\n" not in str(info.value)

"""Shared fixtures: small corpora made by the tests, and the real ones when present."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def _data_dir() -> Path | None:
    value = os.environ.get("BIGRAMLM_DATA_DIR")
    if value and Path(value).is_dir():
        return Path(value)
    return SHARED if SHARED.is_dir() else None


#: Set by .ci/run: there every service a test needs is installed (scripts/test.sh), so a
#: skipped test (a missing Chromium, PostgreSQL, nginx, or anything else) is a failure.
NO_SKIPS = os.environ.get("BIGRAMLM_NO_SKIPS") == "1"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if NO_SKIPS and report.skipped:
        report.outcome = "failed"
        report.longrepr = f"test skipped where BIGRAMLM_NO_SKIPS=1: {report.longrepr}"


@pytest.fixture(scope="session")
def pg_cluster():
    """A throwaway PostgreSQL server for the session (``tests/pg_cluster.py``); skips where
    the server is not installed (``scripts/test.sh`` installs it)."""
    from pg_cluster import Cluster, server_bindir

    bindir = server_bindir()
    if bindir is None:
        pytest.skip("PostgreSQL's server (initdb, pg_ctl) is not installed")
    cluster = Cluster(bindir)
    cluster.start()
    yield cluster
    cluster.remove()


@pytest.fixture(scope="session")
def rt_server():
    """A throwaway Request Tracker 5 for the session (``tests/rt_server.py``); skips where
    it is not installed (``scripts/test.sh`` installs it)."""
    from rt_server import RTServer, installed

    if not installed():
        pytest.skip("Request Tracker 5 (request-tracker5, rt5-db-sqlite, rt5-standalone) is not installed")
    server = RTServer()
    yield server
    server.remove()


@pytest.fixture
def pg_url(pg_cluster) -> str:
    """A new, empty PostgreSQL database for one test: its URL."""
    return pg_cluster.create_database()


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Never read or write the user's real cache from a test."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("xdg-cache")))


@pytest.fixture
def shakespeare_path() -> Path:
    root = _data_dir()
    path = root / "tinyshakespeare" / "input.txt" if root else None
    if path is None or not path.is_file():
        pytest.skip("Tiny Shakespeare not available (set BIGRAMLM_DATA_DIR)")
    return path


@pytest.fixture(scope="session")  # session-wide: module fixtures train runs on it
def bitext_sample_path() -> Path:
    root = _data_dir()
    path = root / "bitext" / "bitext-sample.csv" if root else None
    if path is None or not path.is_file():
        pytest.skip("Bitext sample not available (set BIGRAMLM_DATA_DIR)")
    return path


@pytest.fixture
def tiny_corpus(tmp_path) -> Path:
    """A small hand-made text corpus, long enough for batches of block 8."""
    text = ("the cat sat on the mat. the dog sat on the log. " * 40) + "a bird sang.\n"
    path = tmp_path / "tiny.txt"
    path.write_text(text, encoding="utf-8")
    return path


#: The text ``repeating_gpt`` learned to repeat.
REPLY = "thank you for contacting us about your order. we will refund the charge today."


@pytest.fixture(scope="session")
def repeating_gpt():
    """A small GPT that has learned to repeat support-like text (so drafts are often right),
    and its character tokenizer."""
    import torch

    from bigramlm.models.registry import build_model
    from bigramlm.tokenization.char import CharTokenizer

    text = (REPLY + "\n") * 6 + "please send the invoice number and the email of the account.\n" * 3
    tokenizer = CharTokenizer.from_text(text + "abcdefghijklmnopqrstuvwxyz")
    torch.manual_seed(0)
    model = build_model("gpt", {"vocab_size": tokenizer.vocab_size, "block_size": 96, "n_layer": 2, "n_head": 2,
                                "n_embd": 32})
    ids = torch.tensor(tokenizer.encode(text * 3), dtype=torch.long)
    optimizer = torch.optim.AdamW(model.parameters(), 3e-3)
    for _ in range(120):
        starts = torch.randint(0, len(ids) - 65, (16,))
        x = torch.stack([ids[s : s + 64] for s in starts])
        y = torch.stack([ids[s + 1 : s + 65] for s in starts])
        _, loss = model(x, y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval(), tokenizer


CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]


@pytest.fixture(scope="module")
def browser():
    """Debian's headless Chromium through Playwright (``executable_path``), one per test module."""
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()

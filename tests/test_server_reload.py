"""The running desk picks up new weights by itself, and refuses weights that are not finite."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest
import torch
from fastapi.testclient import TestClient
from safetensors.torch import load_file, save_file

from bigramlm.checkpoint import WEIGHTS
from bigramlm.serve.app import create_app
from desk_helpers import train_support_run

#: Generous: the watcher looks once a second, but a busy machine may be slow to load a run.
WAIT_S = 30.0


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    return train_support_run(tmp_path_factory.mktemp("desk-reload"))


@pytest.fixture
def run_dir(trained, tmp_path) -> Path:
    copy = tmp_path / "support-run"
    shutil.copytree(trained, copy)
    return copy


def replace_weights(run_dir: Path, tensors: dict[str, torch.Tensor]) -> None:
    """Write new weights the way ``learn`` does: a whole new file renamed over the old one."""
    tmp = run_dir / (WEIGHTS + ".tmp")
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(tmp))
    os.replace(tmp, run_dir / WEIGHTS)


def only_char_weights(run_dir: Path, char: str) -> dict[str, torch.Tensor]:
    """Bigram weights under which every next character is ``char``."""
    from bigramlm.checkpoint import load_run

    run = load_run(run_dir)
    (key, table), = load_file(str(run_dir / WEIGHTS)).items()
    target = run.tokenizer.encode(char)[0]
    peaked = torch.full_like(table, -30.0)
    peaked[:, target] = 30.0
    return {key: peaked}


def wait_for(client: TestClient, condition) -> dict:
    deadline = time.monotonic() + WAIT_S
    health = client.get("/healthz").json()
    while not condition(health) and time.monotonic() < deadline:
        time.sleep(0.1)
        health = client.get("/healthz").json()
    return health


def greedy_reply(client: TestClient) -> str:
    # Two candidates, the first greedy and the second sampled with a fixed seed: the counts
    # bigram's greedy path is "####...", which the assistant strips to nothing, so the
    # model's best draft is the sampled one (shown or not: a bigram's drafts hold non-words).
    r = client.post("/api/suggest", json={"message": "where is my package", "n": 2, "drafts": 2, "temperature": 1.0, "seed": 3,
                                          "max_new_tokens": 20})
    assert r.status_code == 200, r.text
    return r.json()["drafts"][0]["text"]


def test_new_weights_are_loaded_in_the_background_and_answer_the_next_request(run_dir):
    with TestClient(create_app(run_dir)) as client:
        before = greedy_reply(client)
        assert set(before) != {"y"}
        old_pair = client.app.state.desk.loaded
        replace_weights(run_dir, only_char_weights(run_dir, "y"))
        # No request in between: the desk's watcher notices the file by itself.
        health = wait_for(client, lambda h: h["reloads"] >= 1)
        assert health["reloads"] == 1 and health["reload_error"] is None and health["assistant"] is True
        assert client.app.state.desk.loaded is not old_pair
        assert greedy_reply(client) == "y" * 20  # answered by the new model


def test_weights_that_are_not_finite_are_refused_and_the_old_model_keeps_serving(run_dir):
    good = load_file(str(run_dir / WEIGHTS))
    with TestClient(create_app(run_dir)) as client:
        before = greedy_reply(client)
        replace_weights(run_dir, {k: torch.full_like(v, float("nan")) for k, v in good.items()})
        health = wait_for(client, lambda h: h["reload_error"] is not None)
        assert "not finite" in (health["reload_error"] or "") and health["reloads"] == 0
        assert greedy_reply(client) == before  # still the old weights
        r = client.post("/v1/completions", json={"prompt": "where", "max_tokens": 5})
        assert r.status_code == 200, r.text
        r = client.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "where is my package"}], "max_tokens": 5})
        assert r.status_code == 200 and r.json()["choices"][0]["message"]["content"], r.text

        # Good weights again: loaded, and the refusal is cleared.
        replace_weights(run_dir, good)
        health = wait_for(client, lambda h: h["reloads"] >= 1)
        assert health["reloads"] == 1 and health["reload_error"] is None
        assert greedy_reply(client) == before

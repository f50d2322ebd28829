"""The desk and ``learn`` share one store: accepted cases are learned, and the server picks up the new weights."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import torch
from fastapi.testclient import TestClient

from bigramlm._fs import atomic_write
from bigramlm.serve.app import create_app
from desk_helpers import ThreadServer, train_support_run


def test_accepted_cases_feed_learn_and_the_server_reloads(tmp_path):
    """The desk answers every suggestion while ``learn`` runs beside it, then reloads by itself."""
    run_dir = train_support_run(tmp_path)
    app = create_app(run_dir)
    with ThreadServer(app) as server, httpx.Client(base_url=server.base, timeout=60) as client:
        desk = app.state.desk
        message = "my parcel went to the neighbour's house, what now"
        result = client.post("/api/suggest", json={"message": message, "n": 2, "seed": 1, "max_new_tokens": 40}).json()
        chosen = result["suggestions"][0]
        reply = "Sorry about that! I have asked the courier to collect it from your neighbour."
        r = client.post("/api/cases", json={"message": message, "reply": reply, "intent": result["intent"],
                                            "category": result["category"], "suggestion_id": chosen["id"], "edited": True})
        assert r.status_code == 201
        assert client.get("/api/stats").json()["cases_since_last_learn"] == 1

        # The accepted case is retrieved for the next customer at once (same store, same index).
        again = client.post("/api/suggest", json={"message": message, "n": 1, "max_new_tokens": 10}).json()
        assert any(c["reply"] == reply and c["source"] == "desk" for c in again["similar_cases"])

        before = {k: v.clone() for k, v in desk.run.model.state_dict().items()}
        # `bigramlm learn RUN_DIR` with no --cases: what the desk stored since the last learn.
        learner = subprocess.Popen([sys.executable, "-m", "bigramlm", "learn", str(run_dir), "--steps", "300"],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            during = []
            while True:  # at least one request while the learn runs; then until it ends (bounded by its steps)
                r = client.post("/api/suggest", json={"message": "where is my order", "n": 2, "max_new_tokens": 30})
                during.append(r.status_code)
                if learner.poll() is not None:
                    break
            _, errors = learner.communicate(timeout=300)
        finally:
            if learner.poll() is None:
                learner.kill()
                learner.wait(timeout=30)
        assert learner.returncode == 0, errors
        assert during and set(during) == {200}, during
        stats = client.get("/api/stats").json()
        assert stats["cases_since_last_learn"] == 0 and stats["cases"] == 1

        # No request needed: the desk's watcher notices the new weights file by itself.
        deadline = time.monotonic() + 60
        while client.get("/healthz").json()["reloads"] < 1 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert client.get("/healthz").json()["reloads"] == 1
        after = desk.run.model.state_dict()
        assert any(not torch.equal(before[k], after[k]) for k in before), "the server still runs the old weights"
        assert client.post("/api/suggest", json={"message": "hi", "max_new_tokens": 5}).status_code == 200


def test_a_learn_with_a_non_finite_rate_changes_nothing_and_the_desk_keeps_answering(tmp_path):
    """`learn --lr nan` (and inf) is refused before anything is written: the old weights
    stay byte for byte, the case is not stored, and the running desk answers 200 on every route."""
    from bigramlm.checkpoint import WEIGHTS

    run_dir = train_support_run(tmp_path)
    cases = tmp_path / "cases.csv"
    cases.write_text("instruction,response,intent,category\nwhere is it,It ships today.,track_order,ORDER\n", encoding="utf-8")
    weights = (run_dir / WEIGHTS).read_bytes()
    with TestClient(create_app(run_dir)) as client:
        for lr in ("nan", "inf"):
            proc = subprocess.run([sys.executable, "-m", "bigramlm", "learn", str(run_dir), "--cases", str(cases), "--lr", lr],
                                  capture_output=True, text=True, timeout=120)
            assert proc.returncode == 2 and proc.stderr.startswith("error: --lr ") and proc.stderr.count("\n") == 1
        assert (run_dir / WEIGHTS).read_bytes() == weights
        assert client.get("/api/stats").json()["cases"] == 0
        # Two whole looks of the watcher after the refused learns see nothing to reload...
        desk = client.app.state.desk
        looked = threading.Semaphore(0)
        look = desk.reload_if_changed

        def counted() -> bool:
            swapped = look()
            looked.release()
            return swapped

        desk.reload_if_changed = counted
        assert looked.acquire(timeout=30) and looked.acquire(timeout=30), "the reload watcher is not looking"
        assert client.get("/healthz").json()["reloads"] == 0
        # ...and the same watcher sees a change made now: it is alive, not just quiet.
        atomic_write(run_dir / WEIGHTS, lambda tmp: Path(tmp).write_bytes(weights))
        deadline = time.monotonic() + 30
        while client.get("/healthz").json()["reloads"] < 1 and time.monotonic() < deadline:
            assert looked.acquire(timeout=30), "the reload watcher stopped looking"
        assert client.get("/healthz").json()["reloads"] == 1
        assert client.post("/api/suggest", json={"message": "where is my order", "max_new_tokens": 10}).status_code == 200
        assert client.post("/v1/completions", json={"prompt": "### Instruction:\n", "max_tokens": 5}).status_code == 200
        chat = {"messages": [{"role": "user", "content": "where is my order"}], "max_tokens": 5}
        assert client.post("/v1/chat/completions", json=chat).status_code == 200

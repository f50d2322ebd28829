"""SIGKILL the server in the middle of a stream of writes: every acknowledged case survives."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time

import httpx
import pytest

from bigramlm.support.store import store_path
from desk_helpers import free_port, train_support_run, wait_healthy


def start_server(run_dir, port: int) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("BIGRAMLM_TOKEN", None)
    return subprocess.Popen(
        [sys.executable, "-m", "bigramlm", "serve", str(run_dir), "--port", str(port), "--log-level", "warning"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env,
    )


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")
def test_sigkill_during_writes_loses_no_acknowledged_case(tmp_path):
    run_dir = train_support_run(tmp_path)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = start_server(run_dir, port)
    try:
        wait_healthy(base, timeout=90, proc=proc)
        acked: list[tuple[int, str, str]] = []
        lock = threading.Lock()
        stop = threading.Event()

        def writer(w: int) -> None:
            with httpx.Client(base_url=base, timeout=5) as client:
                i = 0
                while not stop.is_set() and i < 5000:  # bounded even if the kill never came
                    message, reply = f"writer {w} case {i} ünïcode", f"reply {w}/{i} " + "x" * (i % 50)
                    try:
                        r = client.post("/api/cases", json={"message": message, "reply": reply})
                    except httpx.HTTPError:
                        return  # the server is gone: this write was never acknowledged
                    if r.status_code == 201:
                        with lock:
                            acked.append((r.json()["id"], message, reply))
                    i += 1

        writers = [threading.Thread(target=writer, args=(w,)) for w in range(3)]
        for t in writers:
            t.start()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with lock:
                if len(acked) >= 60:
                    break
            time.sleep(0.01)
        os.kill(proc.pid, signal.SIGKILL)  # mid-stream: the writers are still posting
        proc.wait(timeout=10)
        stop.set()
        for t in writers:
            t.join(timeout=10)
        assert len(acked) >= 20, "too few writes before the kill to mean anything"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)

    # The database file is consistent, even before anyone reopens it through the app.
    with sqlite3.connect(store_path(run_dir)) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = start_server(run_dir, port)
    try:
        wait_healthy(base, timeout=90, proc=proc)
        stored: dict[int, tuple[str, str]] = {}
        offset = 0
        with httpx.Client(base_url=base, timeout=10) as client:
            while offset is not None:
                page = client.get("/api/cases", params={"offset": offset, "limit": 200}).json()
                for c in page["items"]:
                    stored[c["id"]] = (c["message"], c["reply"])
                offset = page["next_offset"]
            # It still takes writes after the restart.
            assert client.post("/api/cases", json={"message": "after", "reply": "restart"}).status_code == 201
            stats = client.get("/api/stats").json()
        for case_id, message, reply in acked:
            assert stored.get(case_id) == (message, reply), f"acknowledged case {case_id} lost or changed"
        # Possibly one committed-but-unacknowledged write per writer, never fewer than acknowledged.
        assert len(acked) <= len(stored) <= len(acked) + 3
        assert stats["cases"] == len(stored) + 1
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
    with sqlite3.connect(store_path(run_dir)) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"

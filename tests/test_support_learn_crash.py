"""A real SIGKILL during ``bigramlm learn --cases F``, at several points: no acknowledged case
is lost, the weights on disk are the old ones or complete new ones (they load), and a
learn afterwards succeeds and stores each case of the file once."""

from __future__ import annotations

import hashlib
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bigramlm.data.cases import Case
from bigramlm.checkpoint import WEIGHTS, load_run
from bigramlm.support.learning import learn
from bigramlm.support.store import CaseStore, store_path
from desk_helpers import train_support_run

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")

FILE_CASES = [(f"my zorblax number {i} never arrived", f"Sorry! Zorblax {i} ships again today.") for i in range(6)]


def _cases_file(path: Path) -> Path:
    rows = "".join(f'"{m}","{r}",track_order,ORDER\n' for m, r in FILE_CASES)
    path.write_text("instruction,response,intent,category\n" + rows, encoding="utf-8")
    return path


#: ``bigramlm learn`` as the CLI runs it, plus one line on stderr when the optimizer is made,
#: right before the first training step, and one after each step: the only way to know from
#: outside that the process is fine-tuning (it writes nothing until the steps are done).
ANNOUNCED_LEARN = """
import sys
from bigramlm.support import learning
make = learning._optimizer
def announced(*args, **kwargs):
    optimizer = make(*args, **kwargs)
    step = optimizer.step
    def stepped(*a, **k):
        out = step(*a, **k)
        print("step", file=sys.stderr, flush=True)
        return out
    optimizer.step = stepped
    print("fine-tuning starts", file=sys.stderr, flush=True)
    return optimizer
learning._optimizer = announced
from bigramlm.cli import main
sys.exit(main(sys.argv[1:]))
"""


def _start_learn(run_dir: Path, cases: Path, steps: int) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", ANNOUNCED_LEARN, "learn", str(run_dir), "--cases", str(cases),
                             "--steps", str(steps)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _kill(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    proc.stderr.close()


def _kill_right_after_start(run_dir: Path, cases: Path) -> None:
    _kill(_start_learn(run_dir, cases, steps=50))


def _kill_during_fine_tuning(run_dir: Path, cases: Path) -> None:
    proc = _start_learn(run_dir, cases, steps=1_000_000)  # ends only by the kill
    try:
        lines = []
        while not lines or lines[-1] not in ("fine-tuning starts\n", ""):
            lines.append(proc.stderr.readline())
        assert lines[0].startswith("read 6 cases") and lines[-1] == "fine-tuning starts\n", lines
        steps = [proc.stderr.readline() for _ in range(3)]  # some steps in: any moment of the loop would do
        assert steps == ["step\n"] * 3 and proc.poll() is None, steps
    finally:
        _kill(proc)


def _kill_when_the_weights_change(run_dir: Path, cases: Path) -> None:
    """Kill as soon as the new weights appear: between writing them and the store's commit, if we can."""
    weights = run_dir / WEIGHTS
    before = weights.stat()
    proc = _start_learn(run_dir, cases, steps=30)
    try:
        while proc.poll() is None:
            now = weights.stat()
            if (now.st_ino, now.st_mtime_ns, now.st_size) != (before.st_ino, before.st_mtime_ns, before.st_size):
                break
            time.sleep(0.001)
    finally:
        _kill(proc)


def _snapshot(run_dir: Path) -> dict[int, tuple]:
    with CaseStore.for_run(run_dir) as store:
        return {c.id: (c.case.message, c.case.reply, c.case.source) for c in store.list_cases(limit=10**9)}


def _check_after_a_kill(run_dir: Path, acknowledged: dict[int, tuple], old_weights: str) -> None:
    """Nothing acknowledged lost; at most the file's cases added, once; the weights load."""
    with sqlite3.connect(store_path(run_dir)) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    db.close()
    now = _snapshot(run_dir)
    for case_id, case in acknowledged.items():
        assert now.get(case_id) == case, f"acknowledged case {case_id} lost or changed"
    added = [case for case_id, case in now.items() if case_id not in acknowledged]
    # Only the file's cases can have been added (a learn that committed before the kill), each once.
    assert sorted(added) == sorted((m, r, "learn") for m, r in FILE_CASES) or added == []
    load_run(run_dir)  # the weights file is whole, the old one or a complete new one: it loads, finite
    if added:  # the learn committed: the store names the weights on disk as its result
        assert hashlib.sha256((run_dir / WEIGHTS).read_bytes()).hexdigest() == _sha_of_last_learn(run_dir) != old_weights


def _sha_of_last_learn(run_dir: Path) -> str | None:
    with CaseStore.for_run(run_dir) as store:
        last = store.last_learn()
    return last.changes.weights_after if last else None


def test_sigkill_during_learn_loses_nothing_and_a_later_learn_succeeds(tmp_path):
    run_dir = train_support_run(tmp_path)
    cases = _cases_file(tmp_path / "cases.csv")
    earlier = tmp_path / "earlier.csv"
    earlier.write_text("instruction,response,intent,category\nrefund my quuxel,Your quuxel refund is done.,get_refund,REFUND\n",
                       encoding="utf-8")
    learn(run_dir, earlier, steps=5)  # an earlier learn: its case is acknowledged and learned
    with CaseStore.for_run(run_dir) as store:  # cases the desk acknowledged, not learned yet
        for i in range(3):
            store.add_case(Case(f"desk message {i}", f"desk reply {i}", intent="track_order", category="ORDER"))
    for kill in (_kill_right_after_start, _kill_during_fine_tuning, _kill_when_the_weights_change):
        acknowledged = _snapshot(run_dir)
        old_weights = hashlib.sha256((run_dir / WEIGHTS).read_bytes()).hexdigest()
        kill(run_dir, cases)
        _check_after_a_kill(run_dir, acknowledged, old_weights)

    acknowledged = _snapshot(run_dir)
    done = subprocess.run([sys.executable, "-m", "bigramlm", "learn", str(run_dir), "--cases", str(cases), "--steps", "5",
                           "--json"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    now = _snapshot(run_dir)
    assert all(now[i] == case for i, case in acknowledged.items())
    stored = [(m, r) for m, r, source in now.values() if source == "learn"]
    for case in FILE_CASES:
        assert stored.count(case) == 1, case
    assert stored.count(("refund my quuxel", "Your quuxel refund is done.")) == 1
    with CaseStore.for_run(run_dir) as store:
        # The desk's cases still wait for a learn from the store; the file's are learned.
        assert [c.case.message for c in store.cases_since_last_learn()] == [f"desk message {i}" for i in range(3)]
        assert store.last_learn().changes.weights_after == hashlib.sha256((run_dir / WEIGHTS).read_bytes()).hexdigest()
    load_run(run_dir)

"""Learning never loses work: one learner at a time, a learn killed at the exact moment of
each of its writes is finished or rolled back, and undo always reaches the files from
before the last learn that changed anything (issue: learning that never loses work)."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bigramlm.checkpoint import WEIGHTS, load_run
from bigramlm.cli import main
from bigramlm.support import learn_chain
from bigramlm.support.history import HISTORY_DIR, JOURNAL, learn_lock
from bigramlm.support.store import CaseStore
from bigramlm.support.understanding import UNDERSTANDING_FILE, Understander
from desk_helpers import INTENTS, write_support_csv

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL and flock are POSIX")


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def recipe_run(tmp_path_factory):
    """A support recipe run (bigram, with its understanding) that has never seen get_refund."""
    root = tmp_path_factory.mktemp("reliable")
    table = write_support_csv(root / "s.csv", copies=6)
    run = root / "run"
    assert main(["train", "--data", str(table), "--recipe", "support", "--model", "bigram", "--exclude-intents",
                 "get_refund", "--out", str(run), "--json"]) == 0
    return run


@pytest.fixture
def run(recipe_run, tmp_path):
    return Path(shutil.copytree(recipe_run, tmp_path / "run"))


def _cases(path: Path, intent: str = "get_refund") -> Path:
    category, messages, reply = INTENTS[intent]
    path.write_text("instruction,response,intent,category\n" + "".join(f'"{m}","{reply}",{intent},{category}\n' for m in messages),
                    encoding="utf-8")
    return path


def _learn(run: Path, cases: Path, crash_at: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **({"BIGRAMLM_CRASH_AT": crash_at} if crash_at else {})}
    return subprocess.run([sys.executable, "-m", "bigramlm", "learn", str(run), "--cases", str(cases), "--steps", "5",
                           "--force"], capture_output=True, text=True, env=env, timeout=300)


def _files(run: Path) -> tuple[str, str]:
    return _sha(run / WEIGHTS), _sha(run / UNDERSTANDING_FILE)


def test_a_second_learn_is_refused_in_one_line_while_one_runs(run, tmp_path):
    before = _files(run)
    with learn_lock(run):  # another learn holds the run
        proc = _learn(run, _cases(tmp_path / "c.csv"))
    assert proc.returncode == 2 and proc.stderr.startswith("error: another learn") and proc.stderr.count("\n") == 1
    assert _files(run) == before
    with CaseStore.for_run(run) as store:
        assert store.count() == 0  # nothing stored, nothing marked
    assert _learn(run, tmp_path / "c.csv").returncode == 0  # free again


@pytest.mark.parametrize("point", ["journal", f"install:{WEIGHTS}", f"install:{UNDERSTANDING_FILE}", "record"])
def test_a_kill_at_each_write_is_finished_or_rolled_back(run, tmp_path, point):
    before = _files(run)
    cases = _cases(tmp_path / "c.csv")
    killed = _learn(run, cases, crash_at=point)
    assert killed.returncode == -9, killed.stderr
    assert (run / JOURNAL).exists()  # the kill came between the journal and its removal
    # The next learn (here: of nothing new) recovers first; so does undo, and the desk waits.
    assert main(["learn", str(run), "--steps", "1"]) == 0
    assert not (run / JOURNAL).exists()
    with CaseStore.for_run(run) as store:
        last = store.last_learn()
    if point == "record":  # the store had recorded it: the learn happened, whole
        assert last is not None and _files(run) == (last.changes.weights_after, last.changes.understanding_after)
        assert "get_refund" in Understander.load(run)[0].classes
        assert main(["learn", str(run), "--undo"]) == 0
    else:  # not recorded: the run is exactly as before the learn
        assert last is None
    assert _files(run) == before
    assert "get_refund" not in Understander.load(run)[0].classes
    load_run(run)
    # And a learn after all that succeeds, and undo reaches the files from before it.
    assert _learn(run, cases).returncode == 0 and _files(run) != before
    assert main(["learn", str(run), "--undo"]) == 0 and _files(run) == before


def test_undo_reaches_back_through_every_learn(run, tmp_path):
    original = _files(run)
    assert _learn(run, _cases(tmp_path / "a.csv")).returncode == 0
    first = _files(run)
    assert _learn(run, _cases(tmp_path / "b.csv", "contact_human_agent")).returncode == 0
    assert _files(run) != first
    assert main(["learn", str(run), "--undo"]) == 0 and _files(run) == first
    assert main(["learn", str(run), "--undo"]) == 0 and _files(run) == original
    assert (run / HISTORY_DIR).is_dir()


def test_a_learn_that_only_refits_the_understanding_can_be_undone(run, tmp_path, capsys):
    before = _files(run)
    assert main(["learn", str(run), "--cases", str(_cases(tmp_path / "c.csv")), "--steps", "0"]) == 0
    assert _sha(run / WEIGHTS) == before[0] and _sha(run / UNDERSTANDING_FILE) != before[1]
    assert "get_refund" in Understander.load(run)[0].classes
    capsys.readouterr()
    assert main(["learn", str(run), "--undo"]) == 0
    assert _files(run) == before


def test_a_full_disk_during_a_learn_is_one_line_and_the_run_stays_whole(run, tmp_path):
    """On a tmpfs with room for the run and a few kilobytes more, the new files cannot all be
    written: one error line, and the run is the run before (after recovery, if any)."""
    if os.geteuid() != 0 or not shutil.which("unshare"):
        pytest.skip("needs root and unshare for a small tmpfs")  # CI runs as root
    cases = _cases(tmp_path / "c.csv")
    CaseStore.for_run(run).close()  # the store exists: the learn's own writes are what fill the disk
    size_kb = sum(p.stat().st_size for p in run.rglob("*") if p.is_file()) // 1024 + 64
    script = ('mount -t tmpfs -o size="$1"k tmpfs "$2" && cp -a "$3"/. "$2"/ && '
              '"$4" -m bigramlm learn "$2" --cases "$5" --steps 3 --force; echo "rc=$?"; '
              '"$4" -m bigramlm learn "$2" --steps 1 >/dev/null 2>&1; '  # recovery, should a journal be left
              'sha256sum "$2"/model.safetensors "$2"/understanding.safetensors')
    mount = tmp_path / "small"
    mount.mkdir()
    proc = subprocess.run(["unshare", "-m", "sh", "-c", script, "sh", str(size_kb), str(mount), str(run), sys.executable,
                           str(cases)], capture_output=True, text=True, timeout=300)
    assert "rc=2" in proc.stdout, proc.stdout + proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and ("No space left" in errors[0] or "disk is full" in errors[0]), proc.stderr
    assert "Traceback" not in proc.stderr
    shas = dict(reversed(line.split()) for line in proc.stdout.splitlines() if len(line.split()) == 2 and "/" in line)
    assert (shas[str(mount / WEIGHTS)], shas[str(mount / UNDERSTANDING_FILE)]) == _files(run)


def _batch(folder: Path, k: int) -> Path:
    """Learn number ``k``'s cases: one intent's messages, worded for this learn only (so
    that each learn stores and marks its own 4 cases)."""
    intent = list(INTENTS)[k % len(INTENTS)]
    category, messages, reply = INTENTS[intent]
    path = folder / f"batch{k}.csv"
    path.write_text("instruction,response,intent,category\n" + "".join(
        f'"{m} (batch {k})","{reply}",{intent},{category}\n' for m in messages), encoding="utf-8")
    return path


def _learn_batches(run: Path, folder: Path, count: int) -> list[tuple[str, str]]:
    """The run's files before the first learn and after each of ``count`` learns (in process)."""
    versions = [_files(run)]
    for k in range(count):
        assert main(["learn", str(run), "--cases", str(_batch(folder, k)), "--steps", "2", "--force"]) == 0
        versions.append(_files(run))
    assert len(set(versions)) == count + 1  # every learn changed the files
    return versions


def _marks(run: Path) -> tuple[int, int]:
    """(cases stored, cases not learned)."""
    with CaseStore.for_run(run) as store:
        return store.count(), len(store.cases_since_last_learn())


def _nothing_to_undo(run: Path, capsys) -> None:
    capsys.readouterr()
    assert main(["learn", str(run), "--undo"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: nothing to undo") and err.count("\n") == 1, err


def test_six_learns_then_six_undos_reach_the_trained_files(run, tmp_path, capsys):
    """Issue 27, finding 3: the 4th undo after 4 learns found its version pruned."""
    versions = _learn_batches(run, tmp_path, 6)
    assert _marks(run) == (24, 0)
    for k in range(6):  # one learn back at a time, bit for bit, and that learn's 4 cases unmarked
        capsys.readouterr()
        assert main(["learn", str(run), "--undo"]) == 0
        assert capsys.readouterr().out.startswith(f"restored the weights and understanding from before learn {6 - k};")
        assert _files(run) == versions[5 - k]
        assert _marks(run) == (24, 4 * (k + 1))
    assert _files(run) == versions[0]  # the trained weights and understanding
    with CaseStore.for_run(run) as store:
        assert store.last_learn() is None and store.desk_stats().last_learned_id == 0
    _nothing_to_undo(run, capsys)
    load_run(run)


def test_an_undo_past_a_pruned_learn_goes_back_to_the_trained_files(run, tmp_path, capsys, monkeypatch):
    """With the versions of 2 learns kept, 4 learns: two undos step back, the third goes back
    to the trained files (the first learn's version after is gone) and takes back learns 1
    and 2 together, saying so in one line."""
    monkeypatch.setattr(learn_chain, "KEEP_LEARNS", 2)
    versions = _learn_batches(run, tmp_path, 4)
    kept = {path.name.split(".", 1)[0] for path in (run / HISTORY_DIR).iterdir()}
    assert versions[1][0] not in kept and versions[0][0] in kept  # pruned: the disk stays bounded
    for k in range(2):
        assert main(["learn", str(run), "--undo"]) == 0 and _files(run) == versions[3 - k]
    capsys.readouterr()
    assert main(["learn", str(run), "--undo"]) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and "restored the trained weights and understanding, taking back learns 1 to 2" in out
    assert _files(run) == versions[0] and _marks(run) == (16, 16)
    _nothing_to_undo(run, capsys)
    # A learn after it is undone as usual.
    assert main(["learn", str(run), "--cases", str(_batch(tmp_path, 0)), "--steps", "2", "--force"]) == 0
    assert main(["learn", str(run), "--undo"]) == 0 and _files(run) == versions[0] and _marks(run) == (16, 16)


def _undo(run: Path, crash_at: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bigramlm", "learn", str(run), "--undo"], capture_output=True, text=True,
                          env={**os.environ, "BIGRAMLM_CRASH_AT": crash_at}, timeout=300)


@pytest.mark.parametrize("point, then", [
    (f"undo:install:{UNDERSTANDING_FILE}", "undo"),  # the files restored, the store not yet: the case
    (f"undo:install:{UNDERSTANDING_FILE}", "learn"),
    ("undo:journal", "undo"),
    ("undo:record", "undo"),
])
def test_an_undo_killed_half_way_is_finished_by_the_next_command(run, tmp_path, capsys, point, then):
    """Issue 27, finding 9: a kill between the restored files and the store's marks left the
    cases marked as learned. The undo's journal makes the next learn or undo finish it."""
    versions = _learn_batches(run, tmp_path, 2)
    killed = _undo(run, point)
    assert killed.returncode == -9, killed.stderr
    assert (run / JOURNAL).exists()
    if point != "undo:journal":
        assert _files(run) == versions[1]  # the files were put back before the kill
    capsys.readouterr()
    if then == "undo":  # the undo asked for again: the interrupted one is finished, and no other
        assert main(["learn", str(run), "--undo"]) == 0
        assert capsys.readouterr().out.startswith("finished an interrupted undo: restored the weights and understanding "
                                                  "from before learn 2;")
        assert _marks(run) == (8, 4)
    else:  # a learn from the store finishes it first, then learns the 4 cases it unmarked
        assert main(["learn", str(run), "--steps", "2", "--force"]) == 0
        out, err = capsys.readouterr()
        assert err.startswith("finished an interrupted undo") and out.startswith("learned 4 cases")
        assert main(["learn", str(run), "--undo"]) == 0 and _marks(run) == (8, 4)
    assert not (run / JOURNAL).exists() and _files(run) == versions[1]
    with CaseStore.for_run(run) as store:
        assert store.last_learn().id == 1
    assert main(["learn", str(run), "--undo"]) == 0 and _files(run) == versions[0] and _marks(run) == (8, 8)

"""The learned files of a run, kept by content, and the journal that makes a learn (or an
undo) all or nothing.

A ``learn`` changes up to two files of a run: the weights and the understanding
(``LEARNED_FILES``). Every version of them that a learn writes or replaces is kept in
``learn-history/``, named by its sha256, so that ``learn --undo`` can put back the
version from before a learn, whatever happened since (one copy per version: a file a
later learn replaces again is not copied twice; ``prune`` drops the versions that
``support.learn_chain`` says no undo needs).

Before a learn replaces anything it writes its journal (``learn-journal.json``: for
each file, the sha256 before and after, and the learn's token), then installs the new
versions one atomic rename each, then records the learn in the store (one transaction,
with the token), then removes the journal. ``recover_learn`` finishes what a killed learn
left: if the store has the journal's token, the learn happened and the journal goes; if
not, every file is put back to its version before, so the run is the run before the learn.
An undo writes a journal too (naming the learns it takes back), before it puts back any
file: a killed undo is finished by the next learn or undo, files and store marks both
(``support.publish``). ``learn_lock`` keeps a second learn (or undo) of the same run from
starting meanwhile.

``BIGRAMLM_CRASH_AT`` (``journal``, ``install:<file>``, ``record``, and for an undo the
same names after ``undo:``) kills the process at that point: the crash tests' way to stop
a learn or an undo at the exact moment of each write.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import signal
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from bigramlm._fs import atomic_write, atomic_write_text, sha256_of
from bigramlm.checkpoint import WEIGHTS
from bigramlm.errors import BigramLMError
from bigramlm.support.understanding import UNDERSTANDING_FILE

HISTORY_DIR = "learn-history"
JOURNAL = "learn-journal.json"
LOCK = "learn.lock"
LEARNED_FILES = (WEIGHTS, UNDERSTANDING_FILE)


@dataclass(frozen=True)
class Change:
    """One learned file's sha256 before a learn or undo and after (None: no such file)."""

    name: str
    before: str | None
    after: str | None


@dataclass(frozen=True)
class Journal:
    """What a learn or an undo is about to change; ``undoes``: the learns an undo takes
    back (empty for a learn)."""

    token: str
    changes: list[Change]
    undoes: tuple[int, ...] = ()

    def point(self, name: str) -> str:
        """The crash point ``name`` of this learn or undo (``BIGRAMLM_CRASH_AT``)."""
        return f"undo:{name}" if self.undoes else name


def crash_point(point: str) -> None:
    """Kill this process here when ``BIGRAMLM_CRASH_AT`` names ``point`` (crash tests only)."""
    if os.environ.get("BIGRAMLM_CRASH_AT") == point:
        os.kill(os.getpid(), signal.SIGKILL)


def _kept(run_dir: Path, sha: str, name: str) -> Path:
    return Path(run_dir) / HISTORY_DIR / f"{sha}.{name}"


@contextlib.contextmanager
def learn_lock(run_dir: Path) -> Iterator[None]:
    """Hold the run's learn lock, or say in one line that another learn holds it."""
    path = Path(run_dir) / LOCK
    try:
        handle = open(path, "a+")
    except OSError as exc:
        raise BigramLMError(f"cannot lock {run_dir} for learning: {exc.strerror}") from None
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise BigramLMError(f"another learn (or undo) is running on {run_dir}; try again when it is done") from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def keep(run_dir: Path, name: str) -> str | None:
    """Keep the current version of ``name`` in the history; its sha256 (None when there is no such file)."""
    current = Path(run_dir) / name
    if not current.is_file():
        return None
    sha = sha256_of(current)
    target = _kept(run_dir, sha, name)
    if not target.is_file():
        target.parent.mkdir(exist_ok=True)
        atomic_write(target, lambda tmp: shutil.copyfile(current, tmp))
    return sha


def stage(run_dir: Path, name: str, write: Callable[[Path, str], None]) -> str:
    """Write a new version of ``name`` into the history (``write(folder, file_name)``); its sha256."""
    folder = Path(run_dir) / HISTORY_DIR
    folder.mkdir(exist_ok=True)
    incoming = f"incoming-{uuid.uuid4().hex}.{name}"
    write(folder, incoming)
    sha = sha256_of(folder / incoming)
    os.replace(folder / incoming, _kept(run_dir, sha, name))
    return sha


def is_kept(run_dir: Path, name: str, sha: str) -> bool:
    return _kept(run_dir, sha, name).is_file()


def install(run_dir: Path, name: str, sha: str | None) -> None:
    """Make the kept version ``sha`` the run's ``name`` (None: remove it): one atomic rename of a full copy."""
    if sha is None:
        (Path(run_dir) / name).unlink(missing_ok=True)
        return
    source = _kept(run_dir, sha, name)
    if not source.is_file():
        raise BigramLMError(f"{run_dir} does not keep version {sha[:12]} of {name}; nothing was changed")
    atomic_write(Path(run_dir) / name, lambda tmp: shutil.copyfile(source, tmp))


def write_journal(run_dir: Path, journal: Journal) -> None:
    entry = {"token": journal.token, "undoes": list(journal.undoes),
             "changes": [{"name": c.name, "before": c.before, "after": c.after} for c in journal.changes]}
    atomic_write_text(Path(run_dir) / JOURNAL, json.dumps(entry))
    crash_point(journal.point("journal"))


def read_journal(run_dir: Path) -> Journal | None:
    path = Path(run_dir) / JOURNAL
    if not path.is_file():
        return None
    try:
        entry = json.loads(path.read_text(encoding="utf-8"))
        changes = [Change(c["name"], c["before"], c["after"]) for c in entry["changes"]]
        # A journal without "undoes" is a learn's (journals of earlier versions are all learns').
        return Journal(str(entry["token"]), changes, tuple(int(i) for i in entry.get("undoes", [])))
    except (ValueError, KeyError, TypeError, AttributeError):
        raise BigramLMError(f"corrupt {path}; restore the run's learned files by hand, then delete it") from None


def clear_journal(run_dir: Path) -> None:
    (Path(run_dir) / JOURNAL).unlink(missing_ok=True)


def install_all(run_dir: Path, journal: Journal) -> None:
    """Give each file its version after; a file that has it already is left alone (so that
    finishing an interrupted undo does again only what was not done)."""
    for change in journal.changes:
        current = Path(run_dir) / change.name
        if (sha256_of(current) if current.is_file() else None) != change.after:
            install(run_dir, change.name, change.after)
        crash_point(journal.point(f"install:{change.name}"))


def recover_learn(run_dir: Path, journal: Journal, recorded: bool) -> str:
    """Finish or roll back the learn a kill interrupted (``recorded``: the store has its
    token); what was done."""
    if recorded:
        clear_journal(run_dir)
        return "finished the interrupted learn (it had been recorded)"
    for change in journal.changes:
        current = Path(run_dir) / change.name
        if not current.is_file() or sha256_of(current) != change.before:
            install(run_dir, change.name, change.before)
    clear_journal(run_dir)
    return "rolled back an interrupted learn: the run's files are as they were before it"


def prune(run_dir: Path, wanted: set[str]) -> None:
    """Drop the kept versions not ``wanted`` (and any half-written incoming file)."""
    folder = Path(run_dir) / HISTORY_DIR
    for path in folder.glob("*") if folder.is_dir() else []:
        if path.name.split(".", 1)[0] not in wanted:
            path.unlink(missing_ok=True)

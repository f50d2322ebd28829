"""The learns not undone, as a chain: which kept versions ``prune`` may drop, and what an
undo puts back.

Each learn that changed a learned file is recorded with each file's sha256 before and
after; the learns not undone (oldest first) form a chain from the trained files (the
versions before the chain's first learn) to the run's files now. ``learn --undo`` takes
back the newest learn of the chain, putting back its "before" versions.

Keeping every version for ever would grow the run by a copy of the weights per learn, so
``learn-history/`` keeps the versions the ``KEEP_LEARNS`` newest learns of the chain
name, plus the trained versions, always. Undo therefore steps back one learn at a time
through at least the last ``KEEP_LEARNS`` learns (and through the chain's first learn,
whose "before" is the trained version); past a learn whose "before" was pruned, an undo
goes back to the trained files and takes back every learn of the chain at once, and says
so: the run's files and the store's marks never disagree, and nothing needs a version
that is gone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

from bigramlm.checkpoint import WEIGHTS
from bigramlm.support.store import LearnRecord
from bigramlm.support.understanding import UNDERSTANDING_FILE

#: The newest learns of the chain whose versions are kept: undo steps back through at
#: least these one learn at a time (a working week of daily learns; the support recipe's GPT,
#: 3.8 M parameters in fp32, makes ~15 MB of weights a version).
KEEP_LEARNS = 5


def changed(learn: LearnRecord) -> dict[str, tuple[str | None, str]]:
    """The learned files a learn changed: name -> (sha256 before, None: no such file; after)."""
    c = learn.changes
    pairs = {WEIGHTS: (c.weights_before, c.weights_after), UNDERSTANDING_FILE: (c.understanding_before, c.understanding_after)}
    return {name: (before, after) for name, (before, after) in pairs.items() if after}


def trained(chain: Sequence[LearnRecord]) -> dict[str, str | None]:
    """Each file the chain changed, at its version before the chain's first learn that changed it."""
    versions: dict[str, str | None] = {}
    for learn in chain:
        for name, (before, _) in changed(learn).items():
            versions.setdefault(name, before)
    return versions


def kept_versions(chain: Sequence[LearnRecord], keep: int) -> set[str]:
    """The versions ``prune`` must keep: those the ``keep`` newest learns name, and the trained ones."""
    newest = {sha for learn in chain[max(0, len(chain) - keep):] for pair in changed(learn).values() for sha in pair if sha}
    return newest | {sha for sha in trained(chain).values() if sha}


@dataclass(frozen=True)
class UndoPlan:
    """What one undo does: the learns it takes back (ids, oldest first), the version each
    file gets (None: the file goes), the version each file should have now, and whether it
    goes back to the trained files past a learn whose versions were pruned."""

    learn_ids: tuple[int, ...]
    restores: dict[str, str | None]
    current: dict[str, str]
    to_trained: bool


def plan_undo(chain: Sequence[LearnRecord], is_kept: Callable[[str, str], bool]) -> UndoPlan | None:
    """The undo of the chain's newest learn (None: no learn to undo). ``is_kept(name, sha)``
    says whether ``learn-history/`` still has that version."""
    if not chain:
        return None
    last = changed(chain[-1])
    step = {name: before for name, (before, _) in last.items()}
    if all(sha is None or is_kept(name, sha) for name, sha in step.items()):
        return UndoPlan((chain[-1].id,), step, {name: after for name, (_, after) in last.items()}, False)
    current: dict[str, str] = {}
    for learn in chain:
        current.update({name: after for name, (_, after) in changed(learn).items()})
    return UndoPlan(tuple(learn.id for learn in chain), trained(chain), current, True)

"""Time for ``--time-limit``: when the process started, and the one clock a run reads.

Every time a run reads (the budget's deadline, the schedule's progress, the timing of
evaluations and steps, the seconds it logs and returns) goes through ``now``
(``time.time`` by default), so tests drive a whole run with a fake clock and check
exactly when it stops, without asserting wall time.
"""

from __future__ import annotations

import atexit
import gc
import math
import os
import time
from typing import Callable

_IMPORTED_AT = time.time()


def process_start_time() -> float:
    """Wall-clock time (as ``time.time()``) at which this process started.

    ``--time-limit`` counts from here, so interpreter start-up and imports are inside
    the budget. Linux knows it (``/proc``); elsewhere the import of this module is the
    closest point we can see.
    """
    try:
        with open("/proc/self/stat", encoding="ascii") as f:
            stat = f.read()
        # Field 22 (starttime, in clock ticks after boot); the command name in field 2
        # may contain spaces, so count from its closing parenthesis.
        started_ticks = int(stat[stat.rindex(")") + 2 :].split()[19])
        with open("/proc/uptime", encoding="ascii") as f:
            uptime = float(f.read().split()[0])
        return time.time() - (uptime - started_ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return _IMPORTED_AT


_EXIT_COLLECTION_SKIPPED = False


def skip_exit_collection() -> None:
    """Make this process's exit cheap: at exit, freeze the objects the cyclic garbage
    collector would otherwise walk once more before they are all freed anyway.

    For a budget that counts the process (``--time-limit``): after importing torch the
    interpreter's exit took 0.7-1.6 s at loads 3-8 on the shared 2-core machine, and
    8.4 s once, under a load that tripled during the run; with this, 0.15-0.56 s. Only
    objects in unreachable cycles miss their finalizers, which Python never promises
    to run at exit. Idempotent.
    """
    global _EXIT_COLLECTION_SKIPPED
    if not _EXIT_COLLECTION_SKIPPED:
        atexit.register(gc.freeze)
        _EXIT_COLLECTION_SKIPPED = True


class TrainingClock:
    """Training progress in [0, 1] by steps, or by time under ``time_limit``.

    Two frames of time, both read through ``now``:

    * the budget's: seconds since ``budget_start`` (the process start under the CLI),
      plus ``spent_seconds`` of earlier processes of a resumed run. The deadline is
      ``time_limit`` in this frame; what the run logs and returns is measured in it.
    * the schedule's: seconds since training started (``started``), plus
      ``done_seconds`` of earlier processes; ``progress`` is the fraction of the
      training window (up to ``end``) they cover.

    ``end`` is ``reserve`` seconds before the deadline: what comes after training (the
    final evaluation, writing the run, the interpreter's exit) is kept out of it.
    """

    def __init__(
        self,
        steps: int,
        time_limit: float | None,
        budget_start: float,
        done_seconds: float = 0.0,
        now: Callable[[], float] = time.time,
        spent_seconds: float | None = None,
    ):
        self.steps = steps
        self.time_limit = time_limit
        self.now = now
        self.budget_start = budget_start
        self.started = now()
        self.done_before = done_seconds  # training seconds of earlier (resumed) processes
        # Budget seconds of earlier processes (start-up included); older checkpoints
        # recorded only the training seconds.
        self.spent_before = done_seconds if spent_seconds is None else spent_seconds
        # A resumed run gets what its earlier processes left of the budget.
        self.deadline = budget_start + time_limit - self.spent_before if time_limit else None
        self.reserve = 0.0
        self.end = self.deadline

    def seconds(self) -> float:
        """Training seconds of the run so far (the schedule's frame)."""
        return self.done_before + self.now() - self.started

    def budget_seconds(self) -> float:
        """Seconds of the budget used so far, by this process and earlier ones."""
        return self.spent_before + self.now() - self.budget_start

    def elapsed(self) -> float:
        """Seconds since ``budget_start``: what this process (or call) has taken."""
        return self.now() - self.budget_start

    def in_budget_frame(self, t: float) -> float:
        """A time of ``now`` as seconds of the budget (what the log shows)."""
        return self.spent_before + t - self.budget_start

    def left(self) -> float:
        """Seconds to the deadline (infinite without a time limit)."""
        return math.inf if self.deadline is None else self.deadline - self.now()

    def set_reserve(self, seconds: float) -> None:
        if self.deadline is not None:
            self.reserve = seconds
            self.end = self.deadline - seconds

    def progress(self, step: int) -> float:
        if self.end is None:
            return step / self.steps
        # Fraction of this run's training window: earlier processes' seconds count as done.
        window = self.end - self.started + self.done_before
        return self.seconds() / window if window > 0 else 1.0

    def out_of_time(self) -> bool:
        return self.end is not None and self.now() >= self.end

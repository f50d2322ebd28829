"""Time for ``--time-limit``: when the process started, and a training clock that can be faked.

``TrainingClock`` reads time through ``now`` (``time.time`` by default), so tests drive
it with a fake clock and check exactly when a run stops, without asserting wall time.
"""

from __future__ import annotations

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


class TrainingClock:
    """Training progress in [0, 1] by steps, or by wall time under ``time_limit``.

    The time budget ends ``reserve`` seconds before the deadline, which is kept for
    the final evaluation and writing the run; ``reserve`` is re-estimated from the
    speed of the periodic evaluations.
    """

    def __init__(
        self,
        steps: int,
        time_limit: float | None,
        budget_start: float,
        done_seconds: float = 0.0,
        now: Callable[[], float] = time.time,
    ):
        self.steps = steps
        self.now = now
        self.started = now()
        self.done_before = done_seconds  # training seconds of earlier (resumed) processes
        # A resumed run gets what its earlier processes left of the budget.
        self.deadline = budget_start + time_limit - done_seconds if time_limit else None
        self.reserve = 0.0
        self.end = self.deadline

    def seconds(self) -> float:
        return self.done_before + self.now() - self.started

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

    def elapsed(self) -> float:
        """Seconds since ``budget_start`` on this clock: what the budget counts."""
        return self.seconds()

    def out_of_time(self) -> bool:
        return self.end is not None and self.now() >= self.end

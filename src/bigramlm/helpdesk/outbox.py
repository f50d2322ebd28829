"""Work done after a webhook has been answered, retried with bounded backoff.

A helpdesk waits only seconds for a webhook's answer and sends it again if it gets none;
so a receiver answers at once and does the work here, in one background thread. A task
that fails (the helpdesk is down, answers 5xx, times out) is tried again after
``BACKOFF`` seconds, doubling up to ``MAX_DELAY_S``, at most ``MAX_ATTEMPTS`` times: the
defaults keep trying for 1 + 2 + 4 + ... + 60 + 60 = 243 s, so a helpdesk down for a
minute loses nothing, and a task never retries forever. Time is read from an injected
``clock`` and waited for with an injected ``wait``, so tests drive retries without sleeping.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

log = logging.getLogger("bigramlm.helpdesk")

BACKOFF_S = 1.0
MAX_DELAY_S = 60.0
MAX_ATTEMPTS = 8


class Retry(Exception):
    """A task's failure worth trying again (the helpdesk unreachable, a 5xx or 429)."""


@dataclass(order=True)
class _Entry:
    due: float
    seq: int
    name: str = field(compare=False)
    task: Callable[[], None] = field(compare=False)
    attempts: int = field(compare=False, default=0)
    on_give_up: Callable[[], None] | None = field(compare=False, default=None)


@dataclass
class OutboxStats:
    done: int = 0
    retried: int = 0
    given_up: int = 0


class Outbox:
    """Tasks run in order of when they are due, in one background thread (``start``), or by
    ``run_due`` from a test that moves its own clock."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, backoff_s: float = BACKOFF_S,
                 max_delay_s: float = MAX_DELAY_S, max_attempts: int = MAX_ATTEMPTS):
        self.clock, self.backoff_s, self.max_delay_s, self.max_attempts = clock, backoff_s, max_delay_s, max_attempts
        self._heap: list[_Entry] = []
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._stop = False
        self._busy = 0
        self.stats = OutboxStats()
        self._thread: threading.Thread | None = None

    def put(self, name: str, task: Callable[[], None], on_give_up: Callable[[], None] | None = None) -> None:
        """Run ``task`` as soon as possible; ``on_give_up`` when its last attempt failed."""
        with self._cond:
            heapq.heappush(self._heap, _Entry(self.clock(), next(self._seq), name, task, 0, on_give_up))
            self._cond.notify_all()

    def delay(self, attempts: int) -> float:
        return min(self.max_delay_s, self.backoff_s * 2 ** (attempts - 1))

    def run_due(self) -> int:
        """Run every task due now; how many ran."""
        ran = 0
        while True:
            with self._cond:
                if not self._heap or self._heap[0].due > self.clock():
                    return ran
                entry = heapq.heappop(self._heap)
                self._busy += 1
            try:
                self._attempt(entry)
            finally:
                with self._cond:
                    self._busy -= 1
                    self._cond.notify_all()
            ran += 1

    def _attempt(self, entry: _Entry) -> None:
        entry.attempts += 1
        try:
            entry.task()
        except Retry as failure:
            if entry.attempts >= self.max_attempts:
                self.stats.given_up += 1
                log.warning("helpdesk: %s failed %d times, given up: %s", entry.name, entry.attempts, failure)
                if entry.on_give_up is not None:
                    entry.on_give_up()
                return
            self.stats.retried += 1
            entry.due = self.clock() + self.delay(entry.attempts)
            log.info("helpdesk: %s failed (%s), again in %.0f s", entry.name, failure, entry.due - self.clock())
            with self._cond:
                heapq.heappush(self._heap, entry)
            return
        except Exception as failure:  # a bug or a refusal: trying again would fail the same way
            self.stats.given_up += 1
            log.error("helpdesk: %s failed: %s", entry.name, failure)
            return
        self.stats.done += 1

    def pending(self) -> int:
        with self._cond:
            return len(self._heap) + self._busy

    def wait_idle(self, timeout: float) -> bool:
        """Wait (bounded) until nothing is queued or running; whether it got there."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._heap or self._busy:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
        return True

    def start(self) -> "Outbox":
        self._thread = threading.Thread(target=self._loop, name="bigramlm-helpdesk", daemon=True)
        self._thread.start()
        return self

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._stop and (not self._heap or self._heap[0].due > self.clock()):
                    self._cond.wait(None if not self._heap else max(0.0, self._heap[0].due - self.clock()))
                if self._stop:
                    return
            self.run_due()

    def stop(self) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=10)


__all__ = ["Outbox", "OutboxStats", "Retry"]

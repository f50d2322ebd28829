"""Generation slots: a small thread pool whose size is the cap on concurrent generations.

A request that finds every slot taken gets ``Busy`` (the app answers 503 with
``Retry-After``) at once: nothing waits in a queue. Each generation is a ``Job`` with a
deadline that the worker checks between tokens, so a timed-out request frees its slot
promptly.
"""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, AsyncIterator, Awaitable, Callable, Iterable

from bigramlm.errors import BigramLMError


class Busy(Exception):
    """Every generation slot is taken."""


class GenerationTimeout(Exception):
    """A generation ran past its deadline."""


class Job:
    """One generation: a cancel flag and a deadline that the worker checks between tokens."""

    def __init__(self, timeout_s: float):
        self.cancelled = threading.Event()
        self.deadline = time.monotonic() + timeout_s

    def check(self) -> None:
        if self.cancelled.is_set():
            raise GenerationTimeout("cancelled")
        if time.monotonic() > self.deadline:
            raise GenerationTimeout("deadline")


_END = object()


class GenerationSlots:
    """At most ``size`` generations at once, each in a worker thread.

    The slot is taken before the work is submitted and given back by the worker when
    it really stops, so the pool never holds a queue and the cap counts threads that
    are still busy after their request has gone (a timed-out one finishing its token).
    ``produce(job)`` (for ``run`` and ``stream``) must call ``job.check()`` between tokens.
    """

    def __init__(self, size: int, timeout_s: float):
        if size < 1:
            raise BigramLMError(f"max_concurrent must be at least 1 (got {size})", param="max_concurrent")
        self.size = size
        self.timeout_s = timeout_s
        self._free = threading.BoundedSemaphore(size)
        self._lock = threading.Lock()
        self.running = 0
        self.rejected = 0
        self.executor = ThreadPoolExecutor(max_workers=size, thread_name_prefix="bigramlm-gen")

    def acquire(self) -> None:
        if not self._free.acquire(blocking=False):
            with self._lock:
                self.rejected += 1
            raise Busy()
        with self._lock:
            self.running += 1

    def release(self) -> None:
        with self._lock:
            self.running -= 1
        self._free.release()

    def shutdown(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)

    async def run(self, produce: Callable[[Job], Any], gone: Callable[[], Awaitable[bool]] | None = None) -> Any:
        """``produce(job)``'s result, computed in a worker thread under the deadline. ``gone``
        (the request's ``is_disconnected``) is asked four times a second: a client that hung
        up cancels its generation, so its slot is free at the next token, not at the deadline."""
        self.acquire()
        job = Job(self.timeout_s)

        def work() -> Any:
            try:
                return produce(job)
            finally:
                self.release()

        try:
            future = asyncio.get_running_loop().run_in_executor(self.executor, work)
        except RuntimeError:  # executor shut down
            self.release()
            raise
        try:
            # A little grace past the deadline: normally the worker raises GenerationTimeout itself.
            return await asyncio.wait_for(self._watch(future, job, gone), self.timeout_s + 1.0)
        except asyncio.TimeoutError:
            job.cancelled.set()
            raise GenerationTimeout("deadline") from None
        except asyncio.CancelledError:
            job.cancelled.set()
            raise

    @staticmethod
    async def _watch(future: "asyncio.Future[Any]", job: Job, gone: Callable[[], Awaitable[bool]] | None) -> Any:
        while gone is not None and not future.done():
            await asyncio.wait({future}, timeout=0.25)
            if not future.done() and await gone():
                job.cancelled.set()
        return await asyncio.shield(future)

    def stream(self, produce: Callable[[Job], Iterable[Any]], max_batch: int = 512) -> AsyncIterator[list[Any]]:
        """Take a slot now (so ``Busy`` becomes a 503 before any byte is sent) and stream ``produce``'s items.

        Items come in batches of whatever the worker has produced so far, so a fast
        model costs a few network writes rather than one per token.
        """
        self.acquire()
        job = Job(self.timeout_s)
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue = asyncio.Queue()

        def put(item: Any) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, item)

        def work() -> None:
            try:
                for item in produce(job):
                    job.check()
                    put(item)
            except BaseException as exc:  # handed to the event loop, which reports it
                put(exc)
            finally:
                self.release()
                put(_END)

        try:
            self.executor.submit(work)
        except RuntimeError:
            self.release()
            raise
        return _batches(queue, job, max_batch)


async def _batches(queue: asyncio.Queue, job: Job, max_batch: int) -> AsyncIterator[list[Any]]:
    try:
        while True:
            pending = [await queue.get()]
            while len(pending) < max_batch and not queue.empty():
                pending.append(queue.get_nowait())
            batch: list[Any] = []
            for item in pending:
                if item is _END or isinstance(item, BaseException):
                    if batch:
                        yield batch
                    if isinstance(item, BaseException):
                        raise item
                    return
                batch.append(item)
            yield batch
    finally:
        job.cancelled.set()  # the client went away or we are done: stop the worker

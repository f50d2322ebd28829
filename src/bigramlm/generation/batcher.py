"""Concurrent requests share their decode: continuous batching for the desk.

On the desk every agent's request is a decode of a few rows (the candidates of one
message). Decoded one request per thread, eight requests take eight times the passes,
and the threads fight over the same cores; decoded together, their rows share every
pass, and a pass of 24 rows costs about 3x one of 3 rows, not 8x (benchmarks/speculation.py,
``pass_ms``). With 8 closed-loop agents the desk answered at p50 2.64 s shared against
4.24 s with ``serve --no-batch`` (benchmarks/desk_latency.py, 2 cores).

``DecodeQueue.stream(job)`` hands a request's ``(row, piece)`` pieces out as they come,
like ``engine.stream``. One worker thread runs one ``batch.DecodeBatch`` at a time: a
request that arrives while it is idle starts at once; one that arrives while a decode
runs joins it at the next pass (``DecodeBatch.admit``: its prompt runs on its own and its
KV cache joins the batch's), where its sampling settings are the batch's and the rows
fit in ``rows_per_batch``; otherwise it waits for the batch to end. A request's stream
ends as soon as its own rows have finished, and a request that goes away (its ``check``
raised, or its consumer stopped) takes its rows out at the next pass.

Each row draws with its own request's seed and its index within the request, and ends
within its own budget, so a request decodes the same text whether it shared the batch or
not (a test checks it). The worker thread ends after ``idle_s`` without work and starts
again with the next request (a reloaded desk leaves no thread behind).
"""

from __future__ import annotations

import queue
import threading
from dataclasses import dataclass, fields, replace
from typing import Callable, Iterator, Sequence

import torch

from bigramlm.generation.batch import Decode, DecodeBatch, NewRows, Sampling, prompt_contexts
from bigramlm.generation.checks import check_decode, decode_seed
from bigramlm.generation.speculation import DecodeStats, Speculation
from bigramlm.generation.text import TextRow, Watch
from bigramlm.models.base import LanguageModel
from bigramlm.tokenization import Tokenizer

#: Seconds a waiting consumer sleeps between its ``check``s (a deadline or a gone client
#: is noticed within this, as between two steps of a decode of its own).
POLL_S = 0.05


@dataclass(frozen=True)
class DecodeJob:
    """One request's decode: the arguments of ``engine.stream`` for its prompts."""

    prompts: Sequence[Sequence[int]]
    max_new_tokens: int
    sampling: Sampling = Sampling()
    seed: int | None = None
    stop: Sequence[str] = ()
    greedy: Sequence[bool] | None = None
    sources: Sequence[Sequence[Sequence[int]]] | None = None
    #: Per prompt, what may end its row early (``text.Watch``; each row's own, as it keeps state).
    watches: Sequence[Watch] | None = None


_END = object()


class _Ticket:
    """A submitted job: its rows, its seed, and the queue its pieces go out through."""

    def __init__(self, job: DecodeJob, tokenizer: Tokenizer):
        self.job = job
        self.seed = decode_seed(job.seed)
        self.contexts = prompt_contexts(job.prompts, tokenizer.start_id)
        self.rows = [TextRow(tokenizer, job.stop, frozenset(), streaming=True, watch=job.watches[i] if job.watches else None)
                     for i in range(len(self.contexts))]
        self.out: queue.SimpleQueue = queue.SimpleQueue()
        self.gone = threading.Event()
        self.closed = False
        #: The batch's figures when it joined, and the most requests that shared its passes.
        self.start = DecodeStats()
        self.peak = 1
        self.stats = DecodeStats()

    def new_rows(self, first_id: int) -> NewRows:
        job, n = self.job, len(self.rows)
        return NewRows(list(range(first_id, first_id + n)), list(self.contexts), list(self.rows),
                       [bool(g) for g in (job.greedy or [False] * n)], list(job.sources or [()] * n),
                       [self.seed] * n, list(range(n)), [job.max_new_tokens] * n)

    def hand_out(self, stats: DecodeStats, requests: int) -> None:
        """Send the pieces its rows gathered; close it once every row has finished."""
        self.peak = max(self.peak, requests)
        pieces = [(i, row.take()) for i, row in enumerate(self.rows) if row.pending]
        if pieces:
            self.out.put(pieces)
        if all(row.finished for row in self.rows):
            self.stats = _since(stats, self.start, self.peak)
            self.closed = True
            self.out.put(_END)


def _since(now: DecodeStats, start: DecodeStats, requests: int) -> DecodeStats:
    """What a shared decode did while one request was in it."""
    counts = {f.name: getattr(now, f.name) - getattr(start, f.name) for f in fields(DecodeStats) if f.name != "requests"}
    return DecodeStats(**counts, requests=requests)


class DecodeQueue:
    """One model's decodes, shared by the requests that run at the same time."""

    def __init__(self, model: LanguageModel, tokenizer: Tokenizer, speculate: Speculation | None = Speculation(),
                 rows_per_batch: int = 192, idle_s: float = 2.0):
        check_decode(1, rows_per_batch)
        self.model, self.tokenizer, self.speculate = model, tokenizer, speculate
        self.rows_per_batch, self.idle_s = rows_per_batch, idle_s
        self.block = None if model.markov else model.get_block_size()
        self._waiting: list[_Ticket] = []
        self._cond = threading.Condition()
        self._worker: threading.Thread | None = None
        #: Batches run, and requests that joined one already running, for the benchmark and the tests.
        self.batches = 0
        self.joined = 0
        #: Requests whose stream is open (waiting, decoding, or not yet read to its end).
        self.requests = 0

    def stream(self, job: DecodeJob, check: Callable[[], None] | None = None,
               stats: DecodeStats | None = None) -> Iterator[tuple[int, str]]:
        """``(row, piece)`` as the job's rows grow (``engine.stream``'s pieces); ``check`` is
        called while it waits and between pieces, and what it raises ends the request.
        ``stats`` is filled in with what the shared decode did while the request was in it
        (``requests``: the most requests that shared a pass with it)."""
        check_decode(job.max_new_tokens, 1)
        ticket = _Ticket(job, self.tokenizer)
        with self._cond:
            self.requests += 1
        self._submit(ticket)
        try:
            while True:
                try:
                    item = ticket.out.get(timeout=POLL_S)
                except queue.Empty:
                    if check is not None:
                        check()
                    continue
                if item is _END:
                    if stats is not None:
                        vars(stats).update(vars(ticket.stats))
                    return
                if isinstance(item, BaseException):
                    raise item
                yield from item
                if check is not None:
                    check()
        finally:
            ticket.gone.set()  # a request that stops early leaves the batch
            with self._cond:
                self.requests -= 1

    def _submit(self, ticket: _Ticket) -> None:
        with self._cond:
            self._waiting.append(ticket)
            if self._worker is None:
                self._worker = threading.Thread(target=self._work, name="bigramlm-decode", daemon=True)
                self._worker.start()
            self._cond.notify()

    def _work(self) -> None:
        try:
            while True:
                with self._cond:
                    while not self._waiting:
                        if not self._cond.wait(self.idle_s) and not self._waiting:
                            return
                    first = self._take(None, self.rows_per_batch)
                if first:
                    self._run(first)
        finally:  # however it ends, the next request starts a worker again
            with self._cond:
                self._worker = None
                if self._waiting:  # a request came as this one was ending: it must not wait for nothing
                    self._worker = threading.Thread(target=self._work, name="bigramlm-decode", daemon=True)
                    self._worker.start()

    def _take(self, sampling: Sampling | None, room: int) -> list[_Ticket]:
        """Waiting jobs (oldest first) that can decode together: the first one's sampling,
        or ``sampling`` for a running batch, and at most ``room`` rows (the first job of a
        new batch always). A running batch takes only prompts that leave room in the block."""
        self._waiting = [t for t in self._waiting if not t.gone.is_set()]
        group: list[_Ticket] = []
        for ticket in self._waiting:
            if sampling is None and not group:
                group.append(ticket)
                sampling, room = ticket.job.sampling, room - len(ticket.rows)
            elif ticket.job.sampling == sampling and len(ticket.rows) <= room and self._joins(ticket):
                group.append(ticket)
                room -= len(ticket.rows)
        self._waiting = [t for t in self._waiting if t not in group]
        return group

    def _joins(self, ticket: _Ticket) -> bool:
        """Whether a prompt can join a batch whose cache is under way (it must leave the block room to grow)."""
        return self.block is None or max(len(c) for c in ticket.contexts) < self.block - 1

    @torch.no_grad()
    def _run(self, first: list[_Ticket]) -> None:
        """One batch: the first jobs, then every job that joins before its rows have all finished."""
        model, stats = self.model, DecodeStats()
        owners: list[_Ticket] = []
        job = Decode(model, max(t.job.max_new_tokens for t in first), first[0].job.sampling, 0, True, None, True,
                     self.speculate, stats, dropped=lambda i: owners[i].gone.is_set())
        open_: list[_Ticket] = []
        self.batches += 1
        was_training = model.training
        model.eval()
        try:
            batch = DecodeBatch(job, self._rows(first, owners, open_, stats))
            for _ in batch.run():
                for ticket in open_:
                    ticket.hand_out(stats, len(open_))
                open_ = [t for t in open_ if not t.closed]
                if batch.live:  # still decoding: jobs that arrived may join
                    with self._cond:
                        joining = self._take(job.sampling, self.rows_per_batch - batch.live)
                    if joining:
                        self.joined += len(joining)
                        batch.admit(self._rows(joining, owners, open_, stats))
        except BaseException as exc:  # every request of the batch hears of it
            for ticket in dict.fromkeys([*first, *open_]):
                if not ticket.closed:
                    ticket.closed = True
                    ticket.out.put(exc)
        finally:
            model.train(was_training)

    @staticmethod
    def _rows(tickets: list[_Ticket], owners: list[_Ticket], open_: list[_Ticket], stats: DecodeStats) -> NewRows:
        """The tickets' rows as one ``NewRows``, numbered after the batch's rows so far."""
        parts = []
        for ticket in tickets:
            parts.append(ticket.new_rows(len(owners)))
            owners.extend([ticket] * len(ticket.rows))
            ticket.start = replace(stats)
            open_.append(ticket)
        return NewRows(*(sum((getattr(p, f.name) for p in parts), []) for f in fields(NewRows)))


__all__ = ["DecodeJob", "DecodeQueue", "POLL_S"]

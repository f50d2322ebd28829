"""The desk: what every route shares (the loaded run and assistant, the case store, the slots).

``learn`` replaces the run's learned files (the weights, the understanding) while the
server runs. A watcher thread, started with the app and stopped with it, looks at their
stamps once a second; when one changed and no learn is half-way (its journal is gone,
``support.history``), the watcher loads the run again and swaps the (assistant, run)
pair in one assignment. A request reads ``Desk.loaded`` once, so it keeps the pair it started with.
Weights that do not load (not finite, corrupt, half-written by a tool that does not write
atomically) are refused: the old pair keeps serving and ``reload_error`` says why, until
the next change of the file loads.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from bigramlm.checkpoint import Run
from bigramlm.errors import BigramLMError
from bigramlm.serve.limits import ServerLimits
from bigramlm.serve.slots import GenerationSlots
from bigramlm.support.store import CaseStore

if TYPE_CHECKING:  # imported when a run is loaded: the assistant pulls in torch and scikit-learn
    from bigramlm.support.assistant import Assistant

log = logging.getLogger("bigramlm.server")

Stamp = tuple[tuple[int, int, int] | None, ...]


class Desk:
    """The (assistant, run) pair being served, the store, the generation slots, the reload watcher."""

    #: Seconds between looks at the weights file (docs/reliability.md promises a reload within a second).
    RELOAD_POLL_S = 1.0

    def __init__(self, run_dir: Path, brand_path: Path | None, limits: ServerLimits,
                 assistant: "Assistant | None" = None, run: Run | None = None, store: str | None = None):
        self.run_dir = Path(run_dir)
        self.brand_path = brand_path
        self.limits = limits
        # Objects handed in by the caller are theirs to manage: no reloading those.
        self.reloadable = assistant is None and run is None
        self._stamp = self._weights_stamp()
        self.assistant_error: str | None = None
        ours = assistant is None
        if ours:
            assistant, self.assistant_error = load_assistant(self.run_dir, brand_path, self.limits.speculate, self.limits.batch)
        if run is None:
            run = assistant.run if assistant is not None else load_plain_run(self.run_dir)
        configure_threads(run, self.limits.threads)
        # One store object per process, shared by the routes and the assistant's index.
        # ``store``: the run's SQLite file by default, or the team's database (``--store``).
        self.store: CaseStore = (assistant.store if assistant is not None else None) or CaseStore.for_run(self.run_dir, store)
        self.slots = GenerationSlots(limits.max_concurrent, limits.timeout_s)  # before the reader, which yields to them
        #: Set once the store's texts (the words the draft checks read) are read; see ``_read_store_texts``.
        self.store_texts_read = threading.Event()
        if ours and assistant is not None:
            assistant.store = self.store
            assistant.warm()  # before the desk listens: its first request is answered in its normal time
            threading.Thread(target=self._read_store_texts, args=(assistant,), name="bigramlm-store-texts",
                             daemon=True).start()
        else:  # an assistant handed in is the caller's to prepare
            self.store_texts_read.set()
        self.loaded: tuple["Assistant | None", Run] = (assistant, run)
        self.model_id = self.run_dir.resolve().name or "bigramlm"
        self.started = time.time()
        self.reloads = 0
        self.reload_error: str | None = None
        self._stop = threading.Event()
        self._watcher: threading.Thread | None = None

    def _read_store_texts(self, assistant: "Assistant") -> None:
        """Read the store's texts behind the serving desk. Suggestions need none of them to be
        answered in their normal time (similar cases are searched in the store itself), only
        their words, which drafts are checked against: until they are read, a draft with a
        word found only in the store's cases is refused and the suggestions come from the
        cases. Only the newest cases' texts are read (``store.cases.TEXT_WINDOW``). Read
        before serving, 1,000,000 cases held the desk's start at 10.6 s; read here, no
        request waits for it
        (``tests/test_server_case_search.py``; ``benchmarks/store_scale.py`` times the start)."""
        try:
            started = time.perf_counter()
            # Paced: the requests come first.
            read = assistant.refresh_cases(pause=Pace(serving=lambda: self.slots.running > 0))
            log.info("read the texts of %d stored cases in %.1f s", read, time.perf_counter() - started)
        except Exception as exc:  # the store down at start: requests read what they can later
            log.warning("the store's texts were not read at start: %s", _first_line(exc))
        finally:
            self.store_texts_read.set()

    @property
    def assistant(self) -> "Assistant | None":
        return self.loaded[0]

    @property
    def run(self) -> Run:
        return self.loaded[1]

    # --- reloading -----------------------------------------------------------------------

    def start_watching(self) -> None:
        """Start the reload watcher (once; never for objects the caller handed in)."""
        if not self.reloadable or self._watcher is not None:
            return
        self._watcher = threading.Thread(target=self._watch, name="bigramlm-reload", daemon=True)
        self._watcher.start()

    def _watch(self) -> None:
        while not self._stop.wait(self.RELOAD_POLL_S):
            self.reload_if_changed()

    def reload_if_changed(self) -> bool:
        """Load the run again if its weights file changed since the last look; True if it was swapped in."""
        stamp = self._weights_stamp()
        if stamp is None or stamp == self._stamp:
            return False
        self._stamp = stamp  # a refused file is not retried until it changes again
        try:
            assistant, run = self._load_pair()
        except Exception as exc:  # keep serving the old pair
            self.reload_error = _first_line(exc)
            log.warning("kept the loaded model of %s: %s", self.model_id, self.reload_error)
            return False
        self.loaded = (assistant, run)  # one assignment: a request sees the old pair or the new one
        self.reload_error = None
        self.reloads += 1
        log.info("reloaded %s after its weights changed", self.model_id)
        return True

    def _load_pair(self) -> tuple["Assistant | None", Run]:
        if self.assistant is None:  # a plain run stays plain
            run = load_plain_run(self.run_dir)
            assistant = None
        else:
            assistant, error = load_assistant(self.run_dir, self.brand_path, self.limits.speculate, self.limits.batch)
            if assistant is None:  # never trade the assistant for a plain run
                raise BigramLMError(error or "the assistant did not load")
            assistant.store = self.store
            assistant.refresh_cases()  # before the swap, as at start
            run = assistant.run
        configure_threads(run, self.limits.threads)
        return assistant, run

    def _weights_stamp(self) -> Stamp | None:
        """The learned files' stamps; None while a learn is installing them (or the weights are missing)."""
        from bigramlm.support.history import JOURNAL, LEARNED_FILES

        if (self.run_dir / JOURNAL).exists():
            return None
        stamps: list[tuple[int, int, int] | None] = []
        for name in LEARNED_FILES:
            try:
                st = (self.run_dir / name).stat()
                stamps.append((st.st_mtime_ns, st.st_size, st.st_ino))
            except OSError:
                stamps.append(None)
        return tuple(stamps) if stamps[0] is not None else None

    def close(self) -> None:
        self._stop.set()
        if self._watcher is not None:
            self._watcher.join(timeout=30)
        self.slots.shutdown()
        self.store.close()


def load_assistant(run_dir: Path, brand_path: Path | None, speculate: bool = True,
                   share_decodes: bool = True) -> tuple["Assistant | None", str | None]:
    """The support assistant for an instruction run (without a store: the desk gives it its own),
    decoding concurrent requests together unless ``share_decodes`` is off; for any other
    run, None and why.

    Loading refuses weights that are not finite (``load_run``), like every other problem,
    with a ``BigramLMError`` whose message becomes the "why".
    """
    try:
        from bigramlm.support.assistant import Assistant
        from bigramlm.support.brand import BrandProfile
    except ImportError as exc:
        return None, f"the support assistant is not available in this install ({exc})"
    # Parsed once, here: a broken brand file is an error at start, not "no assistant".
    brand = BrandProfile.load(brand_path) if brand_path is not None else None
    try:
        # use_store=False: the desk attaches its one store, rather than a new connection per reload.
        return Assistant.load(run_dir, brand=brand, use_store=False, speculate=speculate,
                              share_decodes=share_decodes), None
    except BigramLMError as exc:
        return None, str(exc)


def load_plain_run(run_dir: Path) -> Run:
    from bigramlm.checkpoint import load_run

    return load_run(run_dir)


def configure_threads(run: Run, threads: int | None = None) -> None:
    from bigramlm.training.threads import configure_threads as configure

    # Small models: one intra-op thread each, or the worker threads fight over
    # OpenMP joins (measured: 2x slower suggestions with torch's default of 2).
    configure(run.model, threads)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class Pace:
    """A background task's pauses: called between small pieces of its work, it sleeps
    ``idle_s`` once ``busy_s`` of work has passed since the last sleep, and while ``serving()``
    says requests are in hand, up to ``wait_s`` in all.

    A desk reads its store's texts in a thread beside the requests it serves, and pure
    Python work holds the interpreter lock: a request's decode, which takes it back between
    torch operations, waited up to the switch interval (5 ms) each time. Reading the texts
    of the newest 50,000 of 1,000,000 synthetic cases (2.0 s of work) held the first
    suggestion asked meanwhile at 2.9 s unpaced, 2.1 s paced 4 ms on / 4 ms off, and 1.3 s
    paced 2 / 8 ms (a recipe GPT on 2 cores; the same message 1.0 s once the read was done).
    Waiting too while requests are in hand, the slowest of 123 suggestions asked back to back
    during the read took 1.77 s, against 2.03 s (benchmarks/store_scale.py).
    """

    def __init__(self, busy_s: float = 0.002, idle_s: float = 0.008, serving: Callable[[], bool] | None = None,
                 wait_s: float = 0.1):
        self.busy_s, self.idle_s, self.serving, self.wait_s = busy_s, idle_s, serving, wait_s
        self._since = time.perf_counter()

    def __call__(self) -> None:
        if time.perf_counter() - self._since < self.busy_s:
            return
        time.sleep(self.idle_s)
        waited = self.idle_s
        while self.serving is not None and waited < self.wait_s and self.serving():
            time.sleep(self.idle_s)  # a request in hand: up to ``wait_s`` more, so the work still ends
            waited += self.idle_s
        self._since = time.perf_counter()

"""The support-agent assistant: understand a customer message, suggest replies, show similar cases.

``Assistant.load(run_dir)`` needs nothing but an instruction run's folder: the run's
``config.json`` records the block format, and the files training saved beside it
(``bigramlm.data.run_files``) hold the train rows (the retrieval base), the intent
classes and the known placeholder names. The dataset is not read; a run written before
those files existed rebuilds them from its dataset once, and saves them.

Understanding
    ``reading.MessageReader`` reads each message: a run of ``--recipe support`` has a
    calibrated classifier over sentence embeddings (``understanding.Understander``), which
    also says when no intent fits (``support.scope``); a labelled run without one asks the
    language model itself (``understanding.LanguageModelIntents``); a run trained without
    labels falls back to a similarity-weighted vote of the nearest training cases.

One request, done once
    The message is normalised once (NFKC, then every character outside the vocabulary
    becomes the tokenizer's replacement character; ``replaced_characters`` counts them),
    retrieved once (the similar cases shown and the evidence that votes in the ranking
    come from one search) and its prompt encoded once. ``suggest``, ``suggest_stream`` and
    ``suggest_many`` are the same request, its settings one ``SuggestSettings``
    (``support.settings``): plain prompts handed to the one decode entry
    (``generation.entry.Decodes``), then the same ranking, the drafts' chrF computed once.

Thread safety
    Generation and scoring only read the model (always in eval mode) and allocate their
    own tensors; the case index swaps its state atomically. One ``Assistant`` can serve
    several threads at once; with ``share_decodes`` (the desk) the entry runs their decodes
    together in one worker thread (``generation.batcher``).
"""

from __future__ import annotations

import os
import threading
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from bigramlm.checkpoint import Run, load_run
from bigramlm.data.formats import STOP_STRINGS
from bigramlm.data.instructions import load_run_files
from bigramlm.data.run_files import InstructionRunFiles
from bigramlm.errors import BigramLMError
from bigramlm.generation.entry import DecodeJob, Decodes, DecodeStats, Sampling, Speculation
from bigramlm.support.brand import BrandProfile
from bigramlm.support.choice import agreement_of, check_drafts, choose
from bigramlm.support.edits import Rule
from bigramlm.support.length import shorten_choices
from bigramlm.support.message_values import message_values
from bigramlm.support.ranking import (
    DISMISSED_LIMIT,
    NOT_THE_REPLY,
    dismissal_penalty,
    penalized_scores,
)
from bigramlm.support.readability import RunText
from bigramlm.support.reading import MessageReader, ReadMessage, fit_baseline
from bigramlm.support.results import (
    AssistResult,
    DoneEvent,
    Suggestion,
    SuggestEvent,
    TokenEvent,
    Understanding,
    UnderstandingEvent,
)
from bigramlm.support.retrieval import INDEX_FILE, CaseIndex, CaseSearch
from bigramlm.support.rulebook import RuleBook, current_rules, known_to_run
from bigramlm.support.settings import SIMILAR_CASES, SuggestSettings
from bigramlm.support.spelling import dictionary
from bigramlm.support.store import CaseStore, store_path, store_target
from bigramlm.support.understanding import (
    UNDERSTANDING_FILE,
    LanguageModelIntents,
    Understander,
)

#: Where the brand's holding reply comes from (a suggestion's ``source``), offered when no intent fits.
HOLDING = "brand"
#: 192 rows a decode batch: 120 test messages x 3 candidates with the recipe's GPT decoded
#: in 31.5 s, against 34.7 s at 96 rows (the KV cache of 192 rows is 380 MB).
ROWS_PER_BATCH = 192


def require_instruction_run(run: Run) -> dict[str, Any]:
    spec = run.config.data
    if spec.get("kind") != "instructions":
        raise BigramLMError(
            f"{run.path} was not trained on an instruction dataset; train one with --data bitext or --data FILE.csv"
        )
    if "reference" in (spec.get("format") or {}):  # its prompts read a reply no prompt gives it any more
        raise BigramLMError(f"{run.path} was trained with --grounded, which is no more (it lost to the plain recipe "
                            "on the measured budget); train it again without it")
    return spec


class Assistant:
    """A loaded run plus its brand profile, retrieval index and case store.

    ``run`` is an instruction run (``Assistant.load`` checks it, ``require_instruction_run``)
    and ``data`` its saved rows (``data.instructions.load_run_files``)."""

    def __init__(self, run: Run, data: InstructionRunFiles, brand: BrandProfile | None = None,
                 store: CaseStore | None = None, baseline: bool = False, speculate: bool = True,
                 share_decodes: bool = False):
        self.run = run
        self.model = run.model
        self.tokenizer = run.tokenizer
        self.spec = run.config.data
        self.data = data
        self.labels = bool((self.spec.get("format") or {}).get("labels"))
        #: The (intent, category) pairs the run was trained on.
        self.label_set: list[tuple[str, str | None]] = [(str(i), c if c else None) for i, c in data.label_set]
        self.known_placeholders = set(data.known_placeholders)
        brand = brand if brand is not None else BrandProfile()
        brand.known = self.known_placeholders | set(brand.values)
        self.brand = brand
        self.store = store
        #: The train rows in memory, the team's cases searched in the store (``support.retrieval``).
        self.index = CaseSearch(CaseIndex.cached(data.train_rows, Path(run.path) / INDEX_FILE), lambda: self.store)
        self._store_seen = 0
        self._refresh_lock = threading.Lock()
        #: The run's words and a word model of its replies, grown with the resolved cases (``readability``).
        self.reading = RunText.of(data.train_rows, brand.values.values())
        #: The team's edit rules learned from the store, read as accepts come (``support.rulebook``).
        self.rulebook = RuleBook(known_to_run(data))
        #: With ``share_decodes`` (the desk), the requests that run at the same time decode
        #: together; otherwise each decodes in its caller's thread (``generation.entry``).
        self.decodes = Decodes(self.model, self.tokenizer, Speculation() if speculate else None, ROWS_PER_BATCH,
                               share=share_decodes)
        loaded = Understander.load(Path(run.path))
        lm_intents = LanguageModelIntents(self.model, self.tokenizer, self.label_set) if self.labels else None
        #: Understanding each message and finding its evidence (``support.reading``).
        self.reader = MessageReader(self.tokenizer, self.index, self.label_set, loaded[0] if loaded else None, lm_intents,
                                    self.labels)
        self.reader.baseline = fit_baseline(data) if baseline else None
        if loaded is None and (run.config.extras.get("recipe") or {}).get("understanding"):
            self.reader.degraded = (f"{UNDERSTANDING_FILE} is missing from {run.path}: intents come from the language "
                                    "model alone and are marked unsure; retrain the recipe or restore the file")
        self.refresh_cases()

    @classmethod
    def load(cls, run_dir: str | os.PathLike[str], brand: str | os.PathLike[str] | BrandProfile | None = None,
             data: str | None = None, device: str = "cpu", use_store: bool = True, baseline: bool = False,
             speculate: bool = True, share_decodes: bool = False, store: str | None = None) -> "Assistant":
        """Load a run directory (and an optional brand profile: its TOML file, or the profile
        a caller parsed already) as an assistant.

        ``data`` says where the run's dataset is (its sha256 must match); it is read only
        for a run written before the run kept its rows. ``baseline`` also fits the
        TF-IDF + logistic-regression intent classifier, whose answer then appears as
        ``baseline`` in every result (seconds to fit). ``speculate=False`` decodes one token
        per pass (``--no-speculate``); ``share_decodes`` decodes concurrent requests together
        (the desk; ``serve --no-batch`` turns it off). ``store``: the case store
        (``support.store.store_target``; by default the run's SQLite file).
        """
        run = load_run(run_dir, device=device)
        run_files = load_run_files(run.path, require_instruction_run(run), data)  # the run's type, checked once
        profile = brand if isinstance(brand, BrandProfile) or brand is None else BrandProfile.load(brand)
        return cls(run, run_files, profile, _store(run.path, store) if use_store else None, baseline=baseline, speculate=speculate,
                   share_decodes=share_decodes)

    def refresh_cases(self, wait: bool = True, pause: Callable[[], None] | None = None) -> int:
        """Read the store's cases added since the last refresh into the words and the word
        model that drafts are checked against (``readability``); returns how many. Their
        search needs nothing here: it runs in the store (``support.retrieval.CaseSearch``).
        ``wait=False`` (a request) reads nothing while another thread is reading: a desk's
        start reads a large store in the background (``serve.desk``), and a request then goes
        on with the words read so far instead of waiting seconds for the rest. ``pause``:
        called between small chunks of the work (``serve.desk.Pace``)."""
        if self.store is None or not self._refresh_lock.acquire(blocking=wait):
            return 0
        try:
            # The texts, replies counted once each: 100,000 cases of 6,314 distinct replies took
            # 3.9 s to list and 29.7 s to add one by one (issue 30), a desk's whole start.
            new = self.store.case_texts(self._store_seen)
            self.reading.add_texts(new.messages, new.replies, pause)
            self._store_seen = new.last_id
            return sum(n for _, n in new.replies)
        finally:
            self._refresh_lock.release()

    def warm(self) -> None:
        """Do now what the first request would: load the spelling dictionary and read the edit
        rules learned from the store's accepts. A desk warms before it listens: on a store of
        1,000,000 synthetic cases its first suggestion took 1.7 s against 0.8 s for the next
        (the rules' first read of the accepts 0.52 s, the dictionary 0.3 s)."""
        understander = self.understander
        if understander is not None and understander.speller is not None:
            dictionary()
        self.rules()

    # --- understanding ---------------------------------------------------------------------

    def normalize(self, message: str) -> tuple[str, int]:
        """The documented policy for unseen characters: NFKC, then replacement."""
        return self.reader.normalize(message)

    def understand(self, message: str, k_similar: int = SIMILAR_CASES) -> Understanding:
        """Normalise the message, rank the intents, find similar cases (and the baseline's answer)."""
        return self.understand_many([message], k_similar)[0]

    def understand_many(self, messages: list[str], k_similar: int = SIMILAR_CASES) -> list[Understanding]:
        return [r.understanding for r in self.reader.read(messages, k_similar, evidence=0)]

    def known_intents(self) -> dict[str, str | None]:
        """Every intent the assistant can answer for, and its category."""
        return self.reader.known_intents()

    @property
    def speculation(self) -> Speculation | None:
        """Speculative decoding, drafting from the evidence replies (``generation.speculation``);
        None decodes one token per pass (``--no-speculate``). Greedy replies are the same either way."""
        return self.decodes.speculate

    @speculation.setter
    def speculation(self, value: Speculation | None) -> None:
        self.decodes.speculate = value

    @property
    def understander(self) -> Understander | None:
        """The run's calibrated classifier (the reader's, ``support.reading``)."""
        return self.reader.understander

    @understander.setter
    def understander(self, value: Understander | None) -> None:
        self.reader.understander = value

    @property
    def understanding_method(self) -> str:
        """Which understanding answers: the calibrated classifier, the language model, or the nearest cases."""
        return self.reader.understanding_method

    @property
    def degraded(self) -> str | None:
        """Why the understanding is a fallback, when it is (the reader's, ``support.reading``)."""
        return self.reader.degraded

    # --- suggest -------------------------------------------------------------------------

    def suggest_stream(self, message: str, settings: SuggestSettings = SuggestSettings(), *,
                       k_similar: int = SIMILAR_CASES, check: Callable[[], None] | None = None,
                       intent: str | None = None, stop: Sequence[str] = ()) -> Iterator[SuggestEvent]:
        """Yield the understanding, then ``TokenEvent``s as the drafts grow, then ``DoneEvent``.

        Draft 0 is the model's greedy reply, the other drafts are samples;
        ``DoneEvent.result`` (what ``suggest`` returns, ``assist --json``) holds ``n``
        suggestions, the drafts and resolved replies ranked by consensus.
        ``check`` runs before every decoding step (a deadline or a gone client raises there).
        ``intent`` answers for the intent an agent picked instead of the one understood;
        ``stop`` ends each draft at these strings too (besides the next block header).
        """
        sampling = _check_request([message], settings)
        settings = self.settle(settings)
        self.refresh_cases(wait=False)
        request = self.reader.read([message], k_similar, intents=[intent], drafts=self.decodes.drafts(settings.draft_count))[0]
        yield UnderstandingEvent(request.understanding)
        pieces: list[list[str]] = [[] for _ in range(settings.draft_count)]
        stats = DecodeStats()
        for index, piece in self.decodes.stream(self._job([request], settings, sampling, stop), check, stats):
            pieces[index].append(piece)
            yield TokenEvent(index, piece)
        yield DoneEvent(self._answer(request, ["".join(p) for p in pieces], settings, stats))

    def suggest(self, message: str, settings: SuggestSettings = SuggestSettings(), *, k_similar: int = SIMILAR_CASES,
                check: Callable[[], None] | None = None, intent: str | None = None, stop: Sequence[str] = ()) -> AssistResult:
        """Understanding, ranked suggestions and similar cases (the ``assist --json`` object)."""
        return self.suggest_many([message], settings, k_similar, check=check, intents=[intent], stop=stop)[0]

    def suggest_many(self, messages: list[str], settings: SuggestSettings, k_similar: int = 0,
                     on_progress: Callable[[int], None] | None = None, check: Callable[[], None] | None = None,
                     intents: Sequence[str | None] | None = None, stop: Sequence[str] = ()) -> list[AssistResult]:
        """``suggest`` for many messages at once, decoded as one batched, KV-cached job
        (what ``eval --task support`` runs); the same candidates, ranking and brand."""
        sampling = _check_request(messages, settings)
        settings = self.settle(settings)
        self.refresh_cases(wait=False)
        k = settings.draft_count
        requests = self.reader.read(messages, k_similar, intents=intents, drafts=self.decodes.drafts(k * len(messages)))
        stats = DecodeStats()
        outputs = self.decodes.generate(self._job(requests, settings, sampling, stop), check, stats, on_progress)
        written = iter(outputs[i : i + k] for i in range(0, len(outputs), k))
        return [self._answer(r, [] if r.understanding.out_of_scope else next(written), settings, stats) for r in requests]

    def settle(self, settings: SuggestSettings) -> SuggestSettings:
        """``settings`` with the number of drafts this request writes, which its answer records:
        ``drafts`` where the caller gave it, else ``n``, or only the greedy draft while the desk's
        shared decode writes other requests' rows. The samples rarely win (their chrF in
        ``support.settings``) and cost most of a busy desk's time."""
        if settings.drafts is not None:
            return settings
        return replace(settings, drafts=1 if self.decodes.busy() else settings.n)

    def _job(self, requests: list[ReadMessage], settings: SuggestSettings, sampling: Sampling, stop: Sequence[str]) -> DecodeJob:
        """The decode of the requests' drafts (``drafts`` rows each, the first greedy); no row
        for a message out of scope (no intent fits: nothing to write). A draft ends as soon
        as it loops or writes a word found nowhere (``readability.DraftWatch``): it could
        never be shown, and the rest of it cost a busy desk's shared passes."""
        live = [r for r in requests if not r.understanding.out_of_scope]
        k = settings.draft_count
        return DecodeJob([r.prompt for r in live for _ in range(k)], settings.max_new_tokens, sampling, settings.seed,
                         [*STOP_STRINGS, *stop], _greedy_first(k, len(live)), [r.sources for r in live for _ in range(k)],
                         [self.reading.watch(r.text) for r in live for _ in range(k)])

    def _answer(self, request: ReadMessage, candidates: Sequence[str], settings: SuggestSettings,
                stats: DecodeStats) -> AssistResult:
        """The drafts checked, the suggestions chosen among them and the evidence
        (``support.choice``), the team's edits made, the brand filled; a suggestion like one
        an agent dismissed on the desk sinks."""
        intent = request.understanding.intent
        if request.understanding.out_of_scope:
            return AssistResult(request.understanding, self._holding(), self.run.config.model.name, settings, [], stats)
        agreement = agreement_of(candidates, request.evidence)  # the drafts' chrF, once for both steps
        drafts = check_drafts(candidates, request.evidence, self.reading, request.text, agreement)
        chosen = shorten_choices(choose(drafts, request.evidence, settings.n, self.rules(), intent, agreement),
                                 settings.length or self.brand.reply_length)
        stated = message_values(request.message)  # "cancel order 5521": 5521 for {{Order Number}}
        filled = [self.brand.fill(c.text, stated) for c in chosen]
        # The text before the team's edits is filled only where an edit changed it.
        bases = [f.text if c.base_text == c.text else self.brand.fill(c.base_text, stated).text for c, f in zip(chosen, filled)]
        # Compare what the agent saw: the store keeps the filled text of a dismissed suggestion.
        dismissed = self.store.dismissed_texts(DISMISSED_LIMIT, NOT_THE_REPLY) if self.store is not None else []
        penalties = dismissal_penalty([f.text for f in filled], dismissed)
        order = penalized_scores([c.score for c in chosen], penalties)
        # The score shown is the one the order uses (a dismissal's penalty included), so the
        # cards never read out of order.
        suggestions = [
            Suggestion(uuid.uuid4().hex, c.index, c.text, f.text, round(score, 2), f.unfilled, f.mangled, c.source, c.case_id,
                       c.label, base, [{"id": r.id, "description": r.describe()} for r in c.rules], f.from_message)
            for c, f, base, score in sorted(zip(chosen, filled, bases, order), key=lambda t: -t[3])
        ]
        return AssistResult(request.understanding, suggestions, self.run.config.model.name, settings, drafts, stats)

    def _holding(self) -> list[Suggestion]:
        """Out of scope, no reply is offered as an answer: only the brand's holding reply, if it has one."""
        if not self.brand.holding_reply:
            return []
        text = self.brand.fill(self.brand.holding_reply).text
        return [Suggestion(uuid.uuid4().hex, -1, text, text, 0.0, source=HOLDING, label="holding reply", base_text=text)]

    def rules(self) -> list[Rule]:
        """The team's edit rules now: learned from the store's accepts (``support.edits``)
        and written in the brand profile, each as agents switched it."""
        return current_rules(self.store, self.rulebook, self.brand.rules)


def _store(run_dir: Path, target: str | None) -> CaseStore | None:
    """The run's case store; None when it is the run's own file in a run directory nobody may
    write (the assistant still answers, from the training rows alone)."""
    try:
        return CaseStore.for_run(run_dir, target)
    except BigramLMError:
        if os.access(run_dir, os.W_OK) or store_target(run_dir, target) != str(store_path(run_dir)):
            raise
        return None


def _greedy_first(drafts: int, messages: int) -> list[bool]:
    """Draft 0 of each message is the greedy reply; the others sample."""
    return [i % drafts == 0 for i in range(drafts * messages)]


def _check_request(messages: list[str], settings: SuggestSettings) -> Sampling:
    if not messages or any(not isinstance(m, str) or not m.strip() for m in messages):
        raise BigramLMError("the customer message is empty", param="message")
    settings.check()
    return Sampling(settings.temperature, settings.top_k, settings.top_p)


__all__ = ["Assistant", "require_instruction_run"]

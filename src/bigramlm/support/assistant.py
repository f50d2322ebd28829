"""The support-agent assistant: understand a customer message, suggest replies, show similar cases.

``Assistant.load(run_dir)`` needs nothing but an instruction run's folder: the run's
``config.json`` records the block format, and the files training saved beside it
(``bigramlm.data.run_files``) hold the train rows (the retrieval base), the intent
classes and the known placeholder names. The dataset is not read; a run written before
those files existed rebuilds them from its dataset once, and saves them.

Understanding
    A labelled run scores every (intent, category) pair seen in training by the
    language model's own log-likelihood of the labelled lines
    ``### Intent: {intent}\\n### Category: {category}\\n\\n`` given
    ``### Instruction:\\n{message}\\n\\n``, and normalises with a softmax: a generative
    classifier, exact, one batched pass. A run trained without labels falls back to a
    similarity-weighted vote of the nearest training cases.

Unknown characters
    The message is NFKC-normalised, then every character outside the vocabulary is
    replaced by the tokenizer's replacement character; ``replaced_characters`` counts
    them. Nothing a customer types can crash the assistant.

Thread safety
    Generation and scoring only read the model (always in eval mode) and allocate their
    own tensors; the case index swaps its state atomically. One ``Assistant`` can serve
    several threads at once.
"""

from __future__ import annotations

import os
import threading
import uuid
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from bigramlm.checkpoint import Run, load_run
from bigramlm.data.formats import INSTRUCTION_HEADER, STOP_STRINGS, label_lines, prompt_text
from bigramlm.data.instructions import load_run_files
from bigramlm.data.run_files import InstructionRunFiles
from bigramlm.errors import BigramLMError
from bigramlm.evaluation.scoring import continuation_logprob_sums
from bigramlm.generation import generate_batch, generate_candidates
from bigramlm.support.brand import BrandProfile
from bigramlm.support.feedback import dismissed_texts, feedback_penalty, penalized_scores
from bigramlm.support.intent import IntentBaseline
from bigramlm.support.results import (
    AssistResult,
    BaselineIntent,
    DoneEvent,
    IntentScore,
    SimilarCase,
    Suggestion,
    SuggestEvent,
    SuggestSettings,
    TokenEvent,
    Understanding,
    UnderstandingEvent,
)
from bigramlm.support.retrieval import INDEX_FILE, Case, CaseIndex
from bigramlm.support.store import CaseStore
from bigramlm.support.suggestions import EVIDENCE_CASES, rank_candidates
from bigramlm.support.understanding import UNSURE_BELOW, Understander
from bigramlm.tokenization import normalize_for_vocab

DEFAULTS = {"n": 3, "max_new_tokens": 400, "temperature": 0.8, "top_k": None, "top_p": 0.95, "k_similar": 3}
MAX_N = 16
UNDERSTANDER_METHOD = "sentence-embedding-logreg-calibrated"


def require_instruction_run(run: Run) -> dict[str, Any]:
    spec = run.config.data
    if spec.get("kind") != "instructions":
        raise BigramLMError(
            f"{run.path} was not trained on an instruction dataset; train one with --data bitext or --data FILE.csv"
        )
    return spec


def softmax(scores: np.ndarray) -> np.ndarray:
    shifted = scores - scores.max()
    e = np.exp(shifted)
    return e / e.sum()


class Assistant:
    """A loaded run plus its brand profile, retrieval index and case store."""

    def __init__(self, run: Run, data: InstructionRunFiles, brand: BrandProfile | None = None, store: Any = None,
                 baseline: bool = False):
        self.run = run
        self.model = run.model
        self.tokenizer = run.tokenizer
        self.spec = require_instruction_run(run)
        self.data = data
        self.labels = bool((self.spec.get("format") or {}).get("labels"))
        self.label_set: list[tuple[str, str | None]] = [(str(i), c if c else None) for i, c in data.label_set]
        self.known_placeholders = set(data.known_placeholders)
        if brand is None:
            brand = BrandProfile()
        brand.known = self.known_placeholders | set(brand.values)
        self.brand = brand
        train_rows = data.train_rows
        base = [Case(r.instruction, r.response, r.intent, r.category, "train", r.index) for r in train_rows]
        self.index = CaseIndex.cached(base, Path(run.path) / INDEX_FILE)
        self.store = store
        self.baseline = None
        if baseline:
            # The classic comparison: TF-IDF + logistic regression, fitted on the train rows.
            labelled = [r for r in train_rows if r.intent]
            if len({r.intent for r in labelled}) >= 2:
                self.baseline = IntentBaseline([r.instruction for r in labelled], [r.intent for r in labelled])
                self._category_of = {r.intent: r.category for r in labelled}
        self._store_seen = 0
        self._refresh_lock = threading.Lock()
        # Encoded label lines, once: the language model's candidate continuations.
        self._label_ids = [self._encode(label_lines(i, c)) for i, c in self.label_set]
        loaded = Understander.load(Path(run.path))
        #: The calibrated sentence-embedding classifier of ``--recipe support`` runs (None
        #: for other runs, which classify with the language model alone).
        self.understander: Understander | None = loaded[0] if loaded else None
        self.refresh_cases()

    # --- loading -----------------------------------------------------------------------

    @classmethod
    def load(
        cls,
        run_dir: str | os.PathLike[str],
        brand_path: str | os.PathLike[str] | None = None,
        data: str | None = None,
        device: str = "cpu",
        use_store: bool = True,
        baseline: bool = False,
    ) -> "Assistant":
        """Load a run directory (and an optional brand profile TOML) as an assistant.

        ``data`` says where the run's dataset is (its sha256 must match); it is read only
        for a run written before the run kept its rows. ``baseline`` also fits the
        TF-IDF + logistic-regression intent classifier, whose answer then appears as
        ``baseline`` in every result (seconds to fit).
        """
        run = load_run(run_dir, device=device)
        spec = require_instruction_run(run)
        run_files = load_run_files(run.path, spec, data)
        brand = BrandProfile.load(brand_path) if brand_path else None
        store = None
        if use_store:
            store = CaseStore.for_run(run.path)
        return cls(run, run_files, brand, store, baseline=baseline)

    def refresh_cases(self) -> int:
        """Index the store's cases added since the last refresh; returns how many."""
        if self.store is None:
            return 0
        with self._refresh_lock:
            total = self.store.count()
            if total <= self._store_seen:
                return 0
            new = self.store.list_cases(offset=self._store_seen, limit=total - self._store_seen)
            self.index.add([Case(c["message"], c["reply"], c.get("intent"), c.get("category"), "store", c["id"]) for c in new])
            self._store_seen += len(new)
            return len(new)

    # --- pieces ------------------------------------------------------------------------

    def _encode(self, text: str) -> list[int]:
        return [int(t) for t in self.tokenizer.encode(text, on_unknown="replace")]

    def normalize(self, message: str) -> tuple[str, int]:
        """The documented policy for unseen characters: NFKC, then replacement."""
        text, replaced = normalize_for_vocab(message, self.tokenizer)
        return text.strip(), replaced

    def classify(self, message: str) -> tuple[list[IntentScore], str | None]:
        """Every intent with its probability, likeliest first, and the method (``message`` normalised)."""
        return self.classify_many([message])[0]

    def classify_many(self, messages: list[str]) -> list[tuple[list[IntentScore], str | None]]:
        """``classify`` for many messages; the understander embeds them in one batch.

        A run with an understander answers with its calibrated probabilities; others
        with the language model's own label likelihood (``model_classify``).
        """
        if self.understander is not None:
            classes, categories = self.understander.classes, self.understander.categories
            out = []
            for prediction in self.understander.predict(messages):
                ranked = sorted(zip(classes, prediction.probabilities), key=lambda t: -t[1])
                out.append(([IntentScore(i, categories.get(i), float(p)) for i, p in ranked], UNDERSTANDER_METHOD))
            return out
        if self.labels and self.label_set:
            return [(self.model_classify(m), "lm-labelled-likelihood") for m in messages]
        return [(self._vote(m), "nearest-cases") for m in messages]

    def model_classify(self, message: str) -> list[IntentScore]:
        """The language model alone: its log-likelihood of each intent's labelled lines
        after the message, normalised over the intents (a generative classifier)."""
        prefix = self._encode(f"{INSTRUCTION_HEADER}{message}\n\n")
        probs = softmax(continuation_logprob_sums(self.model, prefix, self._label_ids))
        ranked = sorted(zip(self.label_set, probs), key=lambda t: -t[1])
        return [IntentScore(i, c, float(p)) for (i, c), p in ranked]

    def _vote(self, message: str, k: int = 15) -> list[IntentScore]:
        """Fallback for runs trained without labels: similarity-weighted nearest cases."""
        weights: dict[tuple[str, str | None], float] = {}
        for case, score in self.index.search(message, k):
            if case.intent:
                weights[(case.intent, case.category)] = weights.get((case.intent, case.category), 0.0) + max(score, 1e-9)
        total = sum(weights.values())
        ranked = sorted(weights.items(), key=lambda kv: -kv[1])
        return [IntentScore(i, c, w / total) for (i, c), w in ranked] if total else []

    def similar_cases(self, message: str, k: int = 3) -> list[SimilarCase]:
        return [SimilarCase(**case.to_dict(score)) for case, score in self.index.search(message, k)]

    def understand(self, message: str, k_similar: int = DEFAULTS["k_similar"]) -> Understanding:
        """Normalise the message, rank the intents, find similar cases (and the baseline's answer)."""
        return self.understand_many([message], k_similar)[0]

    def understand_many(self, messages: list[str], k_similar: int = DEFAULTS["k_similar"]) -> list[Understanding]:
        normalized = [self.normalize(m) for m in messages]
        texts = [text for text, _ in normalized]
        rankings = self.classify_many(texts)
        similar = self.index.search_many(texts, k_similar) if k_similar > 0 else [[] for _ in texts]
        return [self._understanding(text, replaced, ranking, method, hits)
                for (text, replaced), (ranking, method), hits in zip(normalized, rankings, similar)]

    def _understanding(self, text: str, replaced: int, ranking: list[IntentScore], method: str | None,
                       hits: list[tuple[Case, float]]) -> Understanding:
        top = ranking[0] if ranking else None
        baseline = None
        if self.baseline is not None:
            b_intent, b_prob = self.baseline.top(text)
            baseline = BaselineIntent(b_intent, self._category_of.get(b_intent), b_prob)
        return Understanding(
            intent=top.intent if top else None,
            category=top.category if top else None,
            intent_probability=top.probability if top else None,
            intent_unsure=top is None or (self.understander is not None and top.probability < UNSURE_BELOW),
            intent_method=method if top else None,
            intents=ranking[:5],
            similar_cases=[SimilarCase(**case.to_dict(score)) for case, score in hits],
            replaced_characters=replaced,
            baseline=baseline,
        )

    def evidence(self, message: str, intent: str | None, k: int = EVIDENCE_CASES) -> list[str]:
        """Replies of the resolved cases most like ``message`` (of its intent, when known): they vote in the ranking."""
        return self.evidence_many([message], [intent], k)[0]

    def evidence_many(self, messages: list[str], intents: list[str | None], k: int = EVIDENCE_CASES) -> list[list[str]]:
        hits = self.index.search_many(messages, 4 * k) if k > 0 else [[] for _ in messages]
        out = []
        for found, intent in zip(hits, intents):
            same = [case.reply for case, _ in found if intent is None or case.intent == intent]
            out.append((same or [case.reply for case, _ in found])[:k])
        return out

    def prompt_for(self, message: str, intent: str | None, category: str | None) -> str:
        return prompt_text(message, intent, category, labels=self.labels)

    # --- suggest -------------------------------------------------------------------------

    def suggest_stream(
        self,
        message: str,
        n: int = DEFAULTS["n"],
        max_new_tokens: int = DEFAULTS["max_new_tokens"],
        temperature: float = DEFAULTS["temperature"],
        top_k: int | None = DEFAULTS["top_k"],
        top_p: float | None = DEFAULTS["top_p"],
        seed: int | None = None,
        k_similar: int = DEFAULTS["k_similar"],
    ) -> Iterator[SuggestEvent]:
        """Yield the understanding, then ``TokenEvent``s as the candidates grow, then ``DoneEvent``.

        Candidate 0 is the model's greedy reply, the others are samples; ``DoneEvent.result``
        (what ``suggest`` returns, ``assist --json``) holds them ranked by consensus.
        """
        settings = SuggestSettings(n, max_new_tokens, temperature, top_k, top_p, seed)
        _check_request(message, settings)
        self.refresh_cases()
        understanding = self.understand(message, k_similar)
        yield UnderstandingEvent(understanding)
        text, _ = self.normalize(message)
        prompt = self.prompt_for(text, understanding.intent, understanding.category)
        pieces: list[list[str]] = [[] for _ in range(n)]
        for index, piece in generate_candidates(
            self.model, self.tokenizer, prompt, n, max_new_tokens, temperature=temperature, top_k=top_k,
            top_p=top_p, seed=seed, stop=STOP_STRINGS, greedy_rows=1,
        ):
            pieces[index].append(piece)
            yield TokenEvent(index, piece)
        evidence = self.evidence(text, understanding.intent)
        suggestions = self.rank(["".join(parts) for parts in pieces], evidence)
        yield DoneEvent(AssistResult(understanding, suggestions, self.run.config.model.name, settings))

    def rank(self, candidates: list[str], evidence: list[str] = ()) -> list[Suggestion]:
        """Strip header markers a candidate starts with (``### e st...``), drop empty and
        near-duplicate candidates, rank by consensus (``support.suggestions``), fill the
        brand; a candidate like one an agent dismissed on the desk sinks (``support.feedback``)."""
        ranked = rank_candidates(candidates, evidence)
        filled = [self.brand.fill(r.text) for r in ranked]
        # Compare what the agent saw: the store keeps the filled text of a dismissed suggestion.
        penalties = feedback_penalty([f.text for f in filled], dismissed_texts(self.store))
        order = penalized_scores([r.score for r in ranked], penalties)
        return [Suggestion(uuid.uuid4().hex, r.index, r.text, f.text, r.score, f.unfilled, f.mangled)
                for r, f, _ in sorted(zip(ranked, filled, order), key=lambda t: -t[2])]

    def suggest(self, message: str, **options: Any) -> AssistResult:
        """Understanding, ranked suggestions and similar cases (the ``assist --json`` object)."""
        for event in self.suggest_stream(message, **options):
            if isinstance(event, DoneEvent):
                return event.result
        raise RuntimeError("the suggestion stream ended without a result")

    def suggest_many(self, messages: list[str], settings: SuggestSettings, k_similar: int = 0,
                     rows_per_batch: int = 192, on_progress: Any = None) -> list[AssistResult]:
        """``suggest`` for many messages at once, decoded as one batched, KV-cached job
        (what ``eval --task support`` runs); the same candidates, ranking and brand.
        192 rows a batch: 120 test messages x 3 candidates with the recipe's GPT decoded in
        31.5 s, against 34.7 s at 96 rows (the KV cache of 192 rows is 380 MB)."""
        _check_request(messages[0] if messages else "", settings)
        understandings = self.understand_many(messages, k_similar)
        texts = [self.normalize(m)[0] for m in messages]
        prompts = [self.prompt_for(t, u.intent, u.category) for t, u in zip(texts, understandings)]
        n = settings.n
        outputs = generate_batch(
            self.model, self.tokenizer, [p for p in prompts for _ in range(n)], settings.max_new_tokens,
            temperature=settings.temperature, top_k=settings.top_k, top_p=settings.top_p, seed=settings.seed,
            stop=STOP_STRINGS, rows_per_batch=rows_per_batch, greedy=[i % n == 0 for i in range(n * len(prompts))],
            on_progress=on_progress,
        )
        evidence = self.evidence_many(texts, [u.intent for u in understandings])
        name = self.run.config.model.name
        return [AssistResult(u, self.rank(outputs[i * n : (i + 1) * n], evidence[i]), name, settings)
                for i, u in enumerate(understandings)]


def _check_request(message: str, settings: SuggestSettings) -> None:
    if not isinstance(message, str) or not message.strip():
        raise BigramLMError("the customer message is empty", param="message")
    if not 1 <= settings.n <= MAX_N:
        raise BigramLMError(f"n must be between 1 and {MAX_N} (got {settings.n})", param="n")
    if settings.max_new_tokens < 1:
        raise BigramLMError(f"max_new_tokens must be at least 1 (got {settings.max_new_tokens})", param="max_new_tokens")


__all__ = ["Assistant", "DEFAULTS", "require_instruction_run"]

"""Reading a customer's message, once: normalised, its intents ranked (or none fits), its
similar cases and the evidence of the intent shown found, its prompt encoded.

``MessageReader.read`` is the first half of every suggestion request (``support.assistant``
answers from what it returns) and all of ``understand``. The understanding comes from the
run's calibrated classifier over sentence embeddings (``understanding.Understander``), which
also says when no intent fits (``support.scope``); a labelled run without one asks the language
model (``understanding.LanguageModelIntents``); a run trained without labels takes a
similarity-weighted vote of the nearest cases.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Sequence

from bigramlm.data.cases import Case
from bigramlm.data.formats import prompt_text
from bigramlm.data.run_files import InstructionRunFiles
from bigramlm.errors import BigramLMError
from bigramlm.generation import encode_prompt
from bigramlm.support.choice import POOL_CASES
from bigramlm.support.ranking import EVIDENCE_CASES
from bigramlm.support.results import BaselineIntent, IntentScore, SimilarCase, Understanding
from bigramlm.support.retrieval import CaseIndex, CaseSearch
from bigramlm.support.understanding import (
    UNSURE_BELOW,
    IntentBaseline,
    IntentPrediction,
    LanguageModelIntents,
    Understander,
)
from bigramlm.tokenization import Tokenizer, normalize_for_vocab

UNDERSTANDER_METHOD = "sentence-embedding-logreg-calibrated"
LM_METHOD = "lm-labelled-likelihood"
#: The intent an agent picked on the desk (``suggest(..., intent=...)``).
AGENT_METHOD = "picked-by-agent"
#: A message's scope score (None where the run cannot tell) and whether no intent fits it.
Scoped = tuple[float | None, bool]

#: Replies whose tokens a reader keeps for the decode's drafts (``_sources``): the evidence
#: of one intent's messages repeats from request to request, and encoding 20 replies for
#: every request took 4.4% of a desk's CPU under 8 agents (py-spy, recipe GPT); 2,048
#: replies of ~150 tokens hold about 11 MB.
SOURCE_CACHE = 2048


@dataclass
class ReadMessage:
    """One message, read once: its normalised text, its understanding, its evidence, its prompt."""

    understanding: Understanding
    text: str
    #: The resolved cases (or training rows) of the understood intent nearest the message.
    evidence: list[Case]
    prompt: list[int]
    #: The evidence replies' tokens: what a reply is likely to repeat, so the decode's drafts.
    sources: list[tuple[int, ...]]
    #: The message as the customer wrote it (before normalising): what its values are read from.
    message: str = ""


class MessageReader:
    """What a run knows for reading messages: its tokenizer, understanding, labels and case index."""

    def __init__(self, tokenizer: Tokenizer, index: CaseIndex | CaseSearch, label_set: list[tuple[str, str | None]],
                 understander: Understander | None, lm_intents: LanguageModelIntents | None,
                 labels: bool):
        self.tokenizer = tokenizer
        self.index = index
        self.label_set = label_set
        #: The calibrated sentence-embedding classifier of ``--recipe support`` runs (None
        #: for other runs, which classify with the language model alone).
        self.understander = understander
        self.lm_intents = lm_intents
        self.labels = labels
        #: The classic comparison, TF-IDF + logistic regression on the train rows, when asked for.
        self.baseline: IntentBaseline | None = None
        #: Why the understanding is a fallback, when the run was trained with one it lacks now:
        #: every intent is then marked unsure, and the desk and ``assist`` say so.
        self.degraded: str | None = None
        self._reply_tokens = lru_cache(maxsize=SOURCE_CACHE)(self._encode_reply)

    def normalize(self, message: str) -> tuple[str, int]:
        """The documented policy for unseen characters: NFKC, then replacement."""
        text, replaced = normalize_for_vocab(message, self.tokenizer)
        return text.strip(), replaced

    def classify_many(self, texts: list[str]) -> tuple[list[list[IntentScore]], str | None, list[Scoped]]:
        """Every intent with its probability, likeliest first, for each normalised message; the
        method; and whether any intent fits each at all (``support.scope``; only the
        understander can tell)."""
        if self.understander is not None:
            predictions = self.understander.predict(texts)
            return ([_ranking(self.understander.classes, self.understander.categories, p) for p in predictions],
                    UNDERSTANDER_METHOD, [(p.scope_score, p.out_of_scope) for p in predictions])
        unknown: list[Scoped] = [(None, False)] * len(texts)
        if self.lm_intents is not None and self.label_set:
            return [_ranking(self.lm_intents.classes, self.lm_intents.categories, p)
                    for p in self.lm_intents.predict(texts)], LM_METHOD, unknown
        # A run trained without labels: a similarity-weighted vote of the nearest cases.
        return [[IntentScore(i, c, p) for (i, c), p in self.index.vote(t)] for t in texts], "nearest-cases", unknown

    @property
    def understanding_method(self) -> str:
        """Which understanding answers: the calibrated classifier, the language model, or the nearest cases."""
        return UNDERSTANDER_METHOD if self.understander else LM_METHOD if self.lm_intents else "nearest-cases"

    def known_intents(self) -> dict[str, str | None]:
        """Every intent the assistant can answer for, and its category."""
        if self.understander is not None:
            return {i: self.understander.categories.get(i) for i in self.understander.classes}
        return dict(self.label_set)

    def read(self, messages: list[str], k_similar: int, evidence: int = EVIDENCE_CASES,
              intents: Sequence[str | None] | None = None, drafts: bool = False) -> list[ReadMessage]:
        """Each message normalised, classified and retrieved once (one search serves the
        similar cases shown and the evidence that votes), and its prompt encoded. ``intents``
        overrides the understood intent where the agent picked one; ``drafts`` also encodes
        the evidence replies a speculative decode drafts from."""
        normalized = [self.normalize(m) for m in messages]
        texts = [text for text, _ in normalized]
        rankings, method, scopes = self.classify_many(texts)
        chosen = list(intents or [None] * len(texts))
        rankings = [self._picked(ranking, intent) if intent else ranking for ranking, intent in zip(rankings, chosen)]
        depth = max(k_similar, 2 * POOL_CASES if evidence else 0)  # half of the hits are of other intents
        hits = self.index.search_many(texts, depth) if depth > 0 else [[] for _ in texts]
        # The agent's pick puts the message in scope: that intent fits, in the agent's judgement.
        understandings = [self._understanding(text, replaced, ranking, (AGENT_METHOD if pick else method) if ranking else None,
                                              found[:k_similar], unsure=False if pick else None,
                                              scope=(score, outside and not pick))
                          for (text, replaced), ranking, found, pick, (score, outside)
                          in zip(normalized, rankings, hits, chosen, scopes)]
        cases = self._evidence(texts, understandings, hits) if evidence else [[] for _ in texts]
        prompts = [encode_prompt(self.tokenizer, prompt_text(t, u.intent, u.category, self.labels))
                   for t, u in zip(texts, understandings)]
        sources = [self._sources(found) if drafts else [] for found in cases]
        return [ReadMessage(*parts) for parts in zip(understandings, texts, cases, prompts, sources, messages)]

    def _evidence(self, texts: list[str], understandings: list[Understanding],
                  hits: list[list[tuple[Case, float]]]) -> list[list[Case]]:
        """Each message's cases of the intent shown, nearest first: the first ``evidence`` vote on
        the drafts and ground the prompt; the others can stand in for a draft not shown. Those
        among the nearest of any intent, else that intent's nearest however far: never another
        intent's, which would be shown as this intent's answer (before, a place_order row stood in
        for a complaint's). None out of scope; any intent's where the run has no intents."""
        cases = [[] if u.out_of_scope else [c for c, _ in found if u.intent is None or c.intent == u.intent]
                 for u, found in zip(understandings, hits)]
        far = [i for i, (u, found) in enumerate(zip(understandings, cases)) if not found and u.intent and not u.out_of_scope]
        if far:
            nearest = self.index.search_many([texts[i] for i in far], POOL_CASES, within=[understandings[i].intent for i in far])
            for i, found in zip(far, nearest):
                cases[i] = [c for c, _ in found]
        return cases

    def _sources(self, cases: list[Case]) -> list[tuple[int, ...]]:
        """The tokens of the replies the decode drafts from: the ``POOL_CASES`` nearest, as
        the model writes them (normalised), the most recent ``SOURCE_CACHE`` kept."""
        return [self._reply_tokens(c.reply) for c in cases[:POOL_CASES]]

    def _encode_reply(self, reply: str) -> tuple[int, ...]:
        return tuple(encode_prompt(self.tokenizer, self.normalize(reply)[0]))

    def _picked(self, ranking: list[IntentScore], intent: str) -> list[IntentScore]:
        """The ranking with the intent an agent picked first (its own probability kept)."""
        known = self.known_intents()
        if intent not in known:
            raise BigramLMError(f"intent {intent!r} is not one this run knows (it knows {len(known)}: "
                                f"{', '.join(sorted(known)[:5])}, ...)", param="intent")
        mine = next((s for s in ranking if s.intent == intent), IntentScore(intent, known[intent], 0.0))
        return [mine] + [s for s in ranking if s.intent != intent]

    def _understanding(self, text: str, replaced: int, ranking: list[IntentScore], method: str | None,
                       hits: list[tuple[Case, float]], unsure: bool | None = None,
                       scope: Scoped = (None, False)) -> Understanding:
        """Out of scope, no intent is given (the closest are still ranked, for the agent to pick)."""
        score, outside = scope
        top = ranking[0] if ranking and not outside else None
        if unsure is None:
            unsure = not outside and (top is None or self.degraded is not None
                                      or (self.understander is not None and top.probability < UNSURE_BELOW))
        return Understanding(
            intent=top.intent if top else None,
            category=top.category if top else None,
            intent_probability=top.probability if top else None,
            intent_unsure=unsure,
            intent_method=method,
            intents=ranking[:5],
            similar_cases=[SimilarCase(case, round(float(s), 4)) for case, s in hits],
            replaced_characters=replaced,
            baseline=self._baseline_answer(text),
            out_of_scope=outside,
            scope_score=None if score is None else round(score, 4),
        )

    def _baseline_answer(self, text: str) -> BaselineIntent | None:
        if self.baseline is None:
            return None
        intent, probability = self.baseline.top(text)
        return BaselineIntent(intent, self.baseline.categories.get(intent), probability)


def _ranking(classes: list[str], categories: dict[str, str | None], prediction: IntentPrediction) -> list[IntentScore]:
    ranked = sorted(zip(classes, prediction.probabilities), key=lambda t: -t[1])
    return [IntentScore(i, categories.get(i), float(p)) for i, p in ranked]


def fit_baseline(data: InstructionRunFiles) -> IntentBaseline | None:
    """TF-IDF + logistic regression on the run's labelled train rows (None with fewer than two intents)."""
    labelled = [r for r in data.train_rows if r.intent]
    if len({r.intent for r in labelled}) < 2:
        return None
    return IntentBaseline([r.message for r in labelled], [str(r.intent) for r in labelled],
                          {str(r.intent): r.category for r in labelled})

"""``bigramlm eval RUN_DIR --task support``: the assistant measured on held-out rows.

On the rows of one split (the test rows by default, never seen in training nor indexed;
the val and test rows are the only thing read from the dataset, chosen by the row
indices training saved) it reports, in one run:

- understanding: ``intent_accuracy`` / ``category_accuracy`` of the assistant (the
  calibrated understander of ``--recipe support`` runs, else the language model), and
  ``model_intent_accuracy``, the language model alone (the intent whose labelled lines it
  finds likeliest after the message), so that nobody mistakes one for the other;
  ``calibration_error`` (expected calibration error of the top probability, 15 bins) and
  ``unsure_rate`` (messages below the unsure threshold);
- replies: the top-ranked suggestion against the reference response, corpus ``chrf`` and
  ``bleu`` (sacrebleu, 0-100) and ``rouge_l`` (mean ROUGE-L F1, 0-1);
  ``suggestion_distinctness`` (1 - the mean chrF between a message's suggestions, 0-1)
  and ``suggestions_per_message``; ``per_intent`` {intent: {n, accuracy, chrf}};
- ``fluency``: the word model's floor (``support.fluency``), the drafts below it and those
  the readability gate refuses, and ``shown_below_floor``, the shown drafts below it;
- ``bits_per_char`` of the reference responses under the model, each conditioned on its
  block's prompt (instruction, and the true labels in a labelled run);
- ``baselines``: TF-IDF (character n-grams) + logistic regression intent accuracy; the
  reply of the nearest training instruction; and the retrieval consensus: of the 10
  nearest training instructions' replies, the one that agrees most with the others;
- ``paraphrase_intent_accuracy`` (and the model-only and baseline figures beside it):
  messages written for this project (``resources/paraphrases.jsonl``); the split's rows
  are near-copies of training rows, so this is the honest figure;
- ``seconds``: the whole evaluation. Every message's candidates are decoded as one
  batched, KV-cached job (``Assistant.suggest_many``).
"""

from __future__ import annotations

import math
import os
import time

import numpy as np
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Sequence


from bigramlm.data.formats import prompt_text
from bigramlm.data.instructions import read_split_rows
from bigramlm.data.cases import Case
from bigramlm.errors import BigramLMError
from bigramlm.evaluation.scoring import continuation_logprobs
from bigramlm.support.assistant import Assistant
from bigramlm.support.metrics import ReplyFigures, reply_figures
from bigramlm.support.ranking import distinctness, most_central
from bigramlm.support.fluency import FluencyFigures, fluency_figures
from bigramlm.support.results import MODEL, AssistResult
from bigramlm.support.settings import EVAL_SEED, SuggestSettings
from bigramlm.support.calibration import expected_calibration_error
from bigramlm.support.understanding import IntentBaseline
from bigramlm.support.paraphrases import load_paraphrases
from bigramlm.tokenization import normalize_for_vocab
from bigramlm.training.threads import configure_threads


#: The retrieval-consensus baseline looks at this many nearest training instructions.
CONSENSUS_NEIGHBOURS = 10


@dataclass
class SupportBaselines:
    """The classic comparisons, measured in the same run on the same rows."""

    tfidf_logreg_intent_accuracy: float | None
    tfidf_logreg_paraphrase_intent_accuracy: float | None
    retrieval_chrf: float
    retrieval_bleu: float
    retrieval_rouge_l: float
    #: Of the 10 nearest training instructions' replies, the one that agrees most with the others.
    retrieval_consensus_chrf: float
    retrieval_consensus_rouge_l: float
    retrieval_chrf_macro: float | None = None
    retrieval_rouge_l_macro: float | None = None
    retrieval_consensus_chrf_macro: float | None = None
    retrieval_consensus_rouge_l_macro: float | None = None


@dataclass
class IntentFigures:
    n: int
    accuracy: float | None
    #: The top suggestion shown, the model's own draft, and both retrieval baselines.
    chrf: float
    draft_chrf: float | None = None
    retrieval_chrf: float | None = None
    consensus_chrf: float | None = None


@dataclass
class ShownFigures:
    """What the agent is shown, beside what the model wrote (``support.choice``)."""

    #: The model's own best draft, shown or not: micro and macro chrF and ROUGE-L.
    draft_chrf: float
    draft_chrf_macro: float | None
    draft_rouge_l: float
    draft_rouge_l_macro: float | None
    chrf_macro: float | None
    rouge_l_macro: float | None
    #: Share of top suggestions that are the model's own (the others copy a resolved reply).
    top_from_model: float
    #: Of all the model's drafts, and of the top suggestions shown: with a non-word, looping.
    draft_non_word_rate: float
    draft_loop_rate: float
    shown_non_word_rate: float
    shown_loop_rate: float
    #: Intents whose top-suggestion chrF beats each baseline, of how many.
    intents_beating_retrieval: int
    intents_beating_consensus: int
    intents: int


@dataclass
class SupportEvalResult:
    """``eval --task support --json``: see the module docstring for each figure."""

    run_dir: str
    model: str
    split: str
    n_test: int
    intent_method: str
    intent_accuracy: float | None
    model_intent_accuracy: float | None
    category_accuracy: float | None
    calibration_error: float | None
    unsure_rate: float | None
    chrf: float
    bleu: float
    rouge_l: float
    bits_per_char: float | None
    suggestion_distinctness: float | None
    suggestions_per_message: float
    paraphrase_intent_accuracy: float | None
    model_paraphrase_intent_accuracy: float | None
    n_paraphrases: int
    paraphrase_calibration_error: float | None
    shown: ShownFigures
    per_intent: dict[str, IntentFigures]
    baselines: SupportBaselines
    settings: dict[str, Any]
    seconds: float
    #: The suggestions' decode: seconds, passes, draft tokens offered and kept (``generation.speculation``).
    decode: dict[str, Any] = field(default_factory=dict)
    task: str = "support"
    #: What the word model's floor does to the drafts (``support.fluency``); None for a run without one.
    fluency: FluencyFigures | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"task": self.task, **{k: v for k, v in asdict(self).items() if k != "task"}}


def _accuracy(predicted: Sequence[Any], gold: Sequence[Any]) -> float | None:
    return sum(p == g for p, g in zip(predicted, gold)) / len(gold) if gold else None


def evaluate_support(
    run_dir: str | os.PathLike[str],
    settings: SuggestSettings = SuggestSettings(seed=EVAL_SEED),
    data: str | None = None,
    split: str = "test",
    limit: int | None = None,
    paraphrases: str | os.PathLike[str] | None = None,
    log: Callable[[str], None] | None = None,
    threads: int | None = None,
    speculate: bool = True,
) -> SupportEvalResult:
    """Evaluate the assistant of ``run_dir`` on one split; see the module docstring. The
    settings' seed is the decode's (``EVAL_SEED`` unless given)."""
    log = log or (lambda message: None)
    started = time.perf_counter()
    # No store: desk feedback (dismissals, accepted cases) must not move the figures.
    assistant = Assistant.load(run_dir, data=data, use_store=False, speculate=speculate)
    configure_threads(assistant.model, threads)  # None: the policy (1 thread for a tiny model, else the idle cores)
    rows = _split_rows(assistant, split, limit, data)
    para = _paraphrases(assistant, paraphrases, log)  # a bad file is an error before any work
    settings.check()
    decode_started = time.perf_counter()
    results = assistant.suggest_many([r.message for r in rows], settings,
                                     on_progress=lambda done: log(f"{done}/{settings.draft_count * len(rows)} drafts"))
    decode = {"seconds": round(time.perf_counter() - decode_started, 2), "speculate": speculate,
              **(results[0].decode.as_dict() if results else {})}
    log("suggestions done; scoring")
    references, gold = [row.reply for row in rows], [r.intent for r in rows]
    shown = reply_figures([r.top_reply for r in results], references, gold)
    draft = reply_figures([r.model_draft for r in results], references, gold)
    baselines, retrieval, consensus = _baselines(assistant, rows, para, references)
    distinct = [d for d in (distinctness([s.text for s in r.suggestions]) for r in results) if d is not None]
    return SupportEvalResult(
        run_dir=str(run_dir),
        model=assistant.run.config.model.name,
        split=split,
        n_test=len(rows),
        intent_method=results[0].understanding.intent_method or "none",
        **_understanding_figures(assistant, rows, results, para),
        chrf=shown.chrf,
        bleu=shown.bleu,
        rouge_l=shown.rouge_l,
        bits_per_char=_bits_per_char(assistant, rows),
        suggestion_distinctness=sum(distinct) / len(distinct) if distinct else None,
        suggestions_per_message=sum(len(r.suggestions) for r in results) / len(results),
        shown=_shown_figures(assistant, rows, results, shown, draft, retrieval, consensus),
        per_intent=_per_intent(gold, [r.intent for r in results], shown, draft, retrieval, consensus),
        baselines=baselines,
        settings={**{k: v for k, v in asdict(settings).items() if k != "length"}, "limit": limit},
        seconds=round(time.perf_counter() - started, 2),
        decode=decode,
        fluency=(fluency_figures(assistant.reading.fluency, [d for r in results for d in r.drafts])
                 if assistant.reading.fluency is not None else None),
    )


def _understanding_figures(assistant: Assistant, rows: list[Case], results: list[AssistResult],
                           para: list[dict[str, str]]) -> dict[str, Any]:
    """The assistant's and the language model's intent figures on the split and the paraphrases."""
    gold = [r.intent for r in rows]
    has_intent = all(gold)
    para_found = assistant.understand_many([p["message"] for p in para], k_similar=0)
    para_gold = [p["intent"] for p in para]
    return {
        "intent_accuracy": _accuracy([r.intent for r in results], gold) if has_intent else None,
        "model_intent_accuracy": _model_accuracy(assistant, [r.message for r in rows], gold) if has_intent else None,
        "category_accuracy": (_accuracy([r.category for r in results], [r.category for r in rows])
                              if all(r.category for r in rows) else None),
        "calibration_error": _calibration(results, gold) if has_intent else None,
        "unsure_rate": sum(r.understanding.intent_unsure for r in results) / len(results),
        "paraphrase_intent_accuracy": _accuracy([u.intent for u in para_found], para_gold),
        "paraphrase_calibration_error": _calibration_of([u.intent_probability for u in para_found],
                                                        [u.intent == g for u, g in zip(para_found, para_gold)]),
        "model_paraphrase_intent_accuracy": _model_accuracy(assistant, [p["message"] for p in para], para_gold),
        "n_paraphrases": len(para),
    }


def _paraphrases(assistant: Assistant, path: str | os.PathLike[str] | None, log: Callable[[str], None]) -> list[dict[str, str]]:
    """The paraphrases to score: a file's must all name intents the run knows (else one line);
    the packaged ones of intents a run left out (``--exclude-intents``) are set aside."""
    para, known = load_paraphrases(path), assistant.known_intents()
    unknown = sorted({p["intent"] for p in para if p["intent"] not in known})
    if unknown and path is not None:
        raise BigramLMError(f"{path} names intents this run does not know: {', '.join(unknown[:5])}", param="paraphrases")
    if unknown:
        log(f"paraphrases of intents this run does not know are left out: {', '.join(unknown)}")
    return [p for p in para if p["intent"] in known]


def _model_accuracy(assistant: Assistant, messages: list[str], gold: Sequence[str | None]) -> float | None:
    """The language model alone (``understanding.LanguageModelIntents``): the intent whose
    labelled lines it finds likeliest after the message."""
    if assistant.reader.lm_intents is None:
        return None
    found = assistant.reader.lm_intents.predict([assistant.normalize(m)[0] for m in messages])
    return _accuracy([p.intent for p in found], gold)


def _calibration(results: list[AssistResult], gold: list[str | None]) -> float | None:
    return _calibration_of([r.understanding.intent_probability for r in results], [r.intent == g for r, g in zip(results, gold)])


def _calibration_of(confidence: list[float | None], correct: list[bool]) -> float | None:
    if not confidence or any(c is None for c in confidence):
        return None
    return expected_calibration_error(np.array(confidence, dtype=np.float64), np.array(correct))


def _per_intent(gold: list[str | None], predicted: list[str | None], shown: ReplyFigures, draft: ReplyFigures,
                retrieval: ReplyFigures, consensus: ReplyFigures) -> dict[str, IntentFigures]:
    out = {}
    for intent, chrf in shown.per_intent.items():
        rows = [i for i, g in enumerate(gold) if g == intent]
        out[intent] = IntentFigures(len(rows), _accuracy([predicted[i] for i in rows], [intent] * len(rows)), chrf,
                                    draft.per_intent.get(intent), retrieval.per_intent.get(intent),
                                    consensus.per_intent.get(intent))
    return out


def _shown_figures(assistant: Assistant, rows: list[Case], results: list[AssistResult], shown: ReplyFigures,
                   draft: ReplyFigures, retrieval: ReplyFigures, consensus: ReplyFigures) -> ShownFigures:
    drafts = [d for r in results for d in r.drafts]
    tops = [assistant.reading.check(r.top_reply, row.message) for r, row in zip(results, rows)]

    def share(flags: list[bool]) -> float:
        return sum(flags) / len(flags) if flags else 0.0

    def beats(baseline: ReplyFigures) -> int:
        return sum(chrf > baseline.per_intent.get(intent, float("inf")) for intent, chrf in shown.per_intent.items())

    return ShownFigures(
        draft_chrf=draft.chrf, draft_chrf_macro=draft.chrf_macro, draft_rouge_l=draft.rouge_l,
        draft_rouge_l_macro=draft.rouge_l_macro, chrf_macro=shown.chrf_macro, rouge_l_macro=shown.rouge_l_macro,
        top_from_model=share([bool(r.suggestions) and r.suggestions[0].source == MODEL for r in results]),
        draft_non_word_rate=share([bool(d.non_words) for d in drafts]), draft_loop_rate=share([d.loops for d in drafts]),
        shown_non_word_rate=share([bool(t.non_words) for t in tops]), shown_loop_rate=share([t.loops for t in tops]),
        intents_beating_retrieval=beats(retrieval), intents_beating_consensus=beats(consensus), intents=len(shown.per_intent),
    )


def _split_rows(assistant: Assistant, split: str, limit: int | None, data: str | None) -> list[Case]:
    """The split's rows: the train rows from the run, val and test from the dataset (by saved index)."""
    if limit is not None and limit < 1:
        raise BigramLMError(f"limit must be at least 1 (got {limit})", param="limit")
    rows = read_split_rows(assistant.spec, assistant.data, split, data)[:limit]
    if not rows:
        raise BigramLMError(f"the {split} split has no rows", param="split")
    return rows


def _bits_per_char(assistant: Assistant, rows: list[Case]) -> float | None:
    """Bits per character of the reference responses, teacher-forced after their prompt."""
    tok = assistant.tokenizer

    def ids(text: str) -> list[int]:
        return tok.encode(normalize_for_vocab(text, tok)[0], on_unknown="replace").tolist()

    messages = [assistant.normalize(r.message)[0] for r in rows]
    prefixes = [ids(prompt_text(m, r.intent, r.category, assistant.labels)) for m, r in zip(messages, rows)]
    logps = continuation_logprobs(assistant.model, prefixes, [ids(r.reply) for r in rows])
    nats = -sum(float(v.sum()) for v in logps)
    characters = sum(len(normalize_for_vocab(r.reply, tok)[0]) for r in rows)
    return nats / characters / math.log(2) if characters else None


def _baselines(assistant: Assistant, rows: list[Case], para: list[dict[str, str]],
               references: list[str]) -> tuple[SupportBaselines, ReplyFigures, ReplyFigures]:
    """The TF-IDF classifier, and both retrieval baselines' replies (their figures too, for per-intent wins)."""
    gold = [r.intent for r in rows]
    train_rows = assistant.data.train_rows
    baseline = IntentBaseline([r.message for r in train_rows], [r.intent or "" for r in train_rows]) if all(gold) else None
    nearest = assistant.index.search_many([r.message for r in rows], k=CONSENSUS_NEIGHBOURS)
    retrieval = reply_figures([hits[0][0].reply for hits in nearest], references, gold)
    groups = [[case.reply for case, _ in hits] for hits in nearest]
    consensus = reply_figures([group[i] for group, i in zip(groups, most_central(groups))], references, gold)
    return SupportBaselines(
        tfidf_logreg_intent_accuracy=_accuracy(baseline.predict([r.message for r in rows]), gold) if baseline else None,
        tfidf_logreg_paraphrase_intent_accuracy=_accuracy(baseline.predict([p["message"] for p in para]), [p["intent"] for p in para]) if baseline else None,
        retrieval_chrf=retrieval.chrf, retrieval_bleu=retrieval.bleu, retrieval_rouge_l=retrieval.rouge_l,
        retrieval_consensus_chrf=consensus.chrf, retrieval_consensus_rouge_l=consensus.rouge_l,
        retrieval_chrf_macro=retrieval.chrf_macro, retrieval_rouge_l_macro=retrieval.rouge_l_macro,
        retrieval_consensus_chrf_macro=consensus.chrf_macro, retrieval_consensus_rouge_l_macro=consensus.rouge_l_macro,
    ), retrieval, consensus

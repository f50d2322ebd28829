"""``bigramlm eval RUN_DIR --task support``: the assistant measured on held-out rows.

On the rows of one split (the test rows by default, never seen in training nor indexed)
it reports, in one run (the val and test rows are the only thing read from the dataset,
chosen by the row indices training saved):

- ``intent_accuracy`` / ``category_accuracy`` of the assistant's own classifier;
- reply quality of the top-ranked suggestion against the reference response: corpus
  ``chrf`` and ``bleu`` (sacrebleu, 0-100) and ``rouge_l`` (mean ROUGE-L F1, 0-1);
- ``bits_per_char`` of the reference responses under the model, each conditioned on
  its block's prompt (instruction, and the true labels in a labelled run);
- ``baselines``: TF-IDF (character n-grams) + logistic regression intent accuracy, and a
  retrieval reply (the response of the nearest training instruction) with the same
  reply metrics;
- ``paraphrase_intent_accuracy``: intent accuracy on messages written for this project
  (``resources/paraphrases.jsonl``), with the baseline's accuracy on the same file.
  The split's rows are near-copies of training rows, so this is the honest figure.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import asdict, dataclass
from typing import Any, Callable, Sequence

from bigramlm.data.formats import prompt_text
from bigramlm.data.instructions import read_split_rows
from bigramlm.data.table import Row
from bigramlm.errors import BigramLMError
from bigramlm.evaluation.scoring import continuation_logprobs
from bigramlm.support.assistant import DEFAULTS, Assistant
from bigramlm.support.intent import IntentBaseline
from bigramlm.support.metrics import reply_metrics
from bigramlm.support.paraphrases import load_paraphrases
from bigramlm.tokenization import normalize_for_vocab
from bigramlm.training.threads import configure_threads


@dataclass
class SupportBaselines:
    """The classic comparisons, measured in the same run on the same rows."""

    tfidf_logreg_intent_accuracy: float | None
    tfidf_logreg_paraphrase_intent_accuracy: float | None
    retrieval_chrf: float
    retrieval_bleu: float
    retrieval_rouge_l: float


@dataclass
class SupportEvalResult:
    """``eval --task support --json``: see the module docstring for each figure."""

    run_dir: str
    model: str
    split: str
    n_test: int
    intent_method: str
    intent_accuracy: float | None
    category_accuracy: float | None
    chrf: float
    bleu: float
    rouge_l: float
    bits_per_char: float | None
    paraphrase_intent_accuracy: float | None
    n_paraphrases: int
    baselines: SupportBaselines
    settings: dict[str, Any]
    seconds: float
    task: str = "support"

    def to_dict(self) -> dict[str, Any]:
        return {"task": self.task, **{k: v for k, v in asdict(self).items() if k != "task"}}


@dataclass
class _Replies:
    """What the assistant answered on the split's rows."""

    intents: list[str | None]
    categories: list[str | None]
    texts: list[str]


def _accuracy(predicted: Sequence[Any], gold: Sequence[Any]) -> float | None:
    return sum(p == g for p, g in zip(predicted, gold)) / len(gold) if gold else None


def evaluate_support(
    run_dir: str | os.PathLike[str],
    data: str | None = None,
    split: str = "test",
    n: int = DEFAULTS["n"],
    max_new_tokens: int = DEFAULTS["max_new_tokens"],
    temperature: float = DEFAULTS["temperature"],
    top_k: int | None = DEFAULTS["top_k"],
    top_p: float | None = DEFAULTS["top_p"],
    seed: int = 1337,
    limit: int | None = None,
    paraphrases: str | os.PathLike[str] | None = None,
    log: Callable[[str], None] | None = None,
    threads: int | None = None,
) -> SupportEvalResult:
    """Evaluate the assistant of ``run_dir`` on one split; see the module docstring."""
    log = log or (lambda message: None)
    started = time.perf_counter()
    assistant = Assistant.load(run_dir, data=data, use_store=False)
    configure_threads(assistant.model, threads)  # None: the policy (1 thread for a tiny model, else the idle cores)
    rows = _split_rows(assistant, split, limit, data)
    options = {"n": n, "max_new_tokens": max_new_tokens, "temperature": temperature, "top_k": top_k, "top_p": top_p}
    replies = _answer(assistant, rows, options, seed, log)
    references = [row.response for row in rows]
    metrics = reply_metrics(replies.texts, references)
    para = load_paraphrases(paraphrases)
    para_intents = [assistant.understand(p["message"], k_similar=0).intent for p in para]
    has_intent = all(row.intent for row in rows)
    return SupportEvalResult(
        run_dir=str(run_dir),
        model=assistant.run.config.model.name,
        split=split,
        n_test=len(rows),
        intent_method="lm-labelled-likelihood" if assistant.labels else "nearest-cases",
        intent_accuracy=_accuracy(replies.intents, [r.intent for r in rows]) if has_intent else None,
        category_accuracy=_accuracy(replies.categories, [r.category for r in rows]) if all(r.category for r in rows) else None,
        chrf=metrics["chrf"],
        bleu=metrics["bleu"],
        rouge_l=metrics["rouge_l"],
        bits_per_char=_bits_per_char(assistant, rows),
        paraphrase_intent_accuracy=_accuracy(para_intents, [p["intent"] for p in para]),
        n_paraphrases=len(para),
        baselines=_baselines(assistant, rows, para, references, has_intent),
        settings={**options, "seed": seed, "limit": limit},
        seconds=round(time.perf_counter() - started, 2),
    )


def _split_rows(assistant: Assistant, split: str, limit: int | None, data: str | None) -> list[Row]:
    """The split's rows: the train rows from the run, val and test from the dataset (by saved index)."""
    if limit is not None and limit < 1:
        raise BigramLMError(f"limit must be at least 1 (got {limit})", param="limit")
    rows = read_split_rows(assistant.spec, assistant.data, split, data)[:limit]
    if not rows:
        raise BigramLMError(f"the {split} split has no rows", param="split")
    return rows


def _answer(assistant: Assistant, rows: list[Row], options: dict[str, Any], seed: int, log: Callable[[str], None]) -> _Replies:
    """The assistant itself on every row: classify, generate, rank; the top suggestion is the reply."""
    replies = _Replies([], [], [])
    for i, row in enumerate(rows):
        result = assistant.suggest(row.instruction, **options, seed=seed + i, k_similar=0)
        replies.intents.append(result.intent)
        replies.categories.append(result.category)
        replies.texts.append(result.top_reply)
        if (i + 1) % 100 == 0:
            log(f"{i + 1}/{len(rows)} rows")
    return replies


def _bits_per_char(assistant: Assistant, rows: list[Row]) -> float | None:
    """Bits per character of the reference responses, teacher-forced after their prompt."""
    tok = assistant.tokenizer

    def ids(text: str) -> list[int]:
        return tok.encode(normalize_for_vocab(text, tok)[0], on_unknown="replace").tolist()

    prefixes = [ids(prompt_text(r.instruction, r.intent, r.category, assistant.labels)) for r in rows]
    logps = continuation_logprobs(assistant.model, prefixes, [ids(r.response) for r in rows])
    nats = -sum(float(v.sum()) for v in logps)
    characters = sum(len(normalize_for_vocab(r.response, tok)[0]) for r in rows)
    return nats / characters / math.log(2) if characters else None


def _baselines(assistant: Assistant, rows: list[Row], para: list[dict[str, str]], references: list[str],
               has_intent: bool) -> SupportBaselines:
    train_rows = assistant.data.train_rows
    baseline = IntentBaseline([r.instruction for r in train_rows], [r.intent or "" for r in train_rows]) if has_intent else None
    nearest = assistant.index.search_many([r.instruction for r in rows], k=1)
    retrieval = reply_metrics([hits[0][0].reply for hits in nearest], references)
    return SupportBaselines(
        tfidf_logreg_intent_accuracy=_accuracy(baseline.predict([r.instruction for r in rows]), [r.intent for r in rows]) if baseline else None,
        tfidf_logreg_paraphrase_intent_accuracy=_accuracy(baseline.predict([p["message"] for p in para]), [p["intent"] for p in para]) if baseline else None,
        retrieval_chrf=retrieval["chrf"],
        retrieval_bleu=retrieval["bleu"],
        retrieval_rouge_l=retrieval["rouge_l"],
    )

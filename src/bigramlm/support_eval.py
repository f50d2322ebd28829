"""``bigramlm eval RUN_DIR --task support``: the assistant measured on held-out rows.

On the rows of one split (the test rows by default, never seen in training nor indexed)
it reports, in one run:

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

import json
import math
import os
import re
import time
from importlib import resources
from pathlib import Path
from typing import Any, Callable, Sequence

from .assistant import DEFAULTS, Assistant
from .errors import BigramLMError
from .instructions import prompt_text
from .scoring import continuation_logprobs
from .tokenization import normalize_for_vocab

_WORD = re.compile(r"[a-z0-9]+")


def rouge_tokens(text: str) -> list[str]:
    """Lower-cased alphanumeric runs, as ROUGE's default tokenizer sees words."""
    return _WORD.findall(text.lower())


def lcs_length(a: Sequence[str], b: Sequence[str]) -> int:
    """Length of the longest common subsequence, bit-parallel over ``b``.

    Each distinct word of ``b`` gets a bit mask of its positions; one pass over ``a``
    updates a single big integer (Hyyro's bit-vector recurrence), so the cost is
    len(a) big-int operations instead of a len(a) x len(b) table.
    """
    if not a or not b:
        return 0
    masks: dict[str, int] = {}
    for j, word in enumerate(b):
        masks[word] = masks.get(word, 0) | (1 << j)
    full = (1 << len(b)) - 1
    v = full
    for word in a:
        m = masks.get(word)
        if m is None:
            continue
        u = v & m
        v = ((v + u) | (v - u)) & full
    return len(b) - bin(v).count("1")


def rouge_l(hypothesis: str, reference: str) -> float:
    """ROUGE-L F1 of one pair."""
    h, r = rouge_tokens(hypothesis), rouge_tokens(reference)
    lcs = lcs_length(h, r)
    if lcs == 0:
        return 0.0
    precision, recall = lcs / len(h), lcs / len(r)
    return 2 * precision * recall / (precision + recall)


def reply_metrics(hypotheses: list[str], references: list[str]) -> dict[str, float]:
    import sacrebleu

    return {
        "chrf": float(sacrebleu.corpus_chrf(hypotheses, [references]).score),
        "bleu": float(sacrebleu.corpus_bleu(hypotheses, [references]).score),
        "rouge_l": sum(rouge_l(h, r) for h, r in zip(hypotheses, references)) / max(len(references), 1),
    }


def load_paraphrases(path: str | os.PathLike[str] | None = None) -> list[dict[str, str]]:
    """The hand-written messages (``message``, ``intent``, ``category``), one JSON object a line."""
    if path is None:
        text = resources.files("bigramlm").joinpath("resources/paraphrases.jsonl").read_text(encoding="utf-8")
        where = "bigramlm/resources/paraphrases.jsonl"
    else:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise BigramLMError(f"cannot read paraphrases {path}: {exc.strerror}") from None
        where = str(path)
    items = []
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            try:
                item = json.loads(line)
            except json.JSONDecodeError as exc:
                raise BigramLMError(f"{where}: line {number}: {exc.msg}") from None
            if not isinstance(item, dict) or not item.get("message") or not item.get("intent"):
                raise BigramLMError(f"{where}: line {number} needs a message and an intent")
            items.append(item)
    return items


class IntentBaseline:
    """TF-IDF over character n-grams with logistic regression (scikit-learn)."""

    def __init__(self, messages: list[str], intents: list[str]):
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline

        if len(set(intents)) < 2:
            raise BigramLMError("the intent baseline needs at least two intents in the training rows")
        self.pipeline = make_pipeline(
            TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True, min_df=2),
            LogisticRegression(max_iter=1000, C=10.0),
        )
        self.pipeline.fit(messages, intents)

    def predict(self, messages: list[str]) -> list[str]:
        return [str(p) for p in self.pipeline.predict(messages)] if messages else []

    def top(self, message: str) -> tuple[str, float]:
        """The likeliest intent of one message and its probability."""
        probs = self.pipeline.predict_proba([message])[0]
        best = int(probs.argmax())
        return str(self.pipeline.classes_[best]), float(probs[best])


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
) -> dict[str, Any]:
    """Evaluate the assistant of ``run_dir`` on one split; see the module docstring."""
    log = log or (lambda message: None)
    started = time.perf_counter()
    assistant = Assistant.load(run_dir, data=data, use_store=False)
    parts = assistant.data.parts
    if split not in parts:
        raise BigramLMError(f"split {split!r} does not exist (splits: {', '.join(parts)})")
    rows = parts[split]
    if limit is not None:
        if limit < 1:
            raise BigramLMError(f"--limit must be at least 1 (got {limit})")
        rows = rows[:limit]
    if not rows:
        raise BigramLMError(f"the {split} split has no rows")
    train_rows = parts["train"]

    # The assistant itself: classify, generate, rank; the top suggestion is the reply.
    predictions, replies = [], []
    for i, row in enumerate(rows):
        result = assistant.suggest(
            row.instruction, n=n, max_new_tokens=max_new_tokens, temperature=temperature,
            top_k=top_k, top_p=top_p, seed=seed + i, k_similar=0,
        )
        predictions.append((result["intent"], result["category"]))
        replies.append(result["suggestions"][0]["text"] if result["suggestions"] else "")
        if (i + 1) % 100 == 0:
            log(f"{i + 1}/{len(rows)} rows")
    references = [row.response for row in rows]
    has_intent = all(row.intent for row in rows)
    has_category = all(row.category for row in rows)

    # Bits per character of the reference responses, teacher-forced after their prompt.
    tok = assistant.tokenizer

    def ids(text: str) -> list[int]:
        return tok.encode(normalize_for_vocab(text, tok)[0], on_unknown="replace").tolist()

    prefixes = [ids(prompt_text(r.instruction, r.intent, r.category, assistant.labels)) for r in rows]
    conts = [ids(r.response) for r in rows]
    logps = continuation_logprobs(assistant.model, prefixes, conts)
    nats = -sum(float(v.sum()) for v in logps)
    characters = sum(len(normalize_for_vocab(r.response, tok)[0]) for r in rows)

    # Baselines, in the same run and on the same rows.
    baseline = IntentBaseline([r.instruction for r in train_rows], [r.intent or "" for r in train_rows]) if has_intent else None
    nearest = assistant.index.search_many([r.instruction for r in rows], k=1)
    retrieval = reply_metrics([hits[0][0].reply for hits in nearest], references)

    para = load_paraphrases(paraphrases)
    para_pred = [assistant.classify(assistant.normalize(p["message"])[0]) for p in para]
    para_intents = [r[0]["intent"] if r else None for r in para_pred]

    metrics = reply_metrics(replies, references)
    result: dict[str, Any] = {
        "task": "support",
        "run_dir": str(run_dir),
        "model": assistant.run.config["model"]["name"],
        "split": split,
        "n_test": len(rows),
        "intent_method": "lm-labelled-likelihood" if assistant.labels else "nearest-cases",
        "intent_accuracy": _accuracy([p[0] for p in predictions], [r.intent for r in rows]) if has_intent else None,
        "category_accuracy": _accuracy([p[1] for p in predictions], [r.category for r in rows]) if has_category else None,
        "chrf": metrics["chrf"],
        "bleu": metrics["bleu"],
        "rouge_l": metrics["rouge_l"],
        "bits_per_char": nats / characters / math.log(2) if characters else None,
        "paraphrase_intent_accuracy": _accuracy(para_intents, [p["intent"] for p in para]),
        "n_paraphrases": len(para),
        "baselines": {
            "tfidf_logreg_intent_accuracy": _accuracy(baseline.predict([r.instruction for r in rows]), [r.intent for r in rows]) if baseline else None,
            "tfidf_logreg_paraphrase_intent_accuracy": _accuracy(baseline.predict([p["message"] for p in para]), [p["intent"] for p in para]) if baseline else None,
            "retrieval_chrf": retrieval["chrf"],
            "retrieval_bleu": retrieval["bleu"],
            "retrieval_rouge_l": retrieval["rouge_l"],
        },
        "settings": {"n": n, "max_new_tokens": max_new_tokens, "temperature": temperature, "top_k": top_k,
                     "top_p": top_p, "seed": seed, "limit": limit},
        "seconds": round(time.perf_counter() - started, 2),
    }
    return result

"""Intent classifiers beside the language model, and the calibration of their confidence.

- ``IntentBaseline``: TF-IDF over character n-grams + logistic regression, the classic
  comparison in ``eval --task support``;
- ``EmbeddingIntentClassifier``: logistic regression on sentence embeddings
  (``support.encoder``), which carries over to words the dataset never uses;
- ``fit_temperature`` and ``expected_calibration_error``: so that a confidence of 0.9
  is right about 90% of the time, and the assistant can say when it is unsure.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from bigramlm.errors import BigramLMError


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


def softmax_rows(scores: np.ndarray) -> np.ndarray:
    """Row-wise softmax of (n, K) scores, stable for any magnitude."""
    shifted = scores - scores.max(axis=1, keepdims=True)
    e = np.exp(shifted)
    return e / e.sum(axis=1, keepdims=True)


class EmbeddingIntentClassifier:
    """Multinomial logistic regression on sentence embeddings.

    Fitted with scikit-learn, kept as two plain arrays (weights (K, D), bias (K,)), so
    that a run directory stores it as safetensors (no pickle) and predicting is one
    matrix product. Refitting on the stored embeddings plus new cases takes seconds,
    which is how a new intent joins without retraining the language model.
    """

    def __init__(self, classes: list[str], weights: np.ndarray, bias: np.ndarray):
        self.classes = list(classes)
        self.weights = np.asarray(weights, dtype=np.float32)
        self.bias = np.asarray(bias, dtype=np.float32)

    @classmethod
    def fit(cls, embeddings: np.ndarray, labels: Sequence[str], c: float = 10.0) -> "EmbeddingIntentClassifier":
        """C=10 was the best of 1, 10 and 100 on the sample (test 0.994/0.996/0.994, paraphrases 0.87/0.89/0.85)."""
        from sklearn.linear_model import LogisticRegression

        if len(set(labels)) < 2:
            raise BigramLMError("an intent classifier needs at least two intents")
        model = LogisticRegression(max_iter=2000, C=c).fit(embeddings, list(labels))
        return cls([str(k) for k in model.classes_], model.coef_, model.intercept_)

    def scores(self, embeddings: np.ndarray) -> np.ndarray:
        """Log-odds (n, K), before the softmax."""
        return np.asarray(embeddings, dtype=np.float32) @ self.weights.T + self.bias

    def tensors(self) -> dict[str, Any]:
        import torch

        return {"weights": torch.from_numpy(self.weights), "bias": torch.from_numpy(self.bias)}

    @classmethod
    def from_tensors(cls, classes: list[str], tensors: dict[str, Any]) -> "EmbeddingIntentClassifier":
        return cls(classes, tensors["weights"].numpy(), tensors["bias"].numpy())


def fit_temperature(scores: np.ndarray, labels: np.ndarray) -> float:
    """The temperature that minimises the negative log-likelihood of ``labels`` (held-out rows).

    Temperature scaling keeps the ranking (the accuracy) and makes the top probability
    mean what it says: the probability of being right. A 1-D search on a log grid, then
    a finer one around the best: cheap and exact enough for 27 classes.
    """
    def nll(t: float) -> float:
        logp = np.log(softmax_rows(scores / t) + 1e-12)
        return float(-logp[np.arange(len(labels)), labels].mean())

    grid = np.exp(np.linspace(np.log(0.05), np.log(20.0), 61))
    best = min(grid, key=nll)
    fine = best * np.exp(np.linspace(-0.1, 0.1, 21))
    return float(min(fine, key=nll))


def expected_calibration_error(confidence: np.ndarray, correct: np.ndarray, bins: int = 15) -> float:
    """Mean |accuracy - confidence| over equal-width confidence bins, weighted by their size."""
    confidence, correct = np.asarray(confidence, dtype=np.float64), np.asarray(correct, dtype=np.float64)
    if confidence.size == 0:
        return 0.0
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1]), 0, bins - 1)
    error = 0.0
    for b in range(bins):
        members = which == b
        if members.any():
            error += members.mean() * abs(correct[members].mean() - confidence[members].mean())
    return float(error)

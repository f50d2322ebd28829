"""Understanding a customer's message: intent and category, with a confidence that means
what it says, and the embeddings that find similar cases by meaning.

``Understander`` reads a message through the sentence encoder (``support.encoder``),
classifies the embedding with logistic regression (``EmbeddingIntentClassifier``), and
divides the scores by a temperature fitted on the validation rows, so that the top
probability is calibrated. Below ``unsure_below`` the assistant says it is unsure
instead of presenting its best guess as fact.

Everything it needs is saved in the run directory (``understanding.safetensors``): the
classifier, the temperature, the intent -> category map, and the embeddings of the
training messages (float16, 0.75 KB a message), which the similar-cases index and
``learn`` reuse. Adding cases of a new intent refits the classifier on those stored
embeddings plus the new ones in seconds, without retraining the language model.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from bigramlm.errors import BigramLMError
from bigramlm.support.intent import EmbeddingIntentClassifier, fit_temperature, softmax_rows

UNDERSTANDING_FILE = "understanding.safetensors"
#: Below this calibrated probability the assistant says it is unsure: less than even
#: odds that the top intent is right.
UNSURE_BELOW = 0.5


@dataclass
class IntentPrediction:
    intent: str
    category: str | None
    probability: float
    #: Every intent's calibrated probability, in ``Understander.classes`` order.
    probabilities: np.ndarray

    @property
    def unsure(self) -> bool:
        return self.probability < UNSURE_BELOW


class Understander:
    def __init__(self, classifier: EmbeddingIntentClassifier, temperature: float, categories: dict[str, str | None],
                 message_embeddings: np.ndarray | None = None, encoder=None):
        self.classifier = classifier
        self.temperature = float(temperature)
        self.categories = dict(categories)
        #: Embeddings of the messages the classifier was fitted on (train rows, then learned cases).
        self.message_embeddings = message_embeddings
        self._encoder = encoder

    @property
    def classes(self) -> list[str]:
        return self.classifier.classes

    @property
    def encoder(self):
        if self._encoder is None:
            from bigramlm.support.encoder import shared_encoder

            self._encoder = shared_encoder()
        return self._encoder

    def embed(self, messages: Sequence[str]) -> np.ndarray:
        return self.encoder.encode(list(messages))

    def probabilities(self, embeddings: np.ndarray) -> np.ndarray:
        """Calibrated (n, K) intent probabilities of embedded messages."""
        return softmax_rows(self.classifier.scores(embeddings) / self.temperature)

    def predict(self, messages: Sequence[str], embeddings: np.ndarray | None = None) -> list[IntentPrediction]:
        probs = self.probabilities(self.embed(messages) if embeddings is None else embeddings)
        best = probs.argmax(axis=1)
        return [
            IntentPrediction(self.classes[b], self.categories.get(self.classes[b]), float(p[b]), p)
            for b, p in zip(best, probs)
        ]

    # --- fitting -------------------------------------------------------------------------

    @classmethod
    def fit(cls, train: tuple[Sequence[str], Sequence[str], Sequence[str | None]],
            val: tuple[Sequence[str], Sequence[str]], encoder=None) -> "Understander":
        """Fit on (messages, intents, categories) of the train rows; calibrate on (messages, intents) of val."""
        understander = cls(EmbeddingIntentClassifier([], np.zeros((0, 1)), np.zeros(0)), 1.0, {}, None, encoder)
        messages, intents, categories = train
        embeddings = understander.embed(messages)
        understander.message_embeddings = embeddings
        understander.categories = {i: c for i, c in zip(intents, categories)}
        understander.refit(list(intents), val)
        return understander

    def refit(self, intents: list[str], val: tuple[Sequence[str], Sequence[str]] | None = None,
              val_embeddings: np.ndarray | None = None) -> None:
        """Fit the classifier on ``message_embeddings`` (one intent per row); recalibrate on ``val``."""
        if self.message_embeddings is None or len(intents) != len(self.message_embeddings):
            raise BigramLMError("every stored message embedding needs its intent to refit the classifier")
        self.classifier = EmbeddingIntentClassifier.fit(self.message_embeddings, intents)
        if val is not None and len(val[0]):
            known = [k for k, i in enumerate(val[1]) if i in self.classes]
            embedded = self.embed([val[0][k] for k in known]) if val_embeddings is None else val_embeddings[known]
            labels = np.array([self.classes.index(val[1][k]) for k in known])
            self.temperature = fit_temperature(self.classifier.scores(embedded), labels)

    # --- the run directory -------------------------------------------------------------------

    def save(self, run_dir: Path, intents: list[str]) -> None:
        """Write ``understanding.safetensors`` atomically (tensors, and the rest as metadata)."""
        import torch

        from bigramlm.checkpoint.weights import atomic_save_tensors

        tensors = dict(self.classifier.tensors())
        if self.message_embeddings is not None:
            tensors["message_embeddings"] = torch.from_numpy(self.message_embeddings.astype(np.float16))
        metadata = {
            "classes": json.dumps(self.classes),
            "categories": json.dumps(self.categories),
            "temperature": repr(self.temperature),
            "message_intents": json.dumps(intents),
            "encoder": "sentence-transformers/all-MiniLM-L6-v2",
        }
        atomic_save_tensors(Path(run_dir) / UNDERSTANDING_FILE, tensors, metadata)

    @classmethod
    def load(cls, run_dir: Path) -> tuple["Understander", list[str]] | None:
        """The saved understander and the intents of its stored messages, or None if the run has none."""
        from safetensors import safe_open

        from bigramlm.checkpoint.weights import load_tensors

        path = Path(run_dir) / UNDERSTANDING_FILE
        if not path.is_file():
            return None
        tensors = load_tensors(path)
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        try:
            classes, categories = json.loads(meta["classes"]), json.loads(meta["categories"])
            temperature, intents = float(meta["temperature"]), json.loads(meta["message_intents"])
        except (KeyError, ValueError):
            raise BigramLMError(f"corrupt {path}: bad metadata") from None
        embeddings = tensors["message_embeddings"].float().numpy() if "message_embeddings" in tensors else None
        classifier = EmbeddingIntentClassifier.from_tensors(classes, tensors)
        return cls(classifier, temperature, categories, embeddings), intents

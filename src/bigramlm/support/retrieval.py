"""Retrieval of similar resolved cases: TF-IDF over character n-grams (scikit-learn).

Character n-grams within word boundaries tolerate the typos and run-on words that fill
customer messages ("cancelling oorder"), which word TF-IDF or BM25 would miss. The
vectorizer is fitted once on the training rows' messages; cases added later (the
store) are projected with the same vocabulary, so every score is a cosine in one space.
Test rows are never indexed.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np


@dataclass(frozen=True)
class Case:
    message: str
    reply: str
    intent: str | None = None
    category: str | None = None
    source: str = "train"
    id: int | None = None

    def to_dict(self, score: float) -> dict[str, Any]:
        return {
            "message": self.message,
            "reply": self.reply,
            "intent": self.intent,
            "category": self.category,
            "source": self.source,
            "id": self.id,
            "score": round(float(score), 4),
        }


def make_vectorizer():
    from sklearn.feature_extraction.text import TfidfVectorizer

    return TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4), sublinear_tf=True, lowercase=True, dtype=np.float32)


class CaseIndex:
    """Cosine nearest neighbours over base cases plus cases added later.

    Reads are lock-free: ``add`` builds a new matrix and swaps the (cases, matrix) pair
    in one assignment under a lock, so a concurrent ``search`` sees old or new, whole.
    """

    def __init__(self, base: Sequence[Case]):
        if not base:
            raise ValueError("a case index needs at least one case")
        self.vectorizer = make_vectorizer()
        matrix = self.vectorizer.fit_transform([c.message for c in base])
        self._state: tuple[list[Case], Any] = (list(base), matrix)
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._state[0])

    def add(self, cases: Sequence[Case]) -> None:
        if not cases:
            return
        from scipy.sparse import vstack

        extra = self.vectorizer.transform([c.message for c in cases])
        with self._lock:
            old_cases, old_matrix = self._state
            self._state = (old_cases + list(cases), vstack([old_matrix, extra]).tocsr())

    def search(self, query: str, k: int = 3) -> list[tuple[Case, float]]:
        cases, matrix = self._state
        if k <= 0:
            return []
        q = self.vectorizer.transform([query])
        # Rows are L2-normalised by TfidfVectorizer, so the dot product is the cosine.
        scores = (matrix @ q.T).toarray().ravel()
        k = min(k, len(cases))
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.argsort(-scores[top], kind="stable")]
        return [(cases[i], float(scores[i])) for i in top]

    def search_many(self, queries: Sequence[str], k: int = 1) -> list[list[tuple[Case, float]]]:
        """Batch search (for evaluation): one sparse product for all queries."""
        cases, matrix = self._state
        k = min(k, len(cases))
        out: list[list[tuple[Case, float]]] = []
        for start in range(0, len(queries), 256):  # bounded dense blocks of scores
            q = self.vectorizer.transform(list(queries[start : start + 256]))
            for row in (q @ matrix.T).toarray():
                top = np.argpartition(-row, k - 1)[:k]
                top = top[np.argsort(-row[top], kind="stable")]
                out.append([(cases[i], float(row[i])) for i in top])
        return out

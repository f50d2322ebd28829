"""Retrieval of similar resolved cases: TF-IDF over character n-grams (scikit-learn).

Character n-grams within word boundaries tolerate the typos and run-on words that fill
customer messages ("cancelling oorder"), which word TF-IDF or BM25 would miss. The
vectorizer is fitted once on the training rows' messages; cases added later (the
store) are projected with the same vocabulary, so every score is a cosine in one space.
Test rows are never indexed.

Fitting takes about a second on the Bitext sample's 6,314 train messages (0.8-1.4 s
measured on 2 busy cores), longer than everything else ``assist`` does but import and
generate, so ``CaseIndex.cached`` keeps the fitted index in the run directory
(``retrieval_index.npz``: the vocabulary, the idf weights and the sparse matrix, 2.3 MB
for the sample; numpy arrays only, loaded with ``allow_pickle=False``). Its key is the
sha256 of the indexed messages, the vectorizer's settings and scikit-learn's version:
any change refits, and a missing, corrupt or unwritable cache only costs the fit.
"""

from __future__ import annotations

import hashlib
import os
import threading
import zipfile
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from bigramlm._fs import atomic_write
from bigramlm.data.cases import Case

INDEX_FILE = "retrieval_index.npz"
VECTORIZER_OPTIONS = {"analyzer": "char_wb", "ngram_range": (2, 4), "sublinear_tf": True, "lowercase": True}


def make_vectorizer(vocabulary: dict[str, int] | None = None):
    from sklearn.feature_extraction.text import TfidfVectorizer

    return TfidfVectorizer(**VECTORIZER_OPTIONS, dtype=np.float32, vocabulary=vocabulary)


def index_key(messages: Sequence[str]) -> str:
    """What a fitted index depends on: the messages, the vectorizer's settings, scikit-learn's version."""
    import sklearn

    digest = hashlib.sha256(f"{sorted(VECTORIZER_OPTIONS.items())}|sklearn {sklearn.__version__}".encode("utf-8"))
    for message in messages:
        digest.update(message.encode("utf-8", "surrogatepass") + b"\0")
    return digest.hexdigest()


class CaseIndex:
    """Cosine nearest neighbours over base cases plus cases added later.

    Reads are lock-free: ``add`` builds a new matrix and swaps the (cases, matrix) pair
    in one assignment under a lock, so a concurrent ``search`` sees old or new, whole.
    """

    def __init__(self, base: Sequence[Case], fitted: tuple[Any, Any] | None = None):
        """Fit on ``base``, or take ``fitted``: a (vectorizer, matrix) pair fitted on it."""
        if not base:
            raise ValueError("a case index needs at least one case")
        if fitted is None:
            self.vectorizer = make_vectorizer()
            matrix = self.vectorizer.fit_transform([c.message for c in base])
        else:
            self.vectorizer, matrix = fitted
        self._state: tuple[list[Case], Any, dict[str | None, np.ndarray]] = (list(base), matrix, _rows_by_intent(base))
        self._lock = threading.Lock()

    @classmethod
    def cached(cls, base: Sequence[Case], path: str | os.PathLike[str]) -> "CaseIndex":
        """The index of ``base``, from the cache at ``path`` when it was fitted on the same messages."""
        key = index_key([c.message for c in base])
        fitted = _load_fitted(Path(path), key, len(base))
        if fitted is not None:
            return cls(base, fitted)
        index = cls(base)
        try:
            index._save(Path(path), key)
        except OSError:
            pass  # a read-only run directory: fit each time
        return index

    def _save(self, path: Path, key: str) -> None:
        _, matrix, _ = self._state
        terms = sorted(self.vectorizer.vocabulary_, key=self.vectorizer.vocabulary_.__getitem__)
        # Code points, not a numpy string array: that would drop a term's trailing NULs.
        codes = np.frombuffer("".join(terms).encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
        arrays = {
            "key": np.array(key), "term_codes": codes, "term_lengths": np.array([len(t) for t in terms], dtype=np.int64),
            "idf": self.vectorizer.idf_,
            "data": matrix.data, "indices": matrix.indices, "indptr": matrix.indptr, "shape": np.array(matrix.shape),
        }
        atomic_write(path, lambda tmp: _write_npz(tmp, arrays))

    def __len__(self) -> int:
        return len(self._state[0])

    def add(self, cases: Sequence[Case]) -> None:
        if not cases:
            return
        from scipy.sparse import vstack

        extra = self.vectorizer.transform([c.message for c in cases])
        with self._lock:
            old_cases, old_matrix, old_rows = self._state
            rows = dict(old_rows)
            for intent, found in _rows_by_intent(cases).items():
                rows[intent] = np.concatenate([old_rows.get(intent, _NONE), found + len(old_cases)])
            self._state = (old_cases + list(cases), vstack([old_matrix, extra]).tocsr(), rows)

    def search(self, query: str, k: int = 3) -> list[tuple[Case, float]]:
        cases, matrix, _ = self._state
        # Rows are L2-normalised by TfidfVectorizer, so the dot product is the cosine.
        return _top((matrix @ self.vectorizer.transform([query]).T).toarray().ravel(), k, None, cases)

    def vote(self, query: str, k: int = 15) -> list[tuple[tuple[str, str | None], float]]:
        """The (intent, category) pairs of the ``k`` nearest cases, weighted by similarity, as
        shares summing to 1, likeliest first ([] when none has an intent)."""
        weights: dict[tuple[str, str | None], float] = {}
        for case, score in self.search(query, k):
            if case.intent:
                weights[(case.intent, case.category)] = weights.get((case.intent, case.category), 0.0) + max(score, 1e-9)
        total = sum(weights.values())
        return [(pair, w / total) for pair, w in sorted(weights.items(), key=lambda kv: -kv[1])] if total else []

    def search_many(self, queries: Sequence[str], k: int = 1,
                    within: Sequence[str | None] | None = None) -> list[list[tuple[Case, float]]]:
        """Batch search: one sparse product for all queries. ``within``: per query, the intent
        whose cases alone are ranked (None ranks every case), so that what stands for a reply
        of an intent is always of that intent, however far its cases are from the message."""
        cases, matrix, by_intent = self._state
        out: list[list[tuple[Case, float]]] = []
        for start in range(0, len(queries), 256):  # bounded dense blocks of scores
            q = self.vectorizer.transform(list(queries[start : start + 256]))
            for offset, row in enumerate((q @ matrix.T).toarray()):
                intent = within[start + offset] if within is not None else None
                rows = by_intent.get(intent, _NONE) if intent is not None else None
                out.append(_top(row, k, rows, cases))
        return out


_NONE = np.zeros(0, dtype=np.int64)


def _top(scores: np.ndarray, k: int, rows: np.ndarray | None, cases: list[Case]) -> list[tuple[Case, float]]:
    """The ``k`` best of ``scores`` (among ``rows`` only, when given), best first."""
    candidates = scores if rows is None else scores[rows]
    k = min(k, len(candidates))
    if k <= 0:
        return []
    top = np.argpartition(-candidates, k - 1)[:k]
    top = top[np.argsort(-candidates[top], kind="stable")]
    picked = top if rows is None else rows[top]
    return [(cases[i], float(scores[i])) for i in picked]


def _rows_by_intent(cases: Sequence[Case]) -> dict[str | None, np.ndarray]:
    """Each intent's row numbers in the index (cases without an intent under None)."""
    rows: dict[str | None, list[int]] = {}
    for i, case in enumerate(cases):
        rows.setdefault(case.intent, []).append(i)
    return {intent: np.array(found, dtype=np.int64) for intent, found in rows.items()}


def _write_npz(path: str, arrays: dict[str, np.ndarray]) -> None:
    with open(path, "wb") as f:  # a file object: np.savez would append ".npz" to a bare name
        # mypy matches **arrays against the stubs' allow_pickle: bool. Passing allow_pickle to avoid
        # that is no fix: numpy 1.x (which pyproject allows) would store it as one more array.
        np.savez_compressed(f, **arrays)  # type: ignore[arg-type]  # the stubs' allow_pickle (above)


def _load_fitted(path: Path, key: str, rows: int) -> tuple[Any, Any] | None:
    """(vectorizer, matrix) from the cache, or None when it is missing, stale or unreadable."""
    from scipy.sparse import csr_matrix

    try:
        with np.load(path, allow_pickle=False) as npz:
            if str(npz["key"]) != key:
                return None
            joined = npz["term_codes"].astype("<u4").tobytes().decode("utf-32-le", "surrogatepass")
            ends = np.cumsum(npz["term_lengths"]).tolist()
            idf = npz["idf"]
            shape = tuple(int(n) for n in npz["shape"])
            matrix = csr_matrix((npz["data"], npz["indices"], npz["indptr"]), shape=shape)
    except (OSError, ValueError, KeyError, UnicodeDecodeError, zipfile.BadZipFile):
        return None
    terms = [joined[start:end] for start, end in zip([0] + ends[:-1], ends)]
    if shape != (rows, len(terms)) or len(idf) != len(terms) or (ends and ends[-1] != len(joined)):
        return None
    vectorizer = make_vectorizer({t: i for i, t in enumerate(terms)})
    vectorizer.idf_ = idf
    return vectorizer, matrix

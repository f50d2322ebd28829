"""Retrieval of similar resolved cases: TF-IDF over character n-grams (scikit-learn).

Character n-grams within word boundaries tolerate the typos and run-on words that fill
customer messages ("cancelling oorder"), which word TF-IDF or BM25 would miss. The
vectorizer is fitted once on the training rows' messages; the team's cases (the store)
are projected with the same vocabulary, so every score is a cosine in one space. Test rows
are never indexed.

The train rows are held in memory (``CaseIndex``); the store's cases are not: ``CaseSearch``
asks the store's own engine (``support.store.search``: SQLite FTS5, PostgreSQL ``pg_trgm``)
for candidates sharing the message's rarest trigrams, and re-scores those. So a desk's
memory and an added case's cost do not grow with the store, and a case accepted on one
desk is found by every desk once it is committed.

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
import re
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np

from bigramlm._fs import atomic_write
from bigramlm.data.cases import Case

if TYPE_CHECKING:
    from bigramlm.support.store import CaseStore

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
    """Cosine nearest neighbours over the base cases (a run's train rows), in memory.

    It never grows: the team's cases are searched in the store (``CaseSearch``), so a desk
    holds no copy of them and adding one costs the same at any store size.
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
        # ``search_many``'s product wants the transpose as rows: scipy converted it on every
        # call (5.4% of a desk's CPU under 8 agents, py-spy), so it is converted once.
        self._transposed = matrix.T.tocsr()

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

    def search(self, query: str, k: int = 3) -> list[tuple[Case, float]]:
        cases, matrix, _ = self._state
        # Rows are L2-normalised by TfidfVectorizer, so the dot product is the cosine.
        return _top((matrix @ self.vectorizer.transform([query]).T).toarray().ravel(), k, None, cases)

    def vote(self, query: str, k: int = 15) -> list[tuple[tuple[str, str | None], float]]:
        """The nearest cases' (intent, category) pairs (``vote``)."""
        return vote(self.search(query, k))

    def search_many(self, queries: Sequence[str], k: int = 1,
                    within: Sequence[str | None] | None = None) -> list[list[tuple[Case, float]]]:
        """Batch search: one sparse product for all queries. ``within``: per query, the intent
        whose cases alone are ranked (None ranks every case), so that what stands for a reply
        of an intent is always of that intent, however far its cases are from the message."""
        cases, _, by_intent = self._state
        out: list[list[tuple[Case, float]]] = []
        for start in range(0, len(queries), 256):  # bounded dense blocks of scores
            q = self.vectorizer.transform(list(queries[start : start + 256]))
            for offset, row in enumerate((q @ self._transposed).toarray()):
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


def vote(hits: Sequence[tuple[Case, float]]) -> list[tuple[tuple[str, str | None], float]]:
    """The (intent, category) pairs of ``hits``, weighted by similarity, as shares summing to
    1, likeliest first ([] when none has an intent)."""
    weights: dict[tuple[str, str | None], float] = {}
    for case, score in hits:
        if case.intent:
            weights[(case.intent, case.category)] = weights.get((case.intent, case.category), 0.0) + max(score, 1e-9)
    total = sum(weights.values())
    return [(pair, w / total) for pair, w in sorted(weights.items(), key=lambda kv: -kv[1])] if total else []


#: How many of a message's trigrams ask the store for candidates: its rarest (highest idf).
#: The store walks every case holding any of them: on 100,000 synthetic cases (SQLite), 4
#: took 6.5 ms a query, 6 took 13 ms, 8 took 53 ms and 12 took 72 ms.
QUERY_GRAMS = 6
#: Candidates the store returns per wanted case, re-scored here (at least ``MIN_CANDIDATES``).
#: On the 793 test messages against 100,000 synthetic cases, the 3 similar cases shown are
#: those of one exact cosine over every case for 81% of them with 2 per case, 85% with 4
#: (more trigrams: 85% at 8, 87% at 12, at 1.4-2.5x the time); the rest are near-ties among
#: copies of one train row (the same reply), and the first shown has the message's intent as
#: often as before (``benchmarks/case_search_quality.py``).
CANDIDATES_PER_CASE = 4
MIN_CANDIDATES = 50
_WORDS = re.compile(r"[^\W\d_]+")


class CaseSearch:
    """Similar cases among a run's train rows (``CaseIndex``, in memory) and the team's store.

    The store's cases are searched in the store's own engine (``support.store.search``), and
    its candidates re-scored with the train rows' TF-IDF vectorizer, so every score is a cosine
    in one space and the two lists merge (the train rows first where they tie, as when they
    were one matrix). ``store`` is asked each time: the desk attaches its store after loading.
    """

    def __init__(self, base: CaseIndex, store: "Callable[[], CaseStore | None]" = lambda: None):
        self.base = base
        self.store = store

    def __len__(self) -> int:
        return len(self.base)

    def search(self, query: str, k: int = 3) -> list[tuple[Case, float]]:
        return self.search_many([query], k)[0]

    def vote(self, query: str, k: int = 15) -> list[tuple[tuple[str, str | None], float]]:
        """The nearest cases' (intent, category) pairs (``vote``)."""
        return vote(self.search(query, k))

    def search_many(self, queries: Sequence[str], k: int = 1,
                    within: Sequence[str | None] | None = None) -> list[list[tuple[Case, float]]]:
        """``CaseIndex.search_many`` over the train rows and the store's cases together."""
        found = self.base.search_many(queries, k, within)
        store = self.store()
        if store is None or k <= 0:
            return found
        wanted = max(MIN_CANDIDATES, CANDIDATES_PER_CASE * k)
        out = []
        for i, (query, hits) in enumerate(zip(queries, found)):
            cases = [c.case for c in store.similar(self.grams(query), wanted, within[i] if within is not None else None)]
            out.append(sorted(hits + self._scored(query, cases), key=lambda hit: -hit[1])[:k])
        return out

    def grams(self, query: str) -> list[tuple[str, float]]:
        """The query's ``QUERY_GRAMS`` rarest letter trigrams, weighted by the train rows' idf
        (one the train rows never had weighs as the rarest)."""
        vocabulary, idf = self.base.vectorizer.vocabulary_, self.base.vectorizer.idf_
        rarest = float(idf.max()) if len(idf) else 1.0
        weights: dict[str, float] = {}
        for word in _WORDS.findall(query.lower()):
            for start in range(len(word) - 2):
                gram = word[start : start + 3]
                column = vocabulary.get(gram)
                weights[gram] = rarest if column is None else float(idf[column])
        return sorted(weights.items(), key=lambda kv: (-kv[1], kv[0]))[:QUERY_GRAMS]

    def _scored(self, query: str, cases: list[Case]) -> list[tuple[Case, float]]:
        """The cosine of each case with ``query``, best first (ties: the older case first)."""
        if not cases:
            return []
        vectorizer = self.base.vectorizer
        scores = (vectorizer.transform([c.message for c in cases]) @ vectorizer.transform([query]).T).toarray().ravel()
        order = np.argsort(-scores, kind="stable")
        return [(cases[i], float(scores[i])) for i in order]

"""Intent classifiers beside the language model: TF-IDF + logistic regression."""

from __future__ import annotations

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

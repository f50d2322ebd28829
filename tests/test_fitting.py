"""Fitting the bigram: counts equals the analytic cross-entropy, SGD approaches it,
and an untrained model starts near ln V."""

from __future__ import annotations

import math
from collections import Counter

import pytest
import torch

from bigramlm.data import load_data
from bigramlm.evaluation import evaluate_ids
from bigramlm.models import build_model
from bigramlm.tokenization import CharTokenizer
from bigramlm.training import TrainConfig, train
from bigramlm.training.counts import fit_counts


def test_counts_matches_hand_computed_cross_entropy(tmp_path) -> None:
    # "ab" * 50: train is the first 90 characters, val the last 10 ("ababababab").
    # Train pairs: a->b 45 times, b->a 44 times; V = 2, add-one smoothing:
    # p(b|a) = 46/47, p(a|b) = 45/46. Val predicts 9 targets: 5 times a->b, 4 times b->a.
    path = tmp_path / "ab.txt"
    path.write_text("ab" * 50, encoding="utf-8")
    result = train(load_data(str(path)), tmp_path / "run", config=TrainConfig(method="counts", block_size=4), progress=False)
    expected = -(5 * math.log(46 / 47) + 4 * math.log(45 / 46)) / 9
    assert result.val.tokens == 9
    assert result.val.loss == pytest.approx(expected, abs=1e-6)


def _pair_counts(text: str) -> tuple[Counter, Counter]:
    pairs = Counter(zip(text, text[1:]))
    firsts = Counter(text[:-1])
    return pairs, firsts


def test_counts_matches_analytic_on_tiny_corpus(tiny_corpus, tmp_path) -> None:
    data = load_data(str(tiny_corpus))
    vocab = sorted(set(data.vocab_text))
    pairs, firsts = _pair_counts(data.train_text)
    # Plain-Python add-one estimate, then the val cross-entropy pair by pair.
    val_pairs = list(zip(data.val_text, data.val_text[1:]))
    expected = -sum(math.log((pairs[a, b] + 1) / (firsts[a] + len(vocab))) for a, b in val_pairs) / len(val_pairs)
    result = train(data, tmp_path / "run", config=TrainConfig(method="counts"), progress=False)
    assert result.val.loss == pytest.approx(expected, abs=1e-6)
    # alpha = 0 is the exact maximum-likelihood fit: its train loss is the entropy of
    # the pair counts, the lowest any bigram can reach on the train split.
    optimum = -sum(c * math.log(c / firsts[a]) for (a, _), c in pairs.items()) / (len(data.train_text) - 1)
    tok = CharTokenizer.from_text(data.vocab_text)
    ids = torch.from_numpy(tok.encode(data.train_text))
    model = build_model("bigram", {"vocab_size": tok.vocab_size, "block_size": 8})
    model.load_log_probs(fit_counts(ids, tok.vocab_size, alpha=0.0))
    assert evaluate_ids(model, ids, "train").loss == pytest.approx(optimum, abs=1e-6)


def test_sgd_approaches_counts_optimum(tiny_corpus, tmp_path) -> None:
    data = load_data(str(tiny_corpus))
    tok = CharTokenizer.from_text(data.vocab_text)
    train_ids = torch.from_numpy(tok.encode(data.train_text))
    optimum_model = build_model("bigram", {"vocab_size": tok.vocab_size, "block_size": 8})
    optimum_model.load_log_probs(fit_counts(train_ids, tok.vocab_size, alpha=0.0))
    optimum = evaluate_ids(optimum_model, train_ids, "train").loss

    config = TrainConfig(steps=600, learning_rate=0.1, batch_size=64, weight_decay=0.0, eval_every=600, checkpoint_every=600)
    result = train(data, tmp_path / "sgd", config=config, progress=False)
    from bigramlm.checkpoint import load_run

    sgd_loss = evaluate_ids(load_run(result.run_dir).model, train_ids, "train").loss
    assert sgd_loss >= optimum - 1e-6  # nothing beats the closed form on its own data
    assert sgd_loss - optimum < 0.03
    first = result.history[0]["loss"]
    assert first - sgd_loss > 1.0  # it actually learned


def test_initial_loss_near_ln_v() -> None:
    # N(0, 1) logits: E[loss] = E[logsumexp] - E[z_target] ~ ln V + 1/2, the notebook's
    # "4.72 rather than ln 65 = 4.17".
    vocab = 65
    losses = []
    for seed in range(5):
        torch.manual_seed(seed)
        model = build_model("bigram", {"vocab_size": vocab, "block_size": 8})
        g = torch.Generator().manual_seed(seed)
        x = torch.randint(vocab, (256, 8), generator=g)
        y = torch.randint(vocab, (256, 8), generator=g)
        _, loss = model(x, y)
        losses.append(loss.item())
    mean = sum(losses) / len(losses)
    assert math.log(vocab) < mean < math.log(vocab) + 0.8
    assert abs(mean - (math.log(vocab) + 0.5)) < 0.2

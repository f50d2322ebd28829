"""Exact evaluation: every target of the split counted once, whatever the block size."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from bigramlm.errors import BigramLMError
from bigramlm.evaluation import evaluate_ids, summarize, total_nats
from bigramlm.models import build_model


@pytest.mark.parametrize("block_size", [1, 3, 8, 50])
def test_bigram_eval_is_sum_over_all_pairs(block_size: int) -> None:
    torch.manual_seed(0)
    model = build_model("bigram", {"vocab_size": 11, "block_size": 8})
    ids = torch.randint(11, (1003,), generator=torch.Generator().manual_seed(3))
    nats, tokens = total_nats(model, ids, block_size=block_size, batch_windows=7)
    log_probs = F.log_softmax(model.token_embedding_table.weight.detach().double(), dim=-1)
    expected = -log_probs[ids[:-1], ids[1:]].sum().item()
    assert tokens == 1002
    assert nats == pytest.approx(expected, rel=1e-6)


def test_summary_units() -> None:
    result = summarize("val", nats=200.0, tokens=100)
    assert result.loss == 2.0
    assert result.bits_per_char == pytest.approx(2.0 / math.log(2))
    assert result.perplexity == pytest.approx(math.exp(2.0))
    assert set(result.to_dict()) == {"split", "loss", "bits_per_char", "perplexity", "tokens"}


def test_eval_restores_training_mode_and_rejects_tiny_split() -> None:
    model = build_model("bigram", {"vocab_size": 4, "block_size": 2})
    model.train()
    evaluate_ids(model, torch.tensor([0, 1, 2, 3]))
    assert model.training
    with pytest.raises(BigramLMError):
        evaluate_ids(model, torch.tensor([1]))

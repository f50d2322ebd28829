"""Splits and batches: y is x shifted by one, windows stay in bounds, seeds reproduce."""

from __future__ import annotations

import pytest
import torch

from bigramlm.data.batching import check_block_size, get_batch
from bigramlm.data.text import split_text
from bigramlm.errors import BigramLMError


def test_y_is_x_shifted_by_one() -> None:
    data = torch.arange(1000) * 7  # every window is identifiable from its first value
    g = torch.Generator().manual_seed(0)
    x, y = get_batch(data, batch_size=64, block_size=8, generator=g)
    assert x.shape == y.shape == (64, 8)
    assert x.dtype == y.dtype == data.dtype
    assert torch.equal(x[:, 1:], y[:, :-1])
    for row_x, row_y in zip(x, y):
        start = int(row_x[0]) // 7
        assert torch.equal(row_x, data[start : start + 8])
        assert torch.equal(row_y, data[start + 1 : start + 9])


def test_matches_notebook_loop_for_same_starts() -> None:
    # Same random starts as the notebook's draw, so the one-gather batch must equal
    # its Python loop of slices and torch.stack.
    data = torch.randint(65, (5000,), generator=torch.Generator().manual_seed(1))
    x, y = get_batch(data, 32, 8, torch.Generator().manual_seed(42))
    ix = torch.randint(len(data) - 8, (32,), generator=torch.Generator().manual_seed(42))
    assert torch.equal(x, torch.stack([data[i : i + 8] for i in ix]))
    assert torch.equal(y, torch.stack([data[i + 1 : i + 9] for i in ix]))


def test_reproducible_with_seed() -> None:
    data = torch.arange(10_000)
    a = get_batch(data, 16, 8, torch.Generator().manual_seed(1337))
    b = get_batch(data, 16, 8, torch.Generator().manual_seed(1337))
    c = get_batch(data, 16, 8, torch.Generator().manual_seed(1338))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], c[0])


def test_shortest_possible_split_stays_in_bounds() -> None:
    data = torch.arange(9)  # exactly one window of 8 plus its target
    x, y = get_batch(data, 5, 8, torch.Generator().manual_seed(0))
    assert torch.equal(x, torch.arange(8).expand(5, 8))
    assert torch.equal(y, torch.arange(1, 9).expand(5, 8))


def test_block_size_must_be_shorter_than_split() -> None:
    check_block_size(torch.arange(9), 8)
    with pytest.raises(BigramLMError, match="block_size 9 is not shorter"):
        check_block_size(torch.arange(9), 9)
    with pytest.raises(BigramLMError):
        check_block_size(torch.arange(9), 0)


def test_text_split_is_contiguous_ninety_percent() -> None:
    text = "".join(chr(97 + i % 26) for i in range(1001))
    tr, va = split_text(text)
    assert tr + va == text and len(tr) == 900


def test_row_batches_start_where_rows_start() -> None:
    from bigramlm.data.batching import get_row_batch, row_starts_that_fit

    data = torch.arange(100)
    starts = torch.tensor([0, 7, 30, 55, 90, 97])
    fit = row_starts_that_fit(starts, len(data), block_size=8)
    assert fit.tolist() == [0, 7, 30, 55, 90]  # 97 + 8 + 1 tokens would run past the end
    x, y = get_row_batch(data, fit, batch_size=64, block_size=8, generator=torch.Generator().manual_seed(0))
    assert set(x[:, 0].tolist()) <= set(fit.tolist())
    assert torch.equal(y, x + 1)


def test_training_with_row_batches_sees_whole_rows(tmp_path) -> None:
    """batching="rows" encodes each row on its own (the same ids as the whole text) and
    starts every window at a row; plain text has no rows to start at."""
    from bigramlm.data import load_data
    from bigramlm.errors import BigramLMError
    from bigramlm.training import TrainConfig, train
    from desk_helpers import write_support_csv

    data = load_data(str(write_support_csv(tmp_path / "s.csv")))
    seen: list[torch.Tensor] = []
    config = TrainConfig(steps=3, batching="rows", block_size=16, batch_size=4, eval_every=3, checkpoint_every=3)
    train(data, tmp_path / "run", config=config, progress=False, after_step=lambda step, model: None,
          on_step=lambda step, loss: seen.append(loss))
    assert len(seen) == 3
    text = tmp_path / "plain.txt"
    text.write_text("no rows here. " * 50, encoding="utf-8")
    with pytest.raises(BigramLMError, match="batching"):
        train(load_data(str(text)), tmp_path / "run2", config=config, progress=False)

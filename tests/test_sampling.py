"""The bigram's O(1)-per-character Markov sampler: right distribution, seeds, streaming."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bigramlm.models import build_model
from bigramlm.generation import MarkovChainSampler, filter_logits, generate_ids, generate_text
from bigramlm.tokenization import CharTokenizer


def test_markov_sampler_matches_transition_probabilities() -> None:
    probs = np.array([[0.1, 0.6, 0.3], [0.5, 0.0, 0.5], [0.2, 0.2, 0.6]])
    sampler = MarkovChainSampler(probs, seed=0)
    states = [0] + [s for chunk in sampler.walk(0, 200_000) for s in chunk]
    counts = np.zeros((3, 3))
    np.add.at(counts, (states[:-1], states[1:]), 1)
    empirical = counts / counts.sum(axis=1, keepdims=True)
    assert np.abs(empirical - probs).max() < 0.01
    assert counts[1, 1] == 0  # a zero-probability transition never happens


def test_generate_uses_only_the_last_token_and_seed_reproduces() -> None:
    torch.manual_seed(0)
    model = build_model("bigram", {"vocab_size": 5, "block_size": 8})
    a = [t for c in generate_ids(model, [1, 2, 3], 500, seed=11) for t in c]
    b = [t for c in generate_ids(model, [4, 0, 3], 500, seed=11) for t in c]
    c = [t for c in generate_ids(model, [3], 500, seed=12) for t in c]
    assert len(a) == 500 and a == b  # same last token, same seed: same chain
    assert a != c
    assert [t for ch in generate_ids(model, [3], 0, seed=1) for t in ch] == []


def test_greedy_follows_the_argmax_chain() -> None:
    model = build_model("bigram", {"vocab_size": 4, "block_size": 8})
    table = torch.full((4, 4), -5.0)
    for i, nxt in enumerate([2, 0, 3, 1]):
        table[i, nxt] = 5.0
    model.load_log_probs(table)
    out = [t for c in generate_ids(model, [0], 6, temperature=0.0) for t in c]
    assert out == [2, 3, 1, 0, 2, 3]


def test_top_k_and_top_p_restrict_the_support() -> None:
    logits = torch.tensor([[3.0, 2.0, 1.0, 0.0]])
    assert (filter_logits(logits, top_k=2)[0, 2:] == 0).all()
    probs = filter_logits(logits, top_p=0.5)
    assert probs[0, 0] == 1.0  # the first token alone holds more than half the mass
    assert filter_logits(logits).sum().item() == pytest.approx(1.0)


def test_text_streams_in_chunks() -> None:
    tok = CharTokenizer.from_text("ab\n")
    model = build_model("bigram", {"vocab_size": tok.vocab_size, "block_size": 8})
    chunks = list(generate_text(model, tok, "", 20_000, seed=0))
    assert len(chunks) > 1  # streamed, not one string at the end
    assert sum(len(c) for c in chunks) == 20_000


def test_stop_strings_end_a_sample_everywhere(tmp_path, capsys) -> None:
    """generate_text, bl.sample and `bigramlm sample --stop` stop before the stop text."""
    import bigramlm as bl
    from bigramlm.cli import main

    corpus = tmp_path / "c.txt"
    corpus.write_text("ab\ncd\n" * 200, encoding="utf-8")
    run = tmp_path / "run"
    assert main(["train", "--data", str(corpus), "--method", "counts", "--out", str(run), "--json"]) == 0
    capsys.readouterr()
    full = bl.sample(str(run), "a", 200, seed=1)
    assert "\n" in full
    cut = bl.sample(str(run), "a", 200, seed=1, stop=["\n"])
    assert cut == full[: full.index("\n")]
    assert main(["sample", str(run), "--prompt", "a", "--tokens", "200", "--seed", "1", "--stop", "\\n"]) == 0
    assert capsys.readouterr().out == cut + "\n"


def test_draw_tokens_samples_the_nucleus_of_filter_logits() -> None:
    """The fast top-p path (nucleus among the likeliest candidates, full sort for wide rows)
    draws from exactly the distribution ``filter_logits`` gives."""
    from bigramlm.generation.filters import NUCLEUS_CANDIDATES, draw_tokens, filter_logits, uniforms

    g = torch.Generator().manual_seed(0)
    peaked = torch.randn(1, 512, generator=g) * 4  # a narrow nucleus: the fast path
    flat = torch.zeros(1, 512)  # every token equally likely: wider than the candidates, the fallback
    for logits in (peaked, flat):
        want = filter_logits(logits, 0.8, None, 0.9)[0]
        u = uniforms(1, np.zeros(20_000, dtype=np.int64), np.arange(20_000))
        draws = draw_tokens(logits.expand(20_000, -1), 0.8, None, 0.9, u)
        seen = torch.bincount(draws, minlength=512).float() / draws.numel()
        assert set(draws.tolist()) <= set(want.nonzero().squeeze(1).tolist())  # never outside the nucleus
        assert (seen - want).abs().max() < 0.02
    assert int((filter_logits(flat, 0.8, None, 0.9)[0] > 0).sum()) > NUCLEUS_CANDIDATES

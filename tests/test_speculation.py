"""Speculative decoding (generation.speculation): drafts change how fast a row decodes,
never what it says. Greedy rows are identical token for token to plain decoding, sampled
rows follow the model's distribution exactly, and the KV cache's holes and compaction
keep every row as it would be alone."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from bigramlm.errors import BigramLMError
from bigramlm.generation import Sampling, batch, encode_prompt, generate, stream
from bigramlm.generation.filters import filter_logits
from bigramlm.generation.speculation import DecodeStats, Drafter, Speculation
from bigramlm.tokenization.char import CharTokenizer

from conftest import REPLY


@pytest.fixture(scope="module")
def trained(repeating_gpt):
    return repeating_gpt


def _prompts(tokenizer: CharTokenizer, count: int) -> list[list[int]]:
    rng = random.Random(0)
    text = (REPLY + " ") * 2
    return [encode_prompt(tokenizer, text[(s := rng.randrange(60)) : s + rng.randrange(2, 40)]) for _ in range(count)]


def test_greedy_speculative_output_is_plain_decoding_token_for_token(trained, monkeypatch) -> None:
    model, tokenizer = trained
    monkeypatch.setattr(batch, "SPECULATE_ROWS", 64)  # speculate in every batch here
    prompts = _prompts(tokenizer, 40)
    sources = [[encode_prompt(tokenizer, REPLY), encode_prompt(tokenizer, "we will refund")]] * len(prompts)
    greedy = Sampling(temperature=0)
    for rows_per_batch, draft in ((64, 8), (7, 3), (1, 16)):
        # (A batch ends where its longest prompt would outgrow the block: compare like batches.)
        plain = generate(model, tokenizer, prompts, 60, greedy, stop=["\n"], rows_per_batch=rows_per_batch, speculate=None)
        stats = DecodeStats()
        fast = generate(model, tokenizer, prompts, 60, greedy, stop=["\n"], rows_per_batch=rows_per_batch,
                        speculate=Speculation(draft_tokens=draft), sources=sources, stats=stats)
        assert fast == plain
        assert stats.accepted > 0 and stats.passes < stats.tokens  # drafts were kept: fewer passes than tokens
    # Without sources the rows draft from their own text (the prompt, the reply so far).
    assert generate(model, tokenizer, prompts, 60, greedy, stop=["\n"], rows_per_batch=1) == plain


def test_sampled_rows_and_mixed_greedy_rows_match_plain_decoding(trained) -> None:
    """Each draw is a function of (seed, row, position), so speculation and batching change
    nothing about which token a sampled row draws, given the same logits."""
    model, tokenizer = trained
    prompts = _prompts(tokenizer, 12)
    sources = [[encode_prompt(tokenizer, REPLY)]] * len(prompts)
    sampling = Sampling(temperature=0.8, top_p=0.95)
    greedy = [i % 3 == 0 for i in range(len(prompts))]
    plain = generate(model, tokenizer, prompts, 50, sampling, seed=7, greedy=greedy, speculate=None)
    fast = generate(model, tokenizer, prompts, 50, sampling, seed=7, greedy=greedy, sources=sources, rows_per_batch=5)
    same = sum(a == b for a, b in zip(plain, fast))
    assert same >= len(prompts) - 1  # a float-level tie between the two passes' logits may flip one draw
    streamed = ["" for _ in prompts]
    for row, piece in stream(model, tokenizer, prompts, 50, sampling, seed=7, greedy=greedy, sources=sources):
        streamed[row] += piece
    assert streamed == fast


def test_speculative_sampling_draws_from_the_model_distribution(trained, monkeypatch) -> None:
    """Statistical check: the first two tokens of 6,000 speculative rows, against the exact
    joint distribution the model gives them (drafts are offered at every position)."""
    model, tokenizer = trained
    monkeypatch.setattr(batch, "SPECULATE_ROWS", 6000)  # one batch
    prompt = encode_prompt(tokenizer, "thank you for cont")
    vocab = tokenizer.vocab_size
    sampling = Sampling(temperature=1.5)  # flatten the learned text so several tokens are likely
    with torch.no_grad():
        first = filter_logits(model(torch.tensor([prompt]))[0][0, -1], 1.5)
        second = filter_logits(model(torch.tensor([prompt + [t] for t in range(vocab)]))[0][:, -1], 1.5)
    joint = (first.unsqueeze(1) * second).double()  # (V, V): P(t1, t2)
    rows = 6000
    stats = DecodeStats()
    drafts = [[encode_prompt(tokenizer, "act us about your order"), encode_prompt(tokenizer, "ontacting")]]
    texts = generate(model, tokenizer, [prompt] * rows, 3, sampling, seed=3, rows_per_batch=rows,
                     sources=drafts * rows, stats=stats)
    assert stats.accepted > 0.2 * rows  # the drafts were kept often enough to matter
    pairs = np.array([tokenizer.encode(t[:2]) for t in texts])
    seen = np.zeros((vocab, vocab))
    np.add.at(seen, (pairs[:, 0], pairs[:, 1]), 1)
    expected = joint.numpy() * rows
    cells = expected >= 5  # a chi-square test over the cells with enough mass, the rest pooled
    observed = np.append(seen[cells], seen[~cells].sum())
    wanted = np.append(expected[cells], expected[~cells].sum())
    chi2 = float(((observed - wanted) ** 2 / np.maximum(wanted, 1e-9)).sum())
    dof = len(observed) - 1
    assert chi2 < dof + 5 * np.sqrt(2 * dof), (chi2, dof)  # about 5 standard deviations


def test_holes_and_compaction_keep_each_row_as_it_would_be_alone(trained) -> None:
    """Rows that keep different numbers of draft tokens leave holes in a shared cache; a
    cache full of holes compacts. A budget that fills the block forces both."""
    model, tokenizer = trained
    prompts = [encode_prompt(tokenizer, p) for p in ("thank you", "we will refund the", "please send the inv", "zq")]
    sources = [[encode_prompt(tokenizer, REPLY), encode_prompt(tokenizer, "please send the invoice number")]] * 4
    greedy = Sampling(temperature=0)
    alone = [generate(model, tokenizer, [p], 76, greedy, speculate=None)[0] for p in prompts]
    stats = DecodeStats()
    together = generate(model, tokenizer, prompts, 76, greedy, sources=sources, speculate=Speculation(draft_tokens=12),
                        stats=stats)
    assert stats.drafted > stats.accepted > 0
    assert together == alone


def test_big_batches_decode_one_token_per_pass(trained) -> None:
    """Where a pass is bound by arithmetic (many rows), verifying drafts costs more than it saves."""
    model, tokenizer = trained
    prompts = _prompts(tokenizer, batch.SPECULATE_ROWS + 1)
    stats = DecodeStats()
    generate(model, tokenizer, prompts, 20, Sampling(temperature=0), sources=[[encode_prompt(tokenizer, REPLY)]] * len(prompts),
             rows_per_batch=len(prompts), stats=stats)
    assert stats.drafted == 0 and stats.passes == 19


def test_drafter_proposes_what_followed_the_longest_match() -> None:
    drafter = Drafter(Speculation(draft_tokens=3, max_match=3, min_match=1), [[1, 2, 3]], [[[9, 2, 3, 4, 5, 6], [2, 3, 7]]])
    assert drafter.propose(0, 10) == [4, 5, 6]  # "2 3" matched in the first reply
    drafter.push(0, 4)
    assert drafter.propose(0, 2) == [5, 6]  # "2 3 4": the longest match, cut to the limit
    drafter.push(0, 8)
    assert drafter.propose(0, 5) == []  # nothing ends in 8
    drafter.push(0, 1)
    assert drafter.propose(0, 5) == [2, 3, 4]  # "8 1" is new; "1" began the row itself (cut to draft_tokens)


def test_speculation_settings_name_the_parameter() -> None:
    with pytest.raises(BigramLMError, match="draft_tokens"):
        Speculation(draft_tokens=0)
    with pytest.raises(BigramLMError, match="min_match"):
        Speculation(max_match=1, min_match=2)

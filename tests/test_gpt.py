"""The GPT: shapes, causality, the KV cache, presets, BPE and bits per character."""

from __future__ import annotations

import math

import pytest
import torch

from bigramlm.errors import BigramLMError
from bigramlm.evaluation import summarize, total_nats
from bigramlm.models import build_model, model_names
from bigramlm.models.gpt import GPTConfig
from bigramlm.models.presets import PRESETS
from bigramlm.generation import Sampling, encode_prompt, generate, generate_ids, stream
from bigramlm.tokenization import CharTokenizer, tokenizer_from_dict

V = 37


def _tiny(**overrides) -> torch.nn.Module:
    torch.manual_seed(0)
    config = {"vocab_size": V, "block_size": 16, "n_layer": 2, "n_head": 2, "n_embd": 32, **overrides}
    return build_model("gpt", config).eval()


def test_registered_and_shapes() -> None:
    assert "gpt" in model_names()
    model = _tiny()
    idx = torch.randint(V, (3, 16))
    logits, loss = model(idx)
    assert logits.shape == (3, 16, V) and loss is None
    logits, loss = model(idx, torch.randint(V, (3, 16)))
    # Careful init: the first loss sits near ln V (near-uniform predictions).
    assert abs(loss.item() - math.log(V)) < 0.3
    assert model.get_block_size() == 16


def test_head_is_tied_and_state_dict_has_no_alias() -> None:
    model = _tiny()
    keys = set(model.state_dict())
    assert "tok_emb.weight" in keys and not any(k.startswith("head") for k in keys)
    # Biases are off; every matrix decays, every LayerNorm gain does not.
    decay, no_decay = model.optimizer_groups(0.1)
    assert all(p.dim() == 2 for p in decay["params"]) and all(p.dim() == 1 for p in no_decay["params"])
    assert no_decay["weight_decay"] == 0.0


def test_causal_future_tokens_do_not_change_earlier_logits() -> None:
    model = _tiny()
    idx = torch.randint(V, (2, 16))
    changed = idx.clone()
    changed[:, 10:] = (changed[:, 10:] + 1) % V
    a, _ = model(idx)
    b, _ = model(changed)
    assert torch.allclose(a[:, :10], b[:, :10], atol=1e-6)
    assert not torch.allclose(a[:, 10:], b[:, 10:])


def test_longer_than_block_is_an_error() -> None:
    with pytest.raises(BigramLMError, match="block size"):
        _tiny()(torch.zeros(1, 17, dtype=torch.long))


def test_config_validation() -> None:
    with pytest.raises(BigramLMError, match="multiple"):
        GPTConfig(vocab_size=10, n_embd=30, n_head=4)
    with pytest.raises(BigramLMError, match="dropout"):
        GPTConfig(vocab_size=10, dropout=1.0)


def test_presets() -> None:
    assert PRESETS["baby"] == {"n_layer": 6, "n_head": 6, "n_embd": 384, "block_size": 256, "dropout": 0.2}
    for name, preset in PRESETS.items():
        GPTConfig(vocab_size=65, **preset)  # every preset is a valid config


def test_kv_cache_logits_match_full_forward() -> None:
    model = _tiny()
    idx = torch.randint(V, (2, 16))
    full, _ = model(idx)
    cache = model.new_cache(2)
    prefix, _ = model(idx[:, :5], cache=cache)
    steps = [model(idx[:, t : t + 1], cache=cache)[0] for t in range(5, 16)]
    assert torch.allclose(torch.cat([prefix, *steps], dim=1), full, atol=1e-5)


@pytest.mark.parametrize("bias", [False, True])
def test_one_position_decode_step_is_the_generic_forward_bit_for_bit(bias: bool) -> None:
    """Eval-mode cached steps take a lean functional path; in train mode (dropout 0) the
    same call runs the module-by-module forward. Both must give identical numbers."""
    model = _tiny(bias=bias, dropout=0.0)
    idx = torch.randint(V, (3, 16))

    def cached_steps(training: bool) -> tuple[torch.Tensor, list[torch.Tensor]]:
        model.train(training)
        cache = model.new_cache(3)
        with torch.no_grad():
            model(idx[:, :4], cache=cache)
            logits = torch.cat([model(idx[:, t : t + 1], cache=cache)[0] for t in range(4, 16)], dim=1)
        return logits, cache.keys

    lean, lean_keys = cached_steps(False)
    generic, generic_keys = cached_steps(True)
    assert lean.shape == (3, 12, V)
    assert torch.equal(lean, generic)
    assert all(torch.equal(a, b) for a, b in zip(lean_keys, generic_keys))


def test_a_model_held_in_bf16_runs_and_generates() -> None:
    model = _tiny().to(torch.bfloat16)
    logits, _ = model(torch.randint(V, (2, 16)))
    assert logits.dtype == torch.bfloat16
    out = [t for chunk in generate_ids(model, [1, 2], 20, temperature=1.0, seed=0) for t in chunk]
    assert len(out) == 20


@pytest.mark.parametrize("temperature,seed", [(0.0, 0), (1.0, 123)])
def test_generation_with_cache_equals_without(temperature: float, seed: int) -> None:
    model = _tiny()
    prompt = [1, 2, 3]
    n = 16 - len(prompt)  # within the block both paths see exactly the same context
    cached = [t for chunk in generate_ids(model, prompt, n, temperature=temperature, seed=seed) for t in chunk]
    naive = [t for chunk in generate_ids(model, prompt, n, temperature=temperature, seed=seed, kv_cache=False) for t in chunk]
    assert cached == naive and len(cached) == n


def test_generation_past_the_block_crops() -> None:
    model = _tiny()
    out = [t for chunk in generate_ids(model, [1] * 40, 50, temperature=1.0, seed=1) for t in chunk]
    assert len(out) == 50 and all(0 <= t < V for t in out)


def test_batched_candidates_with_cache_equal_naive() -> None:
    tokenizer = CharTokenizer.from_text("abcdefghijklmnopqrstuvwxyz .\n")
    torch.manual_seed(0)
    model = build_model("gpt", {"vocab_size": tokenizer.vocab_size, "block_size": 32, "n_layer": 1, "n_head": 2, "n_embd": 16}).eval()
    args = (model, tokenizer, [encode_prompt(tokenizer, "the cat")] * 3, 20, Sampling(1.0), 4, ["."])
    cached = list(stream(*args))
    naive = list(stream(*args, kv_cache=False))
    assert cached == naive
    assert {i for i, _ in cached} <= {0, 1, 2}


def test_bpe_round_trip_and_save_load() -> None:
    from bigramlm.tokenization.bpe import BPETokenizer

    text = "First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n" * 20
    tokenizer = BPETokenizer.train(text, 300)
    assert tokenizer.kind == "bpe" and tokenizer.vocab_size == 300
    for sample in (text, "  leading spaces\r\n", "héllo wörld — 🎉 ünïcode\n\n", ""):
        assert tokenizer.decode(tokenizer.encode(sample)) == sample
    assert len(tokenizer.encode(text)) < len(text) / 2  # merges were learned
    again = tokenizer_from_dict(tokenizer.to_dict())
    assert again.encode(text).tolist() == tokenizer.encode(text).tolist()
    with pytest.raises(BigramLMError, match="vocab_size"):
        BPETokenizer.train(text, 100)


def test_bits_per_char_arithmetic() -> None:
    # 120 nats over 100 tokens that spell 250 characters.
    result = summarize("val", 120.0, 100, characters=250)
    assert result.loss == pytest.approx(1.2)
    assert result.bits_per_char == pytest.approx(120.0 / 250 / math.log(2))
    # A char tokenizer: bits/char is loss / ln 2.
    assert summarize("val", 120.0, 100).bits_per_char == pytest.approx(1.2 / math.log(2))


def test_total_nats_matches_hand_sum() -> None:
    model = _tiny()
    ids = torch.randint(V, (50,))
    nats, tokens = total_nats(model, ids, block_size=16)
    expected = 0.0
    for start in range(0, 49, 16):  # consecutive windows; the last is shorter
        x = ids[start : min(start + 16, 49)]
        y = ids[start + 1 : start + 1 + len(x)]
        logits, _ = model(x.unsqueeze(0))
        expected += torch.nn.functional.cross_entropy(logits[0], y, reduction="sum").item()
    assert tokens == 49 and nats == pytest.approx(expected, rel=1e-5)


def _greedy(decoder, steps: int) -> list[list[int]]:
    rows: list[list[int]] = [[] for _ in range(decoder.logits.size(0))]
    for i in range(steps):
        tokens = decoder.logits.argmax(-1)
        for row, token in zip(rows, tokens.tolist()):
            row.append(token)
        if i + 1 < steps:
            decoder.push(tokens)
    return rows


@pytest.mark.parametrize("steps", [5, 17])
def test_rows_of_different_prompt_lengths_decode_as_they_would_alone(steps: int) -> None:
    """Left padding is masked and positions count per row: while the cache has room
    (7 + 17 tokens fill the block of 24), batching changes no row's tokens."""
    from bigramlm.generation.decoding import CachedDecoder, WindowDecoder

    torch.manual_seed(0)
    model = build_model("gpt", {"vocab_size": 40, "block_size": 24, "n_layer": 2, "n_head": 2, "n_embd": 32}).eval()
    contexts = [[3, 4, 5, 6, 7, 8, 9], [11, 12], [20, 21, 22, 23]]
    with torch.no_grad():
        together = _greedy(CachedDecoder(model, contexts), steps)
        alone = [_greedy(CachedDecoder(model, [c]), steps)[0] for c in contexts]
        naive = _greedy(WindowDecoder(model, contexts), steps)
        past_the_block = _greedy(CachedDecoder(model, contexts), 60)
    assert together == alone == naive
    assert all(len(row) == 60 for row in past_the_block)  # the full cache is rebuilt, never overrun


def test_generate_batch_equals_one_prompt_at_a_time() -> None:
    """Batched greedy decoding, with rows of different lengths that stop at different
    times and leave the batch, gives each prompt the text it gets alone; streamed, the
    same text piece by piece."""
    text = "abcabcabd\nxyzzy\nabcxyz\n" * 20
    tokenizer = CharTokenizer.from_text(text)
    torch.manual_seed(1)
    model = build_model("gpt", {"vocab_size": tokenizer.vocab_size, "block_size": 48, "n_layer": 2, "n_head": 2, "n_embd": 32})
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    ids = torch.tensor(tokenizer.encode(text))
    for _ in range(30):  # a little training, so that some rows reach the stop string
        _, loss = model(ids[:-1][:47].view(1, -1), ids[1:][:47].view(1, -1))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    prompts = [encode_prompt(tokenizer, p) for p in ["abc", "xyzzy\nab", "a", "zzz\nabcabc"]]
    greedy = Sampling(0.0)
    together = generate(model, tokenizer, prompts, 20, greedy, stop=["\n"], rows_per_batch=3)
    alone = [generate(model, tokenizer, [p], 20, greedy, stop=["\n"])[0] for p in prompts]
    assert together == alone
    assert all("\n" not in t for t in together)
    pieces = [""] * len(prompts)
    for row, piece in stream(model, tokenizer, prompts, 20, greedy, stop=["\n"], rows_per_batch=3):
        pieces[row] += piece
    assert pieces == together


def test_streamed_bpe_pieces_never_split_a_character_and_add_up_to_the_text() -> None:
    """Byte-level BPE tokens can end inside a character: a streamed piece never shows half
    of one, and every row's pieces concatenate to the text of the unstreamed decode, with
    its stop string cut, for greedy and sampled rows alike."""
    from bigramlm.tokenization.bpe import BPETokenizer

    text = "Grüße aus Köln, 東京 🙂 and café. Naïve résumé! " * 30
    tokenizer = BPETokenizer.train(text, 300)
    torch.manual_seed(3)
    model = build_model("gpt", {"vocab_size": tokenizer.vocab_size, "block_size": 64, "n_layer": 1, "n_head": 2, "n_embd": 16})
    prompts = [encode_prompt(tokenizer, p) for p in ["Grü", "東", "caf", "🙂"]] * 2
    greedy_rows = [True, False] * 4
    for sampling, stop in ((Sampling(1.0), ["!"]), (Sampling(1.5, top_p=0.9), []), (Sampling(0.0), ["é"])):
        texts = generate(model, tokenizer, prompts, 40, sampling, seed=5, stop=stop, greedy=greedy_rows, rows_per_batch=3)
        pieces: list[list[str]] = [[] for _ in prompts]
        for row, piece in stream(model, tokenizer, prompts, 40, sampling, seed=5, stop=stop, greedy=greedy_rows, rows_per_batch=3):
            pieces[row].append(piece)
        assert ["".join(p) for p in pieces] == texts
        assert all(not any(s in t for s in stop) for t in texts)
    # The detokenizer on its own, fed a real text's tokens one at a time: whole characters only.
    from bigramlm.generation import Detokenizer

    detokenizer = Detokenizer(tokenizer)
    unseen = text[:100] + " Ω≈ç√∫ 😀🎉 done"  # characters the merges never saw: split into bytes
    ids = tokenizer.encode(unseen)
    shown = [detokenizer.add(int(t)) for t in ids] + [detokenizer.flush()]
    assert "".join(shown) == unseen and not any("\ufffd" in piece for piece in shown)
    assert sum(not piece for piece in shown) > 1  # some tokens ended inside a character and waited


def test_a_missing_seed_is_random_and_a_seed_repeats() -> None:
    model = _tiny()
    tokenizer = CharTokenizer.from_text("abcdefghijklmnopqrstuvwxyz0123456789 ")
    prompts = [encode_prompt(tokenizer, "abc")] * 4
    seeded = [generate(model, tokenizer, prompts, 12, Sampling(1.0), seed=9) for _ in range(2)]
    unseeded = [generate(model, tokenizer, prompts, 12, Sampling(1.0)) for _ in range(3)]
    assert seeded[0] == seeded[1]
    assert len({tuple(u) for u in unseeded}) > 1


def test_multi_position_steps_on_padded_rows_are_the_generic_forward_bit_for_bit() -> None:
    """A speculative decode verifies several positions per row at once, on left-padded rows
    of a shared cache: the lean path and the module-by-module forward agree exactly."""
    model = _tiny(bias=False, dropout=0.0)
    idx = torch.randint(V, (3, 16))
    pad = torch.tensor([0, 2, 5])

    def steps(training: bool) -> torch.Tensor:
        model.train(training)
        cache = model.new_cache(3, pad)
        with torch.no_grad():
            model(idx[:, :6], cache=cache)
            return torch.cat([model(idx[:, t : t + 3], cache=cache)[0] for t in (6, 9, 12)], dim=1)

    assert torch.equal(steps(False), steps(True))

"""LeanAdamW: the same update as torch.optim.AdamW, bit for bit, and a faithful state_dict."""

from __future__ import annotations

import torch

from bigramlm.models import build_model
from bigramlm.training.optim import LeanAdamW, wants_lean_optimizer


def _step(model, optimizer, x, y) -> None:
    optimizer.zero_grad(set_to_none=True)
    _, loss = model(x, y)
    loss.backward()
    optimizer.step()


def test_matches_torch_adamw_bit_for_bit() -> None:
    torch.manual_seed(0)
    ours = build_model("bigram", {"vocab_size": 17, "block_size": 8})
    ref = build_model("bigram", {"vocab_size": 17, "block_size": 8})
    ref.load_state_dict(ours.state_dict())
    opt_ours = LeanAdamW(ours.parameters(), lr=3e-2, betas=(0.9, 0.95), weight_decay=0.1)
    opt_ref = torch.optim.AdamW(ref.parameters(), lr=3e-2, betas=(0.9, 0.95), weight_decay=0.1)
    g = torch.Generator().manual_seed(1)
    for step in range(60):
        x, y = torch.randint(17, (16, 8), generator=g), torch.randint(17, (16, 8), generator=g)
        for group in (*opt_ours.param_groups, *opt_ref.param_groups):
            group["lr"] = 3e-2 * (1 - step / 100)  # the trainer's schedules set lr like this
        _step(ours, opt_ours, x, y)
        _step(ref, opt_ref, x, y)
    assert torch.equal(ours.token_embedding_table.weight, ref.token_embedding_table.weight)


def test_state_dict_round_trip_continues_identically() -> None:
    torch.manual_seed(0)
    a = build_model("bigram", {"vocab_size": 9, "block_size": 4})
    opt_a = LeanAdamW(a.parameters(), lr=1e-2)
    g = torch.Generator().manual_seed(2)
    batches = [(torch.randint(9, (8, 4), generator=g), torch.randint(9, (8, 4), generator=g)) for _ in range(20)]
    for x, y in batches[:10]:
        _step(a, opt_a, x, y)
    b = build_model("bigram", {"vocab_size": 9, "block_size": 4})
    b.load_state_dict(a.state_dict())
    opt_b = LeanAdamW(b.parameters(), lr=5.0)  # the loaded groups must win over these
    saved = opt_a.state_dict()
    assert list(saved["state"]) == [0] and saved["param_groups"][0]["params"] == [0]
    opt_b.load_state_dict(saved)
    assert opt_b.param_groups[0]["lr"] == 1e-2
    for x, y in batches[10:]:
        _step(a, opt_a, x, y)
        _step(b, opt_b, x, y)
    assert torch.equal(a.token_embedding_table.weight, b.token_embedding_table.weight)


def test_matches_torch_adamw_with_the_gpts_decay_groups() -> None:
    """The GPT trains with LeanAdamW on CPU: its two groups (decay, no decay) and bf16 autocast."""
    torch.manual_seed(0)
    config = {"vocab_size": 11, "block_size": 8, "n_layer": 1, "n_head": 2, "n_embd": 16}
    ours, ref = build_model("gpt", config), build_model("gpt", config)
    ref.load_state_dict(ours.state_dict())
    opt_ours = LeanAdamW(ours.optimizer_groups(0.1), lr=8e-3, betas=(0.9, 0.99))
    opt_ref = torch.optim.AdamW(ref.optimizer_groups(0.1), lr=8e-3, betas=(0.9, 0.99))
    assert opt_ours.param_groups[1]["weight_decay"] == 0.0
    g = torch.Generator().manual_seed(3)
    for _ in range(15):
        x, y = torch.randint(11, (4, 8), generator=g), torch.randint(11, (4, 8), generator=g)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            _step(ours, opt_ours, x, y)
            _step(ref, opt_ref, x, y)
    for (name, a), b in zip(ours.named_parameters(), ref.parameters()):
        assert torch.equal(a, b), name


def test_every_cpu_run_gets_it_and_accelerators_keep_torch_optim() -> None:
    assert wants_lean_optimizer("cpu")
    assert not wants_lean_optimizer("meta")
    assert not wants_lean_optimizer("cuda")

"""Two-process DistributedDataParallel training on CPU (gloo over 127.0.0.1).

Each rank runs the real ``train`` as torchrun would start it (RANK, WORLD_SIZE,
MASTER_ADDR, MASTER_PORT in the environment). The test checks that both ranks hold
identical parameters after every step, and that loss and parameters match a
single-process run on the same global batch (the two ranks' batches side by side).
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from bigramlm.data.batching import get_batch
from bigramlm.data import load_data
from bigramlm.models import build_model
from bigramlm.training import default_train_config, train
from bigramlm.training.optim import make_optimizer
from bigramlm.training.schedule import lr_factor

STEPS = 4
MODEL = {"n_layer": 1, "n_head": 2, "n_embd": 16}


def _config():
    return default_train_config(
        "gpt", steps=STEPS, batch_size=3, block_size=8, eval_every=2, checkpoint_every=2, warmup_steps=2, amp="none"
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, port: int, corpus: str, out_dir: str, results: str) -> None:
    os.environ.update({"RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": "2",
                       "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)})
    losses: list[float] = []
    params: list[torch.Tensor] = []

    def after_step(step: int, model: torch.nn.Module) -> None:
        params.append(torch.cat([p.detach().flatten().clone() for p in model.parameters()]))

    result = train(load_data(corpus), out_dir, "gpt", MODEL, _config(), progress=False,
                   on_step=lambda step, loss: losses.append(loss), after_step=after_step)
    torch.save({"losses": losses, "params": params, "val": result.val.loss}, Path(results) / f"rank{rank}.pt")


def _single_process_reference(corpus: str) -> tuple[list[float], list[torch.Tensor]]:
    """The same model, optimizer and schedule, fed both ranks' batches at once."""
    from bigramlm.tokenization import CharTokenizer

    config = _config()
    data = load_data(corpus)
    tokenizer = CharTokenizer.from_text(data.vocab_text)
    ids = torch.from_numpy(tokenizer.encode(data.train_text))
    torch.manual_seed(config.seed)
    model = build_model("gpt", {**MODEL, "vocab_size": tokenizer.vocab_size, "block_size": config.block_size})
    optimizer = make_optimizer(model, config)
    generators = [torch.Generator().manual_seed(config.seed + rank) for rank in range(2)]
    losses, params = [], []
    for step in range(STEPS):
        for group in optimizer.param_groups:
            group["lr"] = config.learning_rate * lr_factor(config, step, step / config.steps)
        batches = [get_batch(ids, config.batch_size, config.block_size, g) for g in generators]
        x = torch.cat([b[0] for b in batches])
        y = torch.cat([b[1] for b in batches])
        optimizer.zero_grad(set_to_none=True)
        _, loss = model(x, y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        optimizer.step()
        losses.append(loss.item())
        params.append(torch.cat([p.detach().flatten().clone() for p in model.parameters()]))
    return losses, params


@pytest.mark.slow
def test_two_process_ddp_matches_single_process(tiny_corpus, tmp_path) -> None:
    results = tmp_path / "results"
    results.mkdir()
    mp.start_processes(_worker, args=(_free_port(), str(tiny_corpus), str(tmp_path / "run"), str(results)),
                       nprocs=2, join=True, start_method="spawn")
    ranks = [torch.load(results / f"rank{r}.pt") for r in range(2)]
    assert len(ranks[0]["params"]) == len(ranks[1]["params"]) == STEPS
    for a, b in zip(ranks[0]["params"], ranks[1]["params"]):
        assert torch.equal(a, b), "ranks diverged"
    assert ranks[0]["losses"] == ranks[1]["losses"]  # the logged loss is the all-reduced mean
    assert ranks[0]["val"] == ranks[1]["val"]  # evaluation is all-reduced too

    losses, params = _single_process_reference(str(tiny_corpus))
    assert ranks[0]["losses"] == pytest.approx(losses, rel=1e-5, abs=1e-6)
    for step, (ddp, single) in enumerate(zip(ranks[0]["params"], params)):
        assert torch.allclose(ddp, single, atol=1e-5), f"step {step + 1}: DDP and single-process parameters differ"
    # Only rank 0 wrote the run.
    assert (tmp_path / "run" / "model.safetensors").exists()

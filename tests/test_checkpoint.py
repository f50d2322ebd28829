"""Checkpoints: identical logits after save/load, and resumed runs equal uninterrupted ones."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from bigramlm.checkpoint import RESUME, load_run
from bigramlm.cli import main
from bigramlm.data import load_data
from bigramlm.training import TrainConfig, train


def _weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(str(run_dir / "model.safetensors"))


def _metrics(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text(encoding="utf-8").splitlines()]


def _assert_same_run(a: Path, b: Path) -> None:
    wa, wb = _weights(a), _weights(b)
    assert wa.keys() == wb.keys()
    for key in wa:
        assert torch.equal(wa[key], wb[key]), key
    assert _metrics(a) == _metrics(b)
    assert json.loads((a / "eval.json").read_text()) == json.loads((b / "eval.json").read_text())


def test_identical_logits_after_save_load(tiny_corpus, tmp_path) -> None:
    data = load_data(str(tiny_corpus))
    config = TrainConfig(steps=30, learning_rate=0.05, eval_every=30, checkpoint_every=30)
    result = train(data, tmp_path / "run", config=config, progress=False)
    run = load_run(result.run_dir)
    x = torch.from_numpy(run.tokenizer.encode(data.val_text[:64])).unsqueeze(0)
    # A model rebuilt from scratch with the saved table, compared bit for bit.
    table = _weights(result.run_dir)["token_embedding_table.weight"]
    logits, _ = run.model(x)
    assert torch.equal(logits[0], table[x[0]])
    again, _ = load_run(result.run_dir).model(x)
    assert torch.equal(logits, again)
    assert run.config.training.steps == 30
    assert run.tokenizer.chars == "".join(sorted(set(data.vocab_text)))


def test_resume_after_interrupt_equals_uninterrupted(tiny_corpus, tmp_path) -> None:
    data = load_data(str(tiny_corpus))
    config = TrainConfig(steps=60, learning_rate=0.02, eval_every=20, checkpoint_every=20, log_every=5)
    whole = train(data, tmp_path / "whole", config=config, progress=False)

    def interrupt(step: int, loss: float) -> None:
        if step == 47:  # after the step-40 checkpoint, mid-way to the next
            raise KeyboardInterrupt

    part = tmp_path / "part"
    with pytest.raises(KeyboardInterrupt):
        train(data, part, config=config, progress=False, on_step=interrupt)
    assert not (part / "eval.json").exists()
    assert max(r["step"] for r in _metrics(part)) == 40
    with open(part / "metrics.jsonl", "a", encoding="utf-8") as f:
        f.write('{"step": 41, "lo')  # what a kill in the middle of an append leaves
    resumed = train(data, part, config=TrainConfig(), resume=True, progress=False)  # config comes from the run
    assert resumed.steps == whole.steps == 60
    _assert_same_run(whole.run_dir, part)


def _logged_step(run_dir: Path) -> int:
    """The last step the run's own metrics file records (0 before the first)."""
    try:
        lines = (run_dir / "metrics.jsonl").read_text(encoding="utf-8").splitlines()
    except OSError:
        return 0
    steps = [json.loads(line)["step"] for line in lines if line.endswith("}")]
    return max(steps, default=0)


def test_real_kill_then_resume_equals_uninterrupted(tiny_corpus, tmp_path) -> None:
    """SIGKILL a real `bigramlm train` between two checkpoints, timed by its own metrics file
    (a line every 10 steps), then --resume it. A run of 20,000 steps takes seconds more than
    the kill needs, so the kill always lands before the end."""
    args = ["--steps", "20000", "--lr", "0.01", "--eval-every", "5000", "--checkpoint-every", "100", "--no-progress"]
    run_dir = tmp_path / "killed"
    proc = subprocess.Popen(
        [sys.executable, "-m", "bigramlm", "train", "--data", str(tiny_corpus), "--out", str(run_dir), *args],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        deadline = time.monotonic() + 120
        while _logged_step(run_dir) < 150 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.002)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL, f"the run ended by itself before the kill (rc {proc.returncode})"
    assert (run_dir / RESUME).exists() and not (run_dir / "eval.json").exists()

    assert main(["train", "--data", str(tiny_corpus), "--out", str(run_dir), "--resume", "--no-progress"]) == 0
    whole = tmp_path / "whole"
    assert main(["train", "--data", str(tiny_corpus), "--out", str(whole), *args]) == 0
    _assert_same_run(whole, run_dir)


def test_resume_without_checkpoint_is_an_error(tiny_corpus, tmp_path, capsys) -> None:
    out = tmp_path / "run"
    assert main(["train", "--data", str(tiny_corpus), "--out", str(out), "--method", "counts"]) == 0
    capsys.readouterr()
    assert main(["train", "--data", str(tiny_corpus), "--out", str(out), "--resume"]) != 0
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "resume" in err and err.count("\n") == 1


def test_resume_refuses_a_swapped_tokenizer(tiny_corpus, tmp_path) -> None:
    data = load_data(str(tiny_corpus))
    config = TrainConfig(steps=40, learning_rate=0.02, eval_every=20, checkpoint_every=20)

    def interrupt(step: int, loss: float) -> None:
        if step == 25:
            raise KeyboardInterrupt

    run = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        train(data, run, config=config, progress=False, on_step=interrupt)
    saved = json.loads((run / "tokenizer.json").read_text(encoding="utf-8"))
    chars = saved["chars"]
    swapped = sorted([*chars[:-1], "\u00e9"])  # same size, another vocabulary
    (run / "tokenizer.json").write_text(json.dumps({**saved, "chars": swapped}), encoding="utf-8")
    from bigramlm.errors import BigramLMError

    with pytest.raises(BigramLMError, match="not the one this checkpoint was trained with"):
        train(data, run, config=config, resume=True, progress=False)

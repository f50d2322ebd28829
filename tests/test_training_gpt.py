"""GPT training: the lr schedule, resume, BPE runs and config.json (time limits: test_time_limit.py)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from bigramlm.checkpoint import load_run
from bigramlm.cli import main
from bigramlm.data import load_data
from bigramlm.training import TrainConfig, default_train_config, train
from bigramlm.training.schedule import lr_factor

TINY = {"n_layer": 1, "n_head": 2, "n_embd": 16}


def _config(**overrides) -> TrainConfig:
    base = dict(steps=20, batch_size=4, block_size=16, eval_every=10, checkpoint_every=5, eval_tokens=64, log_every=1)
    return default_train_config("gpt", **{**base, **overrides})


def _metrics(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text(encoding="utf-8").splitlines()]


def test_lr_schedule_warmup_then_cosine() -> None:
    config = TrainConfig(learning_rate=1.0, warmup_steps=10, lr_schedule="cosine", min_lr_ratio=0.1, steps=100)
    assert lr_factor(config, 0, 0.0) == pytest.approx(0.1)  # first step: 1/10 of warmup
    assert lr_factor(config, 4, 0.0) == pytest.approx(0.5)
    assert lr_factor(config, 9, 0.0) == pytest.approx(1.0)
    assert lr_factor(config, 50, 0.5) == pytest.approx(0.1 + 0.9 * 0.5)  # cosine midpoint
    assert lr_factor(config, 99, 1.0) == pytest.approx(0.1)  # floor
    assert lr_factor(config, 99, 2.0) == pytest.approx(0.1)  # clamped past the end
    linear = TrainConfig(learning_rate=1.0, warmup_steps=0, lr_schedule="linear", min_lr_ratio=0.0)
    assert lr_factor(linear, 10, 0.25) == pytest.approx(0.75) and lr_factor(linear, 10, 1.0) == 0.0
    flat = TrainConfig()  # the notebook's: constant, no warmup
    assert lr_factor(flat, 0, 0.0) == lr_factor(flat, 5000, 0.5) == 1.0


def test_logged_lr_follows_the_schedule(tiny_corpus, tmp_path) -> None:
    config = _config(warmup_steps=5)
    train(load_data(str(tiny_corpus)), tmp_path / "run", "gpt", TINY, config, progress=False)
    lrs = {r["step"]: r["lr"] for r in _metrics(tmp_path / "run") if "lr" in r}
    for step, lr in lrs.items():
        # the lr of step s (1-based) is set before it with progress (s-1)/steps
        assert lr == pytest.approx(config.learning_rate * lr_factor(config, step - 1, (step - 1) / config.steps))
    assert lrs[20] < lrs[6]


def test_gpt_resume_equals_uninterrupted(tiny_corpus, tmp_path) -> None:
    data = load_data(str(tiny_corpus))
    model = {**TINY, "dropout": 0.1}  # dropout draws from the RNG that resume must restore
    whole = tmp_path / "whole"
    train(data, whole, "gpt", model, _config(), progress=False)

    part = tmp_path / "part"

    def interrupt(step: int, loss: float) -> None:
        if step == 12:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(data, part, "gpt", model, _config(), progress=False, on_step=interrupt)
    train(data, part, resume=True, progress=False)
    assert _metrics(part) == _metrics(whole)
    a, b = load_run(whole).model.state_dict(), load_run(part).model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_keep_best_and_final_eval_on_whole_split(tiny_corpus, tmp_path) -> None:
    result = train(load_data(str(tiny_corpus)), tmp_path / "run", "gpt", TINY, _config(), progress=False)
    records = _metrics(tmp_path / "run")
    subset_vals = [r["val_loss"] for r in records if "val_loss" in r]
    final = [r for r in records if "final_val_loss" in r][-1]
    assert final["final_val_loss"] == pytest.approx(result.val.loss)
    assert result.val.tokens > 64  # the final eval covers the whole split, not the 64-token subset
    assert len(subset_vals) == 2
    saved = json.loads((tmp_path / "run" / "eval.json").read_text())
    assert saved["loss"] == pytest.approx(result.val.loss)


def test_cli_gpt_bpe_run_records_every_setting(tiny_corpus, tmp_path, capsys) -> None:
    out = tmp_path / "run"
    argv = ["train", "--data", str(tiny_corpus), "--model", "gpt", "--preset", "tiny", "--n-layer", "1", "--block-size", "16",
            "--tokenizer", "bpe", "--vocab-size", "300", "--steps", "6", "--grad-accum", "2", "--warmup", "2",
            "--out", str(out), "--json"]
    assert main(argv) == 0
    summary = json.loads(capsys.readouterr().out)
    config = json.loads((out / "config.json").read_text())
    assert config["model"]["name"] == "gpt"
    assert config["model"]["config"] == {"vocab_size": config["tokenizer"]["vocab_size"], "block_size": 16, "n_layer": 1, "n_head": 2, "n_embd": 64, "dropout": 0.0, "bias": False}
    training = config["training"]
    assert training["tokenizer"] == "bpe" and training["vocab_size"] == 300 and 256 < config["tokenizer"]["vocab_size"] <= 300 and training["grad_accum"] == 2
    assert training["warmup_steps"] == 2 and training["lr_schedule"] == "linear" and training["amp"] in ("none", "bf16")
    assert config["tokenizer"]["type"] == "bpe"
    # Bits per character divide the summed nats by the characters of the val text,
    # which BPE packs into fewer tokens than characters.
    text = tiny_corpus.read_text()
    val_text = text[int(0.9 * len(text)) :]
    run = load_run(out)
    first = run.tokenizer.decode(run.tokenizer.encode(val_text)[:1])
    characters = len(val_text) - len(first)
    assert summary["tokens"] < characters
    assert summary["bits_per_char"] == pytest.approx(summary["loss"] * summary["tokens"] / characters / math.log(2), rel=1e-6)
    # eval reads the BPE run back and agrees with training's final figure
    assert main(["eval", str(out), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["loss"] == pytest.approx(summary["loss"], rel=1e-4)


def test_cli_gpt_defaults_are_the_cpu_recipe(tmp_path) -> None:
    from bigramlm.cli import build_parser
    from bigramlm.cli.train import UNBOUNDED_STEPS, train_config_from_args

    def parsed(*flags: str):
        return train_config_from_args(build_parser().parse_args(["train", "--data", "x", "--model", "gpt", *flags, "--out", str(tmp_path)]))

    # The documented command: a 1-layer GPT sized to the 36 s budget.
    config, model = parsed("--time-limit", "36")
    assert model == {"n_layer": 1, "n_head": 4, "n_embd": 128, "dropout": 0.0}
    assert config.block_size == 64 and config.lr_schedule == "linear" and config.time_limit == 36
    assert (config.batch_size, config.learning_rate) == (32, 1e-2)
    assert config.steps == UNBOUNDED_STEPS
    config, model = parsed("--time-limit", "128")
    assert model["n_layer"] == 2 and config.batch_size == 32
    # Past the table, without a time limit, or with a size or a flag given: those win.
    for flags in (("--time-limit", "900"), ("--steps", "100"), ("--time-limit", "36", "--preset", "cpu")):
        config, model = parsed(*flags)
        assert model["n_layer"] == 4 and (config.batch_size, config.learning_rate) == (16, 8e-3), flags
    config, model = parsed("--time-limit", "36", "--batch-size", "8", "--n-embd", "64")
    assert model == {"n_layer": 4, "n_head": 4, "n_embd": 64, "dropout": 0.0} and config.batch_size == 8
    config, model = parsed("--time-limit", "36", "--batch-size", "8")
    assert model["n_layer"] == 1 and config.batch_size == 8 and config.learning_rate == 1e-2
    bigram, _ = train_config_from_args(build_parser().parse_args(["train", "--data", "x", "--out", str(tmp_path)]))
    assert bigram == TrainConfig()  # the notebook's defaults, untouched
    with pytest.raises(Exception, match="only apply to --model gpt"):
        train_config_from_args(build_parser().parse_args(["train", "--data", "x", "--n-layer", "2", "--out", str(tmp_path)]))

"""Training when things go wrong: divergence, missing devices, resuming finished runs,
thread counts on a busy machine, the smoothed loss, and the modes of a run's files."""

from __future__ import annotations

import dataclasses
import json
import os
import stat
from pathlib import Path

import pytest
import torch

from bigramlm._fs import FILE_MODE
from bigramlm.checkpoint import load_run
from bigramlm.checkpoint.resume import read_trainer_state, resume_weights
from bigramlm.cli import main
from bigramlm.data import load_data
from bigramlm.errors import BigramLMError
from bigramlm.models import build_model
from bigramlm.training import TrainConfig, default_train_config, train
from bigramlm.training.device import check_device
from bigramlm.training.threads import TINY_MODEL_PARAMETERS, choose_threads, configure_threads

TINY = {"n_layer": 1, "n_head": 2, "n_embd": 16}


def _gpt(**overrides) -> TrainConfig:
    base = dict(steps=20, batch_size=4, block_size=16, eval_every=10, checkpoint_every=5, eval_tokens=64, log_every=1)
    return default_train_config("gpt", **{**base, **overrides})


def _metrics(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text(encoding="utf-8").splitlines()]


def _poison_at(step_to_poison: int):
    def after_step(step: int, model: torch.nn.Module) -> None:
        if step == step_to_poison:
            with torch.no_grad():
                next(model.parameters()).fill_(float("nan"))

    return after_step


# --- divergence -----------------------------------------------------------------


def test_a_diverging_run_stops_with_one_error_and_keeps_the_last_finite_weights(tiny_corpus, tmp_path) -> None:
    run = tmp_path / "run"
    with pytest.raises(BigramLMError) as info:
        train(load_data(str(tiny_corpus)), run, "gpt", TINY, _gpt(), progress=False, after_step=_poison_at(7))
    message = str(info.value)
    assert message.startswith("training diverged at step 8: the loss is nan; try a smaller learning_rate")
    assert "\n" not in message and info.value.params == ("learning_rate",)
    assert "holds the weights of step 5" in message
    step, checkpointed = resume_weights(run)
    assert step == 5  # the last checkpoint is the last finite one
    kept = load_run(run).model.state_dict()  # load_run refuses non-finite weights
    assert all(torch.equal(kept[k], checkpointed[k]) for k in kept)
    assert not (run / "eval.json").exists()
    assert max(r["step"] for r in _metrics(run)) == 7  # the finite steps' records, none of the nan one


def test_non_finite_weights_are_never_checkpointed(tiny_corpus, tmp_path) -> None:
    run = tmp_path / "run"
    config = _gpt(eval_every=5)  # keep_best: step 5's evaluation is the best
    with pytest.raises(BigramLMError, match="diverged at step 10: the weights are not finite.*holds the best weights"):
        train(load_data(str(tiny_corpus)), run, "gpt", TINY, config, progress=False, after_step=_poison_at(10))
    assert read_trainer_state(run)["step"] == 5
    best = [r["val_loss"] for r in _metrics(run) if r.get("step") == 5 and "val_loss" in r]
    assert best and torch.isfinite(torch.tensor(best)).all()
    load_run(run)


def test_cli_reports_divergence_in_one_line_naming_the_flag(tiny_corpus, tmp_path, capsys, monkeypatch) -> None:
    import bigramlm.training.loop as loop

    real_train = loop.train
    monkeypatch.setattr(loop, "train", lambda *a, **k: real_train(*a, **k, after_step=_poison_at(3)))
    argv = ["train", "--data", str(tiny_corpus), "--model", "gpt", "--n-layer", "1", "--n-head", "2", "--n-embd", "16",
            "--block-size", "16", "--steps", "10", "--lr", "0.9", "--out", str(tmp_path / "run"), "--no-progress"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: training diverged at step 4") and "--lr" in err and err.count("\n") == 1


# --- devices --------------------------------------------------------------------


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_missing_cuda_is_a_one_line_error(tiny_corpus, tmp_path, capsys) -> None:
    with pytest.raises(BigramLMError, match="device cuda is not available") as info:
        check_device("cuda")
    assert info.value.params == ("device",)
    for device in ("cuda", "cuda:1", "bogus"):
        argv = ["train", "--data", str(tiny_corpus), "--steps", "2", "--device", device, "--out", str(tmp_path / device)]
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and "--device" in err and err.count("\n") == 1, err
        assert not (tmp_path / device).exists()


def test_device_checks() -> None:
    check_device("cpu")
    with pytest.raises(BigramLMError, match="unknown device 'tpu'"):
        check_device("tpu")
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if count:
        check_device(f"cuda:{count - 1}")
        with pytest.raises(BigramLMError, match=f"cuda:{count} is out of range"):
            check_device(f"cuda:{count}")
    mps = getattr(torch.backends, "mps", None)
    if mps is None or not mps.is_available():
        with pytest.raises(BigramLMError, match="device mps is not available"):
            check_device("mps")


# --- resuming a finished run, and extending one ---------------------------------


def test_resuming_a_finished_run_says_so(tiny_corpus, tmp_path, capsys) -> None:
    out = tmp_path / "run"
    base = ["train", "--data", str(tiny_corpus), "--out", str(out), "--no-progress"]
    assert main([*base, "--steps", "20", "--eval-every", "10", "--checkpoint-every", "10"]) == 0
    capsys.readouterr()
    assert main([*base, "--resume"]) == 2
    err = capsys.readouterr().err
    assert err == f"error: the run in {out} finished at step 20; to train it further, resume with --steps above 20 " \
                  "(the schedule stretches to the new total)\n"


def test_extending_a_run_equals_training_longer(tiny_corpus, tmp_path) -> None:
    """The bigram's constant lr: 20 steps extended to 30 are the 30-step run, bit for bit."""
    data = load_data(str(tiny_corpus))
    config = TrainConfig(steps=20, learning_rate=0.02, eval_every=10, checkpoint_every=10, log_every=5)
    train(data, tmp_path / "short", config=config, progress=False)
    extended = train(data, tmp_path / "short", resume=True, steps=30, progress=False)
    whole = train(data, tmp_path / "whole", config=dataclasses.replace(config, steps=30), progress=False)
    assert extended.steps == 30 and extended.val == whole.val
    assert _metrics(tmp_path / "short") == _metrics(tmp_path / "whole")
    saved = json.loads((tmp_path / "short" / "config.json").read_text())
    assert saved["training"]["steps"] == 30
    with pytest.raises(BigramLMError, match=r"steps \(25\) must be more than the 30 steps") as info:
        train(data, tmp_path / "short", resume=True, steps=25, progress=False)
    assert info.value.params == ("steps",)
    with pytest.raises(BigramLMError, match="steps extends a resumed run"):
        train(data, tmp_path / "new", config=config, steps=30, progress=False)


def test_an_interrupted_extension_resumes_to_the_new_total(tiny_corpus, tmp_path) -> None:
    data = load_data(str(tiny_corpus))
    run = tmp_path / "run"
    train(data, run, config=TrainConfig(steps=20, eval_every=10, checkpoint_every=10), progress=False)

    def interrupt(step: int, loss: float) -> None:
        if step == 35:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(data, run, resume=True, steps=50, progress=False, on_step=interrupt)
    assert not (run / "eval.json").exists()  # unfinished again until step 50
    assert train(data, run, resume=True, progress=False).steps == 50
    assert [r["step"] for r in _metrics(run) if "final_val_loss" in r] == [50]


# --- the smoothed loss ----------------------------------------------------------


def test_smoothed_loss_is_bias_corrected(tiny_corpus, tmp_path) -> None:
    losses: list[float] = []
    config = TrainConfig(steps=30, learning_rate=0.02, eval_every=30, checkpoint_every=30, log_every=1, ema_decay=0.9)
    train(load_data(str(tiny_corpus)), tmp_path / "run", config=config, progress=False,
          on_step=lambda step, loss: losses.append(loss))
    logged = [r["ema_loss"] for r in _metrics(tmp_path / "run") if "ema_loss" in r]
    for t in (1, 2, 10, 30):
        weights = [0.1 * 0.9 ** (t - i) for i in range(1, t + 1)]
        expected = sum(w * x for w, x in zip(weights, losses)) / (1 - 0.9**t)
        assert logged[t - 1] == pytest.approx(expected, rel=1e-12)
    assert logged[0] == pytest.approx(losses[0])  # the first step's smoothed loss is its loss


def test_constant_lr_reaches_the_base_rate_after_warmup(tiny_corpus, tmp_path) -> None:
    config = _gpt(warmup_steps=5, lr_schedule="constant")
    train(load_data(str(tiny_corpus)), tmp_path / "run", "gpt", TINY, config, progress=False)
    lrs = {r["step"]: r["lr"] for r in _metrics(tmp_path / "run") if "lr" in r}
    assert lrs[4] < config.learning_rate and all(lrs[s] == config.learning_rate for s in range(5, 21))


# --- threads --------------------------------------------------------------------


def test_thread_policy_uses_the_idle_cores() -> None:
    big = TINY_MODEL_PARAMETERS
    assert choose_threads(big - 1, load=0.0, cores=8, ceiling=8) == 1  # tiny models: always one
    assert choose_threads(big, load=0.1, cores=2, ceiling=2) == 2  # a quiet machine: every core
    assert choose_threads(big, load=1.0, cores=2, ceiling=2) == 1  # one core busy: the other one
    assert choose_threads(big, load=0.6, cores=2, ceiling=2) == 1  # most of a core busy counts as busy
    assert choose_threads(big, load=5.0, cores=2, ceiling=2) == 1  # at least one
    assert choose_threads(big, load=2.2, cores=8, ceiling=8) == 6
    assert choose_threads(big, load=0.0, cores=8, ceiling=4) == 4  # never above torch's start-up count


def test_thread_policy_does_not_count_the_process_own_load_as_another_job(monkeypatch) -> None:
    from bigramlm.training import threads

    big = TINY_MODEL_PARAMETERS
    # The support recipe: 105 s of embedding on both cores left the load average at 1.25,
    # all its own; the CPU counters, read while the process waits, see the cores idle.
    monkeypatch.setattr(threads, "machine_load", lambda: 1.25)
    monkeypatch.setattr(threads, "busy_cores", lambda: 0.0)
    assert choose_threads(big, cores=2, ceiling=2) == 2
    # Another job on one core: the other core only.
    monkeypatch.setattr(threads, "busy_cores", lambda: 1.05)
    assert choose_threads(big, cores=2, ceiling=2) == 1
    # No /proc/stat: the load average decides.
    monkeypatch.setattr(threads, "busy_cores", lambda: None)
    assert choose_threads(big, cores=2, ceiling=2) == 1


def test_busy_cores_reads_the_cpu_counters(monkeypatch) -> None:
    from bigramlm.training import threads

    # Two readings 100 jiffies apart on 2 cores: 150 of them idle, so half a core was busy.
    readings = iter([(1000.0, 4000.0), (1150.0, 4200.0)])
    monkeypatch.setattr(threads, "_cpu_counters", lambda: next(readings))
    monkeypatch.setattr(threads.os, "cpu_count", lambda: 2)
    assert threads.busy_cores(window=0.0) == pytest.approx(0.5)


def test_configure_threads_takes_an_override_or_the_policy() -> None:
    before = torch.get_num_threads()
    try:
        gpt = build_model("gpt", {"vocab_size": 65, "block_size": 16, "n_layer": 1, "n_head": 4, "n_embd": 128})
        bigram = build_model("bigram", {"vocab_size": 65})
        assert configure_threads(bigram) == torch.get_num_threads() == 1
        assert configure_threads(gpt, threads=3) == torch.get_num_threads() == 3
        assert configure_threads(gpt, load=100.0) == torch.get_num_threads() == 1
        for bad in (0, -1, 1.5, True):
            with pytest.raises(BigramLMError, match="threads must be"):
                configure_threads(gpt, threads=bad)
    finally:
        torch.set_num_threads(before)


# --- file modes -----------------------------------------------------------------


def test_every_file_of_a_run_gets_the_same_mode(tiny_corpus, tmp_path) -> None:
    previous = os.umask(0o077)  # a umask changed after import must not split the run's modes
    try:
        run = tmp_path / "run"
        train(load_data(str(tiny_corpus)), run, "gpt", TINY, _gpt(), progress=False)
    finally:
        os.umask(previous)
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in run.iterdir() if p.is_file()}
    assert {"config.json", "tokenizer.json", "model.safetensors", "resume.safetensors", "metrics.jsonl",
            "eval.json", "loss.png"} <= set(modes)
    assert set(modes.values()) == {FILE_MODE}, modes


def test_thread_policy_respects_a_cgroup_cpu_quota(tmp_path) -> None:
    """A container limited to 2 CPUs on a many-core host gets at most 2 threads."""
    from bigramlm.training.threads import cgroup_cpu_quota, usable_cores

    assert cgroup_cpu_quota(str(tmp_path)) is None  # no cgroup files: no quota
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert cgroup_cpu_quota(str(tmp_path)) is None  # v2, unlimited
    (tmp_path / "cpu.max").write_text("200000 100000\n")
    assert cgroup_cpu_quota(str(tmp_path)) == 2.0
    assert usable_cores(str(tmp_path)) <= 2
    (tmp_path / "cpu.max").write_text("50000 100000\n")  # half a CPU: still one thread
    assert usable_cores(str(tmp_path)) == 1
    v1 = tmp_path / "v1"
    (v1 / "cpu").mkdir(parents=True)
    (v1 / "cpu" / "cfs_quota_us").write_text("x")  # a stray file is not the quota
    (v1 / "cpu" / "cpu.cfs_quota_us").write_text("300000\n")
    (v1 / "cpu" / "cpu.cfs_period_us").write_text("100000\n")
    assert cgroup_cpu_quota(str(v1)) == 3.0
    (v1 / "cpu" / "cpu.cfs_quota_us").write_text("-1\n")  # v1, unlimited
    assert cgroup_cpu_quota(str(v1)) is None

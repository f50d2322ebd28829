"""``time_limit`` on a fake clock: exactly when a run stops, and that it keeps its budget.

A run reads all its time through ``train(now=...)``. Here that clock only moves when
the test says: each step's batch costs ``STEP`` fake seconds and each evaluation
``PER_TOKEN`` fake seconds a token, so the stop step is known in advance. No test
reads the wall clock.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import bigramlm.training.step as step_module
from bigramlm.cli import main
from bigramlm.data import load_data
from bigramlm.errors import BigramLMError
from bigramlm.training import default_train_config, train
from bigramlm.training.budget import EVAL_MARGIN, EXIT_CAP, EXIT_FRACTION, PLOT_SECONDS, WRITE_SECONDS
from bigramlm.training.evaluator import SplitEvaluator

TINY = {"n_layer": 1, "n_head": 2, "n_embd": 16}
LIMIT = 10.0
STEP = 0.25
PER_TOKEN = 0.001
# The tiny corpus: 193 val targets (full eval), a 64-token periodic eval; the startup
# probe evaluates a 16-token window, then 12 windows of 16 (192 tokens).
FULL, PERIODIC, PROBE = 193, 64, 16 + 192


class FakeClock:
    def __init__(self, t: float = 1000.0):
        self.t = t

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


@pytest.fixture
def clock(monkeypatch) -> FakeClock:
    """A fake clock that steps and evaluations move, as the machine's would."""
    fake = FakeClock()
    costs = {"step": STEP, "token": PER_TOKEN}
    real_batch, real_eval = step_module.draw_windows, SplitEvaluator.__call__

    def batch(*args, **kwargs):
        fake.advance(costs["step"])
        return real_batch(*args, **kwargs)

    def evaluate(self, model, split="val"):
        fake.advance(self.tokens * costs["token"])
        return real_eval(self, model, split)

    monkeypatch.setattr(step_module, "draw_windows", batch)
    monkeypatch.setattr(SplitEvaluator, "__call__", evaluate)
    fake.costs = costs
    return fake


def _config(**overrides):
    base = dict(steps=10**9, time_limit=LIMIT, batch_size=4, block_size=16, eval_every=10**6,
                checkpoint_every=5, eval_tokens=PERIODIC, log_every=1, warmup_steps=2)
    return default_train_config("gpt", **{**base, **overrides})


def _metrics(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text(encoding="utf-8").splitlines()]


def _reserve(slowdown: float = 1.0) -> float:
    """What the budget keeps after training: the last periodic and the full evaluation
    (with its margin), the writes and the plot; no exit when train() is called directly."""
    return EVAL_MARGIN * (FULL + PERIODIC) * PER_TOKEN * slowdown + (WRITE_SECONDS + PLOT_SECONDS) * slowdown


def _expected_steps(budget: float, step_cost: float = STEP, first: int = 0) -> int:
    """Steps taken when training starts after the probe, with ``budget`` fake seconds to
    the deadline: the run goes on while one more step still ends before deadline - reserve."""
    end = budget - _reserve() - PROBE * PER_TOKEN
    k = first
    while (k - first) * step_cost + step_cost <= end:
        k += 1
    return k


def test_run_stops_at_the_exact_step_before_deadline_minus_reserve(tiny_corpus, tmp_path, clock) -> None:
    start = clock()
    seen: list[tuple[int, float]] = []
    result = train(load_data(str(tiny_corpus)), tmp_path / "run", "gpt", TINY, _config(), progress=False,
                   now=clock, on_step=lambda step, loss: seen.append((step, clock() - start)))
    assert result.steps == _expected_steps(LIMIT) == 34
    last_step_ended = seen[-1][1]
    assert last_step_ended <= LIMIT - _reserve()  # trained inside the window
    assert last_step_ended + STEP > LIMIT - _reserve()  # and one more step would have left it
    fake_finish = clock() - start
    assert fake_finish <= LIMIT
    assert result.seconds == pytest.approx(fake_finish)  # what the run reports is on its clock
    assert result.val.tokens == FULL  # the final evaluation covered the whole split


def test_lr_decays_to_its_end_within_the_budget(tiny_corpus, tmp_path, clock) -> None:
    config = _config()
    train(load_data(str(tiny_corpus)), tmp_path / "run", "gpt", TINY, config, progress=False, now=clock)
    lrs = [r["lr"] for r in _metrics(tmp_path / "run") if "lr" in r]
    assert max(lrs) > 0.85 * config.learning_rate  # warmed up, then decayed ...
    assert lrs[-1] < 0.1 * config.learning_rate  # ... to (near) its end, min_lr_ratio 0


def test_slow_steps_stop_a_step_early_instead_of_overrunning(tiny_corpus, tmp_path, clock) -> None:
    """Steps longer than the reserve: checking the clock only after a step would start
    one just before the end and finish it past the deadline."""
    clock.costs["step"] = slow = 2.0
    start = clock()
    result = train(load_data(str(tiny_corpus)), tmp_path / "run", "gpt", TINY, _config(), progress=False, now=clock)
    assert slow > _reserve()
    assert result.steps == _expected_steps(LIMIT, slow) == 4
    assert clock() - start <= LIMIT


def test_a_machine_that_slows_down_gets_a_bigger_reserve(tiny_corpus, tmp_path, clock) -> None:
    """From step 10 steps and evaluations run 3x slower: the reserve grows with them,
    so the (slower) final evaluation still ends before the deadline."""
    limit = 30.0
    start = clock()

    def slow_down(step: int, loss: float) -> None:
        if step == 10:
            clock.costs["step"], clock.costs["token"] = 3 * STEP, 3 * PER_TOKEN

    result = train(load_data(str(tiny_corpus)), tmp_path / "run", "gpt", TINY, _config(time_limit=limit),
                   progress=False, now=clock, on_step=slow_down)
    writes = WRITE_SECONDS + PLOT_SECONDS
    assert clock() - start <= limit - writes  # the writes' allowance is left
    quiet = _expected_steps(limit)
    assert 10 < result.steps < 10 + (quiet - 10) / 3  # fewer steps than the quiet run's, in its time


def test_warmup_ends_within_a_tenth_of_the_budget(tiny_corpus, tmp_path, clock) -> None:
    config = _config(warmup_steps=1000, lr_schedule="constant")  # more warmup steps than the budget buys
    train(load_data(str(tiny_corpus)), tmp_path / "run", "gpt", TINY, config, progress=False, now=clock)
    lrs = [r["lr"] for r in _metrics(tmp_path / "run") if "lr" in r]
    assert lrs[0] < 0.5 * config.learning_rate
    assert lrs[-1] == config.learning_rate and lrs.count(config.learning_rate) > len(lrs) * 0.8


def test_resume_under_a_time_limit_gets_what_is_left(tiny_corpus, tmp_path, clock) -> None:
    data = load_data(str(tiny_corpus))
    run = tmp_path / "run"
    start = clock()

    def interrupt(step: int, loss: float) -> None:
        if step == 12:  # after the step-10 checkpoint
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(data, run, "gpt", TINY, _config(), progress=False, now=clock, on_step=interrupt)
    spent_at_checkpoint = PROBE * PER_TOKEN + 10 * STEP  # steps 11-12 were lost with the process
    assert clock() - start == pytest.approx(PROBE * PER_TOKEN + 12 * STEP)
    clock.advance(100.0)  # however long the run was down: that is not the budget's
    restart = clock()
    resumed = train(data, run, resume=True, progress=False, now=clock)
    # The new process probes again, then trains with what the first one left.
    assert resumed.steps == _expected_steps(LIMIT - spent_at_checkpoint, first=10) == 33
    assert spent_at_checkpoint + (clock() - restart) <= LIMIT
    with pytest.raises(BigramLMError, match="finished at step 33 when its time_limit of 10 s was spent"):
        train(data, run, resume=True, progress=False, now=clock)


def test_time_limit_counts_from_process_start(tiny_corpus, tmp_path, clock, monkeypatch, capsys) -> None:
    """The CLI's budget starts when the process did: its start-up is inside the limit,
    and a share of it is kept for the interpreter's exit."""
    import bigramlm.training.clock as clock_module
    import bigramlm.training.loop as loop

    started = clock() - 4.0  # imports and data took 4 fake seconds before train() ran
    monkeypatch.setattr(clock_module, "process_start_time", lambda: started)
    real_train = loop.train
    monkeypatch.setattr(loop, "train", lambda *args, **kwargs: real_train(*args, **kwargs, now=clock))
    argv = ["train", "--data", str(tiny_corpus), "--model", "gpt", "--n-layer", "1", "--n-head", "2", "--n-embd", "16",
            "--block-size", "16", "--batch-size", "4", "--eval-tokens", str(PERIODIC), "--eval-every", str(10**6),
            "--time-limit", str(LIMIT), "--out", str(tmp_path / "run"), "--json"]
    assert main(argv) == 0
    summary = json.loads(capsys.readouterr().out)
    spent = summary["seconds"]
    assert spent == pytest.approx(clock() - started)  # measured from the process start
    assert spent <= LIMIT
    exit_kept = min(EXIT_FRACTION * 4.0, EXIT_CAP * LIMIT)
    assert summary["steps"] == _expected_steps(LIMIT - 4.0 - exit_kept) < _expected_steps(LIMIT)


def test_process_start_time_is_before_the_first_statement() -> None:
    code = ("import time; first = time.time()\n"
            "from bigramlm.training.clock import process_start_time\n"
            "print(process_start_time() <= first, first - process_start_time() < 3600)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["True", "True"]


def test_loss_png_is_drawn_even_when_the_writes_spend_the_last_of_the_budget(tiny_corpus, tmp_path, clock,
                                                                               monkeypatch) -> None:
    """A recipe run once finished without loss.png ("no time left to draw"): the curve takes
    a second, and a run without it is worse than one that ends that second late."""
    import bigramlm.training.finish as finish

    real_save = finish.save_weights

    def slow_disk(*args, **kwargs):
        clock.advance(LIMIT)  # the weights' write takes the rest of the budget and more
        return real_save(*args, **kwargs)

    monkeypatch.setattr(finish, "save_weights", slow_disk)
    start = clock()
    train(load_data(str(tiny_corpus)), tmp_path / "run", "gpt", TINY, _config(), progress=False, now=clock)
    assert clock() - start > LIMIT  # past the deadline when the plot was due
    assert (tmp_path / "run" / "loss.png").stat().st_size > 0

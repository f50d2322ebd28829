"""Keeping a ``time_limit`` on a busy machine: when to stop training, re-estimated as it runs.

The first version stopped training when the clock passed ``deadline - reserve``,
with the reserve sized once from the speed of the periodic evaluations, and a fixed
1.25 s for writing the run and exiting. On the shared 2-core machine, under load,
``--time-limit 36`` took 49.6 s and ``--time-limit 120`` 147.6 s. What overran:

* the final evaluation slows down with the machine, but its reserve was sized from
  an earlier, quieter measurement (the startup probe: 6.6k tokens/s with the other
  core busy, 26-46k on a quiet one);
* a step or a periodic evaluation that starts just before the end runs past it;
* the interpreter's exit after importing torch: 0.7 s at load 3, 3.1 s at load 3.75,
  8.4 s when the load tripled during the run, where 1.25 s was kept for it and all
  the writing. ``clock.skip_exit_collection`` cuts it to 0.15-0.56 s (loads 3-8).

So ``TimeBudget`` times every step on the run's clock and scales the measured eval
speed by how much slower the steps have become since it was measured (both are the
same model's forward passes on the same cores); before each step it checks that the
step, and the evaluation or checkpoint due after it, fit before the end; and it keeps
for the exit a share of the process's start-up, which does the same kind of work in
reverse (imports, then teardown), scaled by the same slowdown.
After training, ``affords_eval`` lets the finish drop the full-split evaluation rather than
overrun; the loss plot is always drawn (its time is planned for).
"""

from __future__ import annotations

import statistics
from collections import deque

from bigramlm.training.clock import TrainingClock

#: Evaluation estimates are stretched by this much when sizing the reserve: the
#: machine is shared and the final evaluation must still fit.
EVAL_MARGIN = 1.15
#: Writing the weights, metrics, eval.json and the checkpoint's neighbours: measured
#: 0.15-0.3 s on a quiet machine (matplotlib is imported before training starts).
WRITE_SECONDS = 0.5
#: The loss plot alone (a Figure drawn and saved as PNG): 0.1-0.2 s quiet.
PLOT_SECONDS = 0.3
#: The interpreter's exit, as a share of the time before ``train`` was called
#: (imports and data loading): 0.32-0.33 measured at loads 3-3.75, 0.07 once
#: ``skip_exit_collection`` is in effect (which ``train`` arranges when the budget
#: counts the process).
EXIT_FRACTION = 0.1
#: ... but never more than this share of the time limit (a slow data download in the
#: start-up says nothing about the exit).
EXIT_CAP = 0.1
#: Steps whose durations predict the next one (the slowest of them) and the load (their median).
RECENT_STEPS = 8


def exit_allowance(startup_seconds: float, time_limit: float) -> float:
    """Seconds kept for the interpreter's exit after a start-up that took ``startup_seconds``."""
    return min(EXIT_FRACTION * max(startup_seconds, 0.0), EXIT_CAP * time_limit)


class TimeBudget:
    """When a time-limited run must stop training, from what this run has measured.

    ``finish_tokens`` are evaluated after training stops (the last periodic
    evaluation, unless it is the full one, and the full one); ``eval_rate`` is their
    speed in tokens per second, first from a probe, then from each periodic evaluation.
    """

    def __init__(self, clock: TrainingClock, finish_tokens: int, periodic_tokens: int, exit_seconds: float):
        self.clock = clock
        self.finish_tokens = finish_tokens
        self.periodic_tokens = periodic_tokens
        self.exit_seconds = exit_seconds
        self.recent: deque[float] = deque(maxlen=RECENT_STEPS)
        self.eval_rate: float | None = None
        #: The median step when ``eval_rate`` was measured; None until steps are known.
        self.rate_step: float | None = None
        self.checkpoint_seconds = 0.0
        self._mark = clock.now()
        self._aside = 0.0  # seconds of evaluations and checkpoints since the last step

    # --- measurements -------------------------------------------------------------

    def start_steps(self) -> None:
        """Training begins now: the first step is timed from here."""
        self._mark, self._aside = self.clock.now(), 0.0

    def step_done(self) -> None:
        """A step ended: its duration is the time since the last one, less evaluations and checkpoints."""
        now = self.clock.now()
        self.recent.append(max(now - self._mark - self._aside, 0.0))
        self._mark, self._aside = now, 0.0
        if self.rate_step is None and len(self.recent) == RECENT_STEPS:
            # The probe's rate was measured just before training: the first steps set its reference.
            self.rate_step = statistics.median(self.recent)
        self.update_reserve()

    def evaluated(self, tokens: int, seconds: float) -> None:
        """A periodic evaluation of ``tokens`` took ``seconds``: the eval speed from now on."""
        self.eval_rate = tokens / max(seconds, 1e-9)
        self.rate_step = statistics.median(self.recent) if self.recent else None
        self.set_aside(seconds)

    def checkpointed(self, seconds: float) -> None:
        self.checkpoint_seconds = seconds
        self.set_aside(seconds)

    def set_aside(self, seconds: float) -> None:
        """Time spent between steps that is not the steps' (evaluations, checkpoints, saves)."""
        self._aside += seconds
        self.update_reserve()

    # --- estimates ----------------------------------------------------------------

    def slowdown(self) -> float:
        """How much slower steps run now than when the eval speed was measured (at least 1)."""
        if self.rate_step is None or not self.recent or self.rate_step <= 0:
            return 1.0
        return max(1.0, statistics.median(self.recent) / self.rate_step)

    def eval_seconds(self, tokens: int, margin: float = EVAL_MARGIN) -> float:
        if self.eval_rate is None:
            return 0.0
        return margin * tokens / self.eval_rate * self.slowdown()

    def reserve(self) -> float:
        """Seconds after training: the final evaluations, the last checkpoint, the writes, the exit."""
        after = self.checkpoint_seconds + WRITE_SECONDS + PLOT_SECONDS + self.exit_seconds
        return self.eval_seconds(self.finish_tokens) + after * self.slowdown()

    def update_reserve(self) -> None:
        self.clock.set_reserve(self.reserve())

    def next_step_seconds(self, eval_due: bool, checkpoint_due: bool) -> float:
        """What going on costs before the next stop check: the evaluation and checkpoint
        due at this step (a stop would fold them into the reserve), then one more step."""
        seconds = max(self.recent, default=0.0)
        if eval_due:
            seconds += self.eval_seconds(self.periodic_tokens)
        if checkpoint_due:
            seconds += self.checkpoint_seconds * self.slowdown()
        return seconds

    def must_stop(self, eval_due: bool, checkpoint_due: bool) -> bool:
        """True when the next step would end past the training window."""
        if self.clock.end is None:
            return False
        now = self.clock.now()
        return now >= self.clock.end or now + self.next_step_seconds(eval_due, checkpoint_due) > self.clock.end

    def affords_eval(self, tokens: int) -> bool:
        """Whether evaluating ``tokens`` (with the reserve's margin), then writing the
        run and drawing its loss curve, still leaves the exit its time before the deadline
        (the recipe's 20-minute run once chose the whole-split evaluation and then had no
        time left for loss.png)."""
        need = self.eval_seconds(tokens) + (WRITE_SECONDS + PLOT_SECONDS + self.exit_seconds) * self.slowdown()
        return need <= self.clock.left()


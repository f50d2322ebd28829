"""The end of a run: the weights it keeps, the final evaluation on the whole val split,
and the files (``model.safetensors``, the final metrics record, ``eval.json``,
``loss.png``); or, when its loss stopped being finite, the last good weights and one
clear error.

``eval.json`` is written last but for the plot: a run directory holding it is a
finished run (``restore`` refuses to resume one).
"""

from __future__ import annotations

import json
import math

from bigramlm._fs import atomic_write_text
from bigramlm.checkpoint import EVAL, LOSS_PLOT, RESUME, WEIGHTS, save_weights
from bigramlm.checkpoint.resume import resume_weights
from bigramlm.checkpoint.weights import all_finite, atomic_save_tensors
from bigramlm.errors import BigramLMError
from bigramlm.evaluation.lm import EvalResult
from bigramlm.training.metrics import FINAL_KEY, append_metrics
from bigramlm.training.prepare import TrainSetup
from bigramlm.training.state import TrainState


def finish(setup: TrainSetup, state: TrainState) -> EvalResult:
    """Keep the best weights, evaluate them on the whole split and write the run."""
    final = final_evaluation(setup, state)
    if setup.main:
        write_results(setup, state, final)
    setup.dist.barrier()
    return final


def final_evaluation(setup: TrainSetup, state: TrainState) -> EvalResult:
    """The whole-split evaluation of the weights the run keeps (the best ones under keep_best).

    Under a time limit with no time left for it (the machine slowed down after the
    reserve was sized), the periodic evaluation of those weights stands in, and the
    log says so: the budget is kept.
    """
    config, model = setup.config, setup.model
    if state.val is None:  # resumed after training had ended, before the run was written
        state.val = setup.periodic_eval(model)
    kept: EvalResult | None = state.val
    if config.keep_best and state.best_state is not None and state.best < state.val.loss:
        # An earlier evaluation was better: the run keeps those weights.
        model.load_state_dict(state.best_state)
        kept = state.best_result
    if setup.periodic_eval is setup.full_eval and kept is not None:
        return kept
    if _full_evaluation_fits(setup, state):
        return setup.full_eval(model)
    kept = kept if kept is not None else setup.periodic_eval(model)
    setup.log(f"the time limit leaves no time to evaluate the whole val split: the final figures are "
              f"those of the {kept.tokens:,}-token periodic evaluation (evaluate the run for the whole split)")
    return kept


def _full_evaluation_fits(setup: TrainSetup, state: TrainState) -> bool:
    if state.budget is None:
        return True
    fits = state.budget.affords_eval(setup.full_eval.tokens) if setup.main else None
    return bool(setup.dist.broadcast_object(fits))


def write_results(setup: TrainSetup, state: TrainState, final: EvalResult) -> None:
    out_dir = setup.out_dir
    record = {"step": state.step, FINAL_KEY: final.loss, "final_val_bits_per_char": final.bits_per_char}
    append_metrics(setup.metrics_path, [record])
    state.history.append(record)
    save_weights(out_dir, setup.model)
    atomic_write_text(out_dir / EVAL, json.dumps(final.to_dict(), indent=2))
    # The curve is drawn even when the time limit is spent: the budget plans its ~0.3 s
    # (``PLOT_SECONDS``), and a run without loss.png was worse than one a second late (the
    # recipe once dropped it for want of that second).
    try:
        from bigramlm.training.plotting import plot_loss_curve

        title = f"{setup.model_name} on {setup.data.spec.get('source', 'data')}"
        sample = setup.config.eval_tokens  # periodic evals read this many val tokens (0: all of them)
        plot_loss_curve(state.history, out_dir / LOSS_PLOT, title=title,
                        val_label=f"val (first {sample:,} tokens)" if sample else "val (full split)")
    except ImportError:  # matplotlib is a declared dependency; never fail a finished run on a plot
        pass


def diverged(setup: TrainSetup, state: TrainState, what: str) -> BigramLMError:
    """The one-line error that ends a run whose loss or weights stopped being finite.

    The run keeps its last good state: the resume checkpoint is the last finite one
    (checkpoints refuse non-finite weights), and ``model.safetensors`` holds the best
    weights under keep_best, else those of that checkpoint.
    """
    kept = _keep_last_good_weights(setup, state) if setup.main else ""
    return BigramLMError(
        f"training diverged at step {state.step}: {what}; try a smaller learning_rate "
        f"(this run used {setup.config.learning_rate:g}){kept}",
        param="learning_rate",
    )


def _keep_last_good_weights(setup: TrainSetup, state: TrainState) -> str:
    out_dir = setup.out_dir
    finite = [r for r in state.pending if all(math.isfinite(v) for v in r.values() if isinstance(v, float))]
    append_metrics(setup.metrics_path, finite)
    state.pending = []
    if setup.config.keep_best and math.isfinite(state.best):
        return f"; {WEIGHTS} holds the best weights (val {state.best:.4f})"
    if (out_dir / RESUME).exists():
        step, weights = resume_weights(out_dir)
        if all_finite(weights):
            atomic_save_tensors(out_dir / WEIGHTS, weights)
            return f"; {WEIGHTS} holds the weights of step {step}, the last checkpoint"
    return f"; {WEIGHTS} holds the initial weights"

"""Loss-curve PNGs for runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bigramlm._fs import atomic_write


def plot_loss_curve(history: list[dict[str, Any]], path: Path, title: str = "", val_label: str = "val (full split)") -> None:
    """Raw and smoothed train loss per step, and the val loss at eval steps (``val_label`` says
    on what: the whole split, or the first tokens of it that periodic evals read)."""
    # The object-oriented Figure API, not pyplot: importing pyplot costs ~0.6 s of
    # start-up (backend machinery a file-only plot never uses), which is a fifth of a
    # whole `bigramlm train --method sgd` run on the bigram.
    from matplotlib.figure import Figure

    train = [(r["step"], r["loss"], r["ema_loss"]) for r in history if "loss" in r]
    val = [(r["step"], r["val_loss"]) for r in history if "val_loss" in r]
    fig = Figure(figsize=(7, 4), dpi=100)
    ax = fig.subplots()
    if train:
        steps, raw, ema = zip(*train)
        ax.plot(steps, raw, color="tab:blue", alpha=0.25, linewidth=0.8, label="train (batch)")
        ax.plot(steps, ema, color="tab:blue", linewidth=1.6, label="train (smoothed)")
    if val:
        steps, losses = zip(*val)
        ax.plot(steps, losses, "o-", color="tab:orange", linewidth=1.6, label=val_label)
    ax.set_xlabel("step")
    ax.set_ylabel("cross-entropy (nats/token)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if train or val:  # a run stopped before its first step has no curve to label
        ax.legend()
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png"))

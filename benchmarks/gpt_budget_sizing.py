"""Which GPT size makes the most of a wall-clock budget on this CPU: whole
``bigramlm train --data tinyshakespeare --model gpt --time-limit T`` processes with 1, 2
and 4 layers at each budget T, scored on the full val split. The reference is the fixed
4-layer ``cpu`` preset, run in the same session; the figure is what the size that
``--time-limit`` picks on its own (``training.GPT_BUDGET_RECIPES``) gains over it.

    python benchmarks/gpt_budget_sizing.py [--budgets 36 64 128] [--json]

Needs Tiny Shakespeare offline (``BIGRAMLM_DATA_DIR``). Takes about 3 x sum(budgets).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

from gpt_time_to_quality import run_ours  # same directory: whole processes, timed

from bigramlm.training.recipes import gpt_budget_recipe

#: The sizes compared; the flags turn the budget sizing off, so each runs as named.
CANDIDATES: dict[str, list[str]] = {
    "1 layer, batch 32, lr 1e-2": ["--n-layer", "1", "--batch-size", "32", "--lr", "1e-2"],
    "2 layers, batch 32, lr 1e-2": ["--n-layer", "2", "--batch-size", "32", "--lr", "1e-2"],
    "4 layers (cpu preset), batch 16, lr 8e-3": ["--preset", "cpu"],
}
REFERENCE = "4 layers (cpu preset), batch 16, lr 8e-3"


def picked(budget: float) -> str:
    """The candidate that ``--time-limit budget`` trains when no size is given."""
    model, _ = gpt_budget_recipe(budget)
    layers = model.get("n_layer", 4)
    return next(name for name in CANDIDATES if name.startswith(f"{layers} layer"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--budgets", type=float, nargs="+", default=[36.0, 64.0, 128.0], help="time limits in seconds")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if "BIGRAMLM_DATA_DIR" not in os.environ:
        sys.exit("set BIGRAMLM_DATA_DIR (Tiny Shakespeare must be found offline)")
    work = Path(tempfile.mkdtemp(prefix="gpt-budget-"))
    rows = []
    for budget in args.budgets:
        runs = {}
        for i, (name, flags) in enumerate(CANDIDATES.items()):
            runs[name] = run_ours(budget, work / f"{budget:g}-{i}", flags)
            print(f"T={budget:g} s, {name}: {runs[name]}", file=sys.stderr, flush=True)
        choice, best = picked(budget), min(runs, key=lambda n: runs[n]["val_loss"])
        rows.append({
            "budget_s": budget,
            "runs": runs,
            "picked": choice,
            "best": best,
            "picked_val_minus_reference": round(runs[choice]["val_loss"] - runs[REFERENCE]["val_loss"], 4),
        })
    if args.json:
        print(json.dumps({"machine": {"cpus": os.cpu_count(), "load_avg_1m": os.getloadavg()[0]}, "rows": rows}))
        return
    for row in rows:
        print(f"T = {row['budget_s']:g} s")
        for name, run in row["runs"].items():
            marks = " <- picked by --time-limit" if name == row["picked"] else ""
            print(f"  {name:42s} full-val {run['val_loss']:.4f}  {run['wall_s']:6.1f} s  {run['steps']:6d} steps{marks}")
        print(f"  picked - cpu preset: {row['picked_val_minus_reference']:+.4f} nats; best: {row['best']}")


if __name__ == "__main__":
    main()

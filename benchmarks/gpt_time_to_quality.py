"""Time to quality on Tiny Shakespeare (CPU): `bigramlm train --model gpt` against
nanoGPT's documented CPU recipe, both run in this process's session, whole processes timed.

The reference is nanoGPT itself, which this benchmark does not fetch or ship: pass the
path of a nanoGPT checkout whose ``data/shakespeare_char`` has been prepared
(``train.bin``, ``val.bin``, ``meta.pkl``). It runs, from that directory::

    python train.py config/train_shakespeare_char.py --device=cpu --compile=False \
        --eval_iters=20 --log_interval=1 --block_size=64 --batch_size=12 --n_layer=4 \
        --n_head=4 --n_embd=128 --max_iters=2000 --lr_decay_iters=2000 --dropout=0.0

and scores its checkpoint the way `bigramlm eval` scores ours: mean cross-entropy over
the whole val split in consecutive 64-character windows.

Then, with T = nanoGPT's measured wall time:
  1. ``bigramlm train --data tinyshakespeare --model gpt --time-limit T/2``: goal val <= nanoGPT's;
  2. ``bigramlm train --data tinyshakespeare --model gpt --time-limit T``: goal val <= 1.75;
  3. the documented default command ``--time-limit 36`` (no other flag), as is.

    python benchmarks/gpt_time_to_quality.py --nanogpt /tmp/nanogpt [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

NANOGPT_ARGS = [
    "config/train_shakespeare_char.py", "--device=cpu", "--compile=False", "--eval_iters=20", "--log_interval=1",
    "--block_size=64", "--batch_size=12", "--n_layer=4", "--n_head=4", "--n_embd=128", "--max_iters=2000",
    "--lr_decay_iters=2000", "--dropout=0.0",
]


def run_timed(cmd: list[str], cwd: str | None = None, env: dict[str, str] | None = None) -> tuple[float, subprocess.CompletedProcess]:
    started = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    took = time.perf_counter() - started
    if proc.returncode != 0:
        sys.exit(f"command failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr[-3000:]}")
    return took, proc


@torch.no_grad()
def score_nanogpt(nanogpt: Path, ckpt_path: Path, block: int = 64) -> float:
    """Full-val mean cross-entropy of a nanoGPT checkpoint in consecutive ``block`` windows."""
    sys.path.insert(0, str(nanogpt))
    try:
        from model import GPT, GPTConfig  # nanoGPT's model.py, from the given path
    finally:
        sys.path.pop(0)
    ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=False)
    model = GPT(GPTConfig(**ckpt["model_args"]))
    state = {k.removeprefix("_orig_mod."): v for k, v in ckpt["model"].items()}
    model.load_state_dict(state)
    model.eval()
    val = torch.from_numpy(np.fromfile(nanogpt / "data" / "shakespeare_char" / "val.bin", dtype=np.uint16).astype(np.int64))
    inputs, targets = val[:-1], val[1:]
    n = len(targets)
    full = n // block
    nats = 0.0
    x_all, y_all = inputs[: full * block].view(full, block), targets[: full * block].view(full, block)
    for start in range(0, full, 256):
        logits, _ = model(x_all[start : start + 256], y_all[start : start + 256])  # targets: logits at every position
        nats += F.cross_entropy(logits.reshape(-1, logits.size(-1)), y_all[start : start + 256].reshape(-1), reduction="sum").item()
    if n > full * block:
        x, y = inputs[full * block :].unsqueeze(0), targets[full * block :].unsqueeze(0)
        logits, _ = model(x, y)
        nats += F.cross_entropy(logits.reshape(-1, logits.size(-1)), y.reshape(-1), reduction="sum").item()
    return nats / n


def run_ours(limit: float | None, out: Path, extra: list[str] | None = None) -> dict:
    cmd = [sys.executable, "-m", "bigramlm", "train", "--data", "tinyshakespeare", "--model", "gpt", "--out", str(out), "--json", "--overwrite"]
    if limit is not None:
        cmd += ["--time-limit", f"{limit:.2f}"]
    took, proc = run_timed(cmd + (extra or []))
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    return {"command": "bigramlm " + " ".join(cmd[3:]), "wall_s": round(took, 2), "val_loss": summary["loss"], "steps": summary["steps"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nanogpt", required=True, type=Path, help="nanoGPT checkout with data/shakespeare_char prepared")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--skip-default", action="store_true", help="skip the literal --time-limit 36 run")
    args = parser.parse_args()
    if not (args.nanogpt / "train.py").exists() or not (args.nanogpt / "data/shakespeare_char/val.bin").exists():
        sys.exit(f"{args.nanogpt} is not a nanoGPT checkout with data/shakespeare_char prepared")
    if "BIGRAMLM_DATA_DIR" not in os.environ:
        sys.exit("set BIGRAMLM_DATA_DIR (Tiny Shakespeare must be found offline)")

    work = Path(tempfile.mkdtemp(prefix="gpt-ttq-"))
    ref_out = work / "nanogpt-out"
    ref_wall, proc = run_timed([sys.executable, "train.py", *NANOGPT_ARGS, f"--out_dir={ref_out}"], cwd=str(args.nanogpt))
    own_estimate = [l for l in proc.stdout.splitlines() if l.startswith("step 2000:")]
    ref_val = score_nanogpt(args.nanogpt, ref_out / "ckpt.pt")
    print(f"nanoGPT: {ref_wall:.1f} s wall, full-val {ref_val:.4f} ({own_estimate[-1] if own_estimate else ''})", file=sys.stderr, flush=True)

    half = run_ours(ref_wall / 2, work / "half")
    print(f"ours, half the time: {half}", file=sys.stderr, flush=True)
    same = run_ours(ref_wall, work / "same")
    print(f"ours, same time: {same}", file=sys.stderr, flush=True)
    default = None if args.skip_default else run_ours(36, work / "default")

    result = {
        "machine": {"cpus": os.cpu_count(), "load_avg_1m": os.getloadavg()[0]},
        "nanogpt": {"wall_s": round(ref_wall, 2), "full_val_loss": round(ref_val, 4)},
        "half_time": {**half, "wall_ratio": round(half["wall_s"] / ref_wall, 3), "goal": f"val <= {ref_val:.4f}",
                      "met": half["val_loss"] <= ref_val and half["wall_s"] <= ref_wall / 2},
        "same_time": {**same, "wall_ratio": round(same["wall_s"] / ref_wall, 3), "goal": "val <= 1.75",
                      "met": same["val_loss"] <= 1.75},
    }
    if default is not None:
        result["default_36s"] = {**default, "wall_ratio": round(default["wall_s"] / ref_wall, 3)}
    if args.json:
        print(json.dumps(result))
    else:
        print(f"nanoGPT CPU recipe     : {ref_wall:7.1f} s  full-val {ref_val:.4f}")
        for key in ("half_time", "same_time", "default_36s"):
            if key in result:
                r = result[key]
                print(f"{key:23s}: {r['wall_s']:7.1f} s  full-val {r['val_loss']:.4f}  wall ratio {r['wall_ratio']:.2f}  steps {r['steps']}"
                      + (f"  goal {r['goal']}: {'met' if r['met'] else 'NOT met'}" if "goal" in r else ""))


if __name__ == "__main__":
    main()

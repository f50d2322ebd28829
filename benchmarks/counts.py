"""The whole `bigramlm train --method counts` command on Tiny Shakespeare, process start included.

Timed as a subprocess, so interpreter start-up and imports count. In the same run it
times `python -c "import torch"` (the floor any torch program pays) as the reference,
and reports the full-split val loss the command prints.

    .venv/bin/python benchmarks/counts.py [--json] [--repeats 3]
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import parser, report, shakespeare_path


def timed(command: list[str], **kwargs) -> tuple[float, subprocess.CompletedProcess]:
    start = time.perf_counter()
    proc = subprocess.run(command, capture_output=True, text=True, **kwargs)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed: {proc.stderr.strip()}")
    return elapsed, proc


def main() -> None:
    p = parser(__doc__)
    args = p.parse_args()
    data_dir = shakespeare_path().parent.parent
    cli = Path(sys.executable).with_name("bigramlm")
    command = [str(cli)] if cli.exists() else [sys.executable, "-m", "bigramlm"]
    env = {**__import__("os").environ, "BIGRAMLM_DATA_DIR": str(data_dir)}
    runs, floors, loss = [], [], None
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(max(1, args.repeats)):  # interleaved with the reference
            out = Path(tmp) / f"run{i}"
            t, proc = timed([*command, "train", "--data", "tinyshakespeare", "--method", "counts", "--out", str(out), "--json"], env=env)
            runs.append(t)
            loss = json.loads(proc.stdout)["loss"]
            floors.append(timed([sys.executable, "-c", "import torch"])[0])
    med = lambda xs: sorted(xs)[len(xs) // 2]  # noqa: E731
    t_run, t_floor = med(runs), med(floors)
    met = t_run < 3.0 and loss <= 2.4825
    result = {
        "command": "bigramlm train --data tinyshakespeare --method counts --out RUN --json",
        "seconds": round(t_run, 3),
        "import_torch_seconds": round(t_floor, 3),
        "ratio_to_import_torch": round(t_run / t_floor, 2),
        "val_loss": round(loss, 5),
        "goal": "< 3 s and val <= 2.4825",
        "goal_met": met,
    }
    report("counts", result, args.json, [
        f"bigramlm train --method counts (whole process): {t_run:.2f} s, val loss {loss:.4f}",
        f"python -c 'import torch' (same run):           {t_floor:.2f} s",
        f"ratio: {t_run / t_floor:.2f}x the bare torch import",
        f"goal < 3 s and val <= 2.4825: {'met' if met else 'NOT met'}",
    ])


if __name__ == "__main__":
    main()

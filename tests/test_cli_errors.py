"""The error contract (docs/reliability.md), through the real CLI process: bad input gets one
``error: ...`` line on stderr and exit status 2, never a traceback.

One table drives every case: each runs ``python -m bigramlm ...`` as a subprocess
(PYTHONPATH inherited) against tiny runs made once for the module.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from bigramlm.cli import main
from desk_helpers import write_support_csv

#: ``error: ...`` from the library, or argparse's ``bigramlm train: error: ...``.
ERROR_LINE = re.compile(r"^(error: |bigramlm( [a-z]+)*: error: )\S")


def bigramlm(*argv: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bigramlm", *argv], capture_output=True, text=True,
                          env={**os.environ}, timeout=timeout, stdin=subprocess.DEVNULL)


def _rewrite_config(src: Path, dst: Path, change) -> Path:
    shutil.copytree(src, dst)
    config = json.loads((dst / "config.json").read_text(encoding="utf-8"))
    change(config)
    (dst / "config.json").write_text(json.dumps(config), encoding="utf-8")
    return dst


@pytest.fixture(scope="module")
def paths(tmp_path_factory) -> dict[str, Path]:
    """A counts bigram, a 2-step GPT and a support run, plus the odd files the cases need."""
    root = tmp_path_factory.mktemp("cli-errors")
    corpus = root / "corpus.txt"
    corpus.write_text("to be, or not to be: that is the question.\n" * 60, encoding="utf-8")
    table = write_support_csv(root / "support.csv")
    quiet = ["--no-progress", "--json"]
    assert main(["train", "--data", str(corpus), "--out", str(root / "counts"), "--method", "counts", "--json"]) == 0
    assert main(["train", "--data", str(corpus), "--out", str(root / "gpt"), "--model", "gpt", "--preset", "tiny",
                 "--steps", "2", "--eval-every", "2", "--checkpoint-every", "2", *quiet]) == 0
    assert main(["train", "--data", str(table), "--out", str(root / "support"), "--method", "counts", "--json"]) == 0
    a_file = root / "a-file"
    a_file.write_text("not a folder\n", encoding="utf-8")
    fifo = root / "fifo"
    os.mkfifo(fifo)
    (root / "a-dir").mkdir()
    counts = root / "counts"
    _rewrite_config(counts, root / "model-is-a-string", lambda c: c.update(model="bigram"))
    _rewrite_config(counts, root / "model-config-null", lambda c: c["model"].update(config=None))
    _rewrite_config(counts, root / "negative-block", lambda c: c["training"].update(block_size=-5))
    return {"root": root, "corpus": corpus, "csv": table, "file": a_file, "fifo": fifo, "dir": root / "a-dir",
            "counts": counts, "gpt": root / "gpt", "support": root / "support"}


NO_CUDA = pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA, so --device cuda is valid")


def case(name: str, command: str, *marks: pytest.MarkDecorator) -> object:
    return pytest.param(command, id=name, marks=marks)


#: {name} is a path from the ``paths`` fixture, {new} a fresh run directory.
CASES = [
    case("sample-seed-negative", "sample {counts} --seed -1"),
    case("sample-seed-2**70", f"sample {{counts}} --seed {2**70}"),
    case("sample-temperature-nan", "sample {counts} --temperature nan"),
    case("assist-temperature-nan", "assist {support} hello --temperature nan"),
    case("train-beta2-5", "train --data {corpus} --out {new} --beta2 5"),
    case("train-beta2-nan", "train --data {corpus} --out {new} --beta2 nan"),
    case("train-lr-inf", "train --data {corpus} --out {new} --lr inf"),
    case("train-lr-1e18", "train --data {corpus} --out {new} --lr 1e18"),
    case("train-weight-decay-nan", "train --data {corpus} --out {new} --weight-decay nan"),
    case("train-alpha-inf", "train --data {corpus} --out {new} --method counts --alpha inf"),
    case("train-alpha-nan", "train --data {corpus} --out {new} --method counts --alpha nan"),
    case("train-alpha-0", "train --data {corpus} --out {new} --method counts --alpha 0"),
    case("train-bpe-vocab-0", "train --data {corpus} --out {new} --vocab-size 0 --tokenizer bpe"),
    case("train-device-cuda", "train --data {corpus} --out {new} --device cuda", NO_CUDA),
    case("train-device-bogus", "train --data {corpus} --out {new} --device bogus"),
    case("train-batch-1e9", "train --data {corpus} --out {new} --batch-size 1000000000"),
    case("train-gpt-n-embd-200000", "train --data {corpus} --out {new} --model gpt --n-embd 200000"),
    case("train-out-under-a-file", "train --data {corpus} --out {file}/sub"),
    case("train-threads-0", "train --data {corpus} --out {new} --threads 0"),
    case("data-export-out-is-a-dir", "data export {csv} --out {dir}"),
    case("brand-init-out-under-a-file", "brand init --data {csv} --out {file}/brand.toml"),
    case("eval-model-is-a-string", "eval {root}/model-is-a-string"),
    case("eval-model-config-null", "eval {root}/model-config-null"),
    case("eval-negative-block-size", "eval {root}/negative-block"),
    case("serve-model-is-a-string", "serve {root}/model-is-a-string --port 0"),
    case("serve-model-config-null", "serve {root}/model-config-null --port 0"),
    case("serve-negative-block-size", "serve {root}/negative-block --port 0"),
    case("learn-lr-nan", "learn {support} --cases {csv} --lr nan"),
    case("learn-batch-negative", "learn {support} --cases {csv} --batch-size -1"),
    case("learn-batch-0", "learn {support} --batch-size 0"),
    case("learn-time-limit-0", "learn {support} --cases {csv} --time-limit 0"),
    case("learn-time-limit-nan", "learn {support} --time-limit nan"),
    case("train-data-dev-zero", "train --data /dev/zero --out {new}"),
    case("train-data-fifo", "train --data {fifo} --out {new}"),
    case("sample-threads-0", "sample {counts} --threads 0"),
    case("data-export-no-labels", "data export {csv} --out {new}.txt --no-labels"),
    case("train-resume-finished",
         "train --data {corpus} --out {gpt_copy} --model gpt --preset tiny --resume --no-progress"),
]


@pytest.mark.parametrize("command", CASES)
def test_bad_input_is_one_error_line_and_exit_2(paths, tmp_path, command: str) -> None:
    names = {key: str(value) for key, value in paths.items()}
    names["new"] = str(tmp_path / "new-run")
    if "{gpt_copy}" in command:
        names["gpt_copy"] = str(shutil.copytree(paths["gpt"], tmp_path / "gpt-copy"))
    argv = [part.format(**names) for part in command.split()]
    proc = bigramlm(*argv)
    lines = proc.stderr.splitlines()
    assert proc.returncode == 2, (command, proc.returncode, proc.stderr[-2000:])
    assert proc.stdout == "", (command, proc.stdout[:500])
    assert len(lines) == 1 and ERROR_LINE.match(lines[0]), (command, proc.stderr[-2000:])
    assert not (tmp_path / "new-run" / "model.safetensors").exists()


def test_resume_with_more_steps_extends_a_finished_run(paths, tmp_path) -> None:
    """A finished run is an error to resume as it is (above), but --steps above its own extends it."""
    run = shutil.copytree(paths["gpt"], tmp_path / "gpt-copy")
    done = json.loads((run / "config.json").read_text(encoding="utf-8"))["training"]["steps"]
    proc = bigramlm("train", "--data", str(paths["corpus"]), "--out", str(run), "--resume", "--steps", str(done + 2),
                    "--no-progress", "--json")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout)["steps"] == done + 2
    assert json.loads((run / "config.json").read_text(encoding="utf-8"))["training"]["steps"] == done + 2


def _read_only_mounts() -> list[Path]:
    """Read-only file systems this machine already has (where even root cannot write)."""
    found = []
    for line in Path("/proc/mounts").read_text(encoding="utf-8").splitlines():
        fields = line.split()
        if len(fields) > 3 and "ro" in fields[3].split(",") and Path(fields[1]).is_dir():
            found.append(Path(fields[1]))
    return found


def test_out_on_a_read_only_directory(paths, tmp_path) -> None:
    """A folder nobody may write to: mode 0o555 for a user; as root (CI), who writes past
    modes, a read-only bind mount in a private mount namespace, or a read-only file system."""
    locked = tmp_path / "locked"
    locked.mkdir()
    argv = [sys.executable, "-m", "bigramlm", "train", "--data", str(paths["corpus"]), "--out", str(locked / "run"),
            "--method", "counts"]
    command = argv
    if os.geteuid() != 0:
        locked.chmod(0o555)
    elif shutil.which("unshare") and subprocess.run(["unshare", "-m", "true"], capture_output=True).returncode == 0:
        script = 'mount --bind -o ro "$0" "$0" && exec "$@"'
        command = ["unshare", "-m", "sh", "-c", script, str(locked), *argv]
    elif _read_only_mounts():
        command = [*argv[:-3], "--out", str(_read_only_mounts()[0] / "run"), "--method", "counts"]
    else:
        pytest.fail("no way to make a folder that root cannot write here: no unshare, no read-only mount")
    try:
        proc = subprocess.run(command, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
        assert proc.returncode == 2 and proc.stdout == "", proc.stderr
        assert proc.stderr.startswith("error: --out ") and "not writable" in proc.stderr and proc.stderr.count("\n") == 1
        assert not (locked / "run").exists()
    finally:
        locked.chmod(0o755)


def test_a_tiny_temperature_is_greedy_not_an_error(paths, capsys) -> None:
    """1e-300 divides the logits into overflow unless the max is subtracted first."""
    tiny = bigramlm("sample", str(paths["gpt"]), "--prompt", "to", "--tokens", "30", "--temperature", "1e-300", "--seed", "1")
    assert tiny.returncode == 0 and tiny.stderr == "", tiny.stderr[-2000:]
    assert main(["sample", str(paths["gpt"]), "--prompt", "to", "--tokens", "30", "--temperature", "0"]) == 0
    greedy = capsys.readouterr().out
    assert len(tiny.stdout) == 31 and tiny.stdout == greedy

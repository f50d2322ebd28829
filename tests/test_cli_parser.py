"""The parser itself: instant --help (no torch), usage on a bare command, library
parameters shown as each command's flags, --threads, and strict --json."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import textwrap
from dataclasses import fields
from pathlib import Path

import pytest
import torch

from bigramlm.cli import build_parser, flag_names, main
from bigramlm.cli.common import print_json, strict_json
from bigramlm.config import TrainConfig

HEAVY = ("torch", "numpy", "pandas", "sklearn", "fastapi", "safetensors", "tokenizers", "matplotlib", "scipy")

#: Every leaf command, as typed.
COMMANDS = [["train"], ["eval"], ["sample"], ["data", "info"], ["data", "export"], ["assist"], ["brand", "init"],
            ["learn"], ["serve"]]


def python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          env={**os.environ}, timeout=120)


def test_help_and_argument_errors_import_no_torch() -> None:
    """--help, every SUBCOMMAND --help, a bare group and a bad flag: none imports torch, numpy or pandas."""
    proc = python(f"""
        import contextlib, io, json, sys
        from bigramlm.cli import main
        heavy = {HEAVY!r}
        report = {{}}
        for argv in [[], ["--help"], ["data"], ["brand"], ["train", "--lr"], ["sample", "RUN", "--tokens", "many"],
                     *[[*c, "--help"] for c in {COMMANDS!r}]]:
            out, err = io.StringIO(), io.StringIO()
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                try:
                    code = main(argv)
                except SystemExit as exc:
                    code = exc.code
            report[" ".join(argv)] = [code, out.getvalue()[:60] + err.getvalue()[:60], [m for m in heavy if m in sys.modules]]
        print(json.dumps(report))
    """)
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(proc.stdout)
    for argv, (code, text, heavy) in report.items():
        assert heavy == [], (argv, heavy)
        assert "usage: bigramlm" in text or ": error: " in text, (argv, text)
        assert code == (0 if argv.endswith("--help") else 2), (argv, code)


def test_bare_command_prints_usage_and_commands() -> None:
    proc = subprocess.run([sys.executable, "-m", "bigramlm"], capture_output=True, text=True, env={**os.environ}, timeout=120)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.startswith("usage: bigramlm")
    for command in ("train", "eval", "sample", "data", "assist", "brand", "learn", "serve"):
        assert f"\n    {command} " in proc.stderr, command
    code = main_exit(["data"])
    assert code == 2


def main_exit(argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as exc:
        return int(exc.code)


def test_no_labels_is_a_train_flag_only(capsys) -> None:
    parser = build_parser()
    assert parser.parse_args(["train", "--data", "x.csv", "--out", "r", "--no-labels"]).labels is False
    for argv in (["data", "export", "x.csv", "--out", "y.txt", "--no-labels"], ["brand", "init", "--data", "x.csv", "--out", "b.toml", "--no-labels"]):
        assert main_exit(argv) == 2
        assert "unrecognized arguments: --no-labels" in capsys.readouterr().err
    for command in (["data", "export"], ["brand", "init"]):
        assert main_exit([*command, "--help"]) == 0
        assert "--no-labels" not in capsys.readouterr().out


def _options(argv: list[str]):
    """(per-command names, the command's flags) as main() sees them after parsing ``argv``."""
    args = build_parser().parse_args(argv)
    return getattr(args, "flag_names", None), args.cli_options


MINIMAL = {
    "train": ["train", "--data", "x", "--out", "r"],
    "eval": ["eval", "r"],
    "sample": ["sample", "r"],
    "data info": ["data", "info", "x"],
    "data export": ["data", "export", "x", "--out", "y"],
    "assist": ["assist", "r", "hello"],
    "brand init": ["brand", "init", "--data", "x", "--out", "y"],
    "learn": ["learn", "r"],
    "serve": ["serve", "r"],
}

#: (command, library parameter, how the user typed it; the parameter itself where the command has no flag for it)
MAPPING = [
    ("train", "learning_rate", "--lr"), ("train", "warmup_steps", "--warmup"), ("train", "out_dir", "--out"),
    ("train", "batch_size", "--batch-size"), ("train", "n_embd", "--n-embd"), ("train", "seed", "--seed"),
    ("train", "data", "--data"), ("train", "threads", "--threads"), ("train", "intent_col", "--intent-col"),
    ("train", "preset", "--preset"), ("train", "model", "--model"), ("train", "device", "--device"),
    ("sample", "max_new_tokens", "--tokens"), ("sample", "temperature", "--temperature"), ("sample", "top_k", "--top-k"),
    ("sample", "seed", "--seed"), ("sample", "threads", "--threads"), ("sample", "block_size", "block_size"),
    ("assist", "max_new_tokens", "--max-tokens"), ("assist", "n", "--n"), ("assist", "message", "message"),
    ("assist", "k_similar", "--similar"), ("assist", "brand_path", "--brand"), ("assist", "seed", "--seed"),
    ("assist", "top_p", "--top-p"), ("assist", "data", "--data"),
    ("eval", "max_new_tokens", "--max-tokens"), ("eval", "n", "--n"), ("eval", "drafts", "--drafts"), ("eval", "limit", "--limit"),
    ("eval", "split", "--split"), ("eval", "data", "--data"), ("eval", "seed", "--seed"), ("eval", "threads", "--threads"),
    ("learn", "learning_rate", "--lr"), ("learn", "batch_size", "--batch-size"), ("learn", "steps", "--steps"),
    ("learn", "replay", "--replay"), ("learn", "seed", "--seed"), ("learn", "cases_path", "--cases"), ("learn", "threads", "--threads"),
    ("data info", "block_size", "--block-size"), ("data info", "data", "data"),
    ("data export", "out", "--out"), ("data export", "intent_col", "--intent-col"),
    ("brand init", "out", "--out"), ("brand init", "data", "--data"),
    ("serve", "brand_path", "--brand"), ("serve", "threads", "--threads"), ("serve", "port", "--port"),
]


@pytest.mark.parametrize(("command", "param", "shown"), MAPPING)
def test_library_parameters_become_the_commands_flags(command: str, param: str, shown: str) -> None:
    names = flag_names((param,), *_options(MINIMAL[command]))
    assert names.get(param, param) == shown


def test_every_train_config_field_with_a_flag_maps_to_it() -> None:
    """A TrainConfig error (from validate) always names a flag train really has."""
    command_names, options = _options(MINIMAL["train"])
    unmapped = {f.name for f in fields(TrainConfig)} - set(flag_names(tuple(f.name for f in fields(TrainConfig)), command_names, options))
    assert unmapped == {"beta1", "ema_decay", "log_every"}  # set in code, never on the command line


def test_errors_name_the_flag_end_to_end(tmp_path, capsys) -> None:
    corpus = tmp_path / "c.txt"
    corpus.write_text("abc abd abe\n" * 50, encoding="utf-8")
    assert main_exit(["train", "--data", str(corpus), "--out", str(tmp_path / "r"), "--lr", "2", "--warmup", "5"]) == 2
    assert capsys.readouterr().err == "error: --lr must be in (0, 1] (got 2.0)\n"
    from desk_helpers import train_support_run

    support = train_support_run(tmp_path)
    assert main_exit(["learn", str(support), "--lr", "nan"]) == 2
    assert capsys.readouterr().err == "error: --lr must be a finite number (got nan)\n"


def test_threads_sets_torch_threads_for_the_command(tmp_path, capsys) -> None:
    parser = build_parser()
    for command in (["train"], ["eval"], ["sample"], ["assist"], ["learn"], ["serve"]):
        assert "--threads" in _options(MINIMAL[" ".join(command)])[1], command
    assert "--threads" not in _options(MINIMAL["data info"])[1]
    corpus = tmp_path / "c.txt"
    corpus.write_text("abc abd abe\n" * 50, encoding="utf-8")
    assert main(["train", "--data", str(corpus), "--out", str(tmp_path / "r"), "--method", "counts", "--json"]) == 0
    before = torch.get_num_threads()
    wanted = 1 if before != 1 else 2
    try:
        assert main(["sample", str(tmp_path / "r"), "--tokens", "5", "--seed", "0", "--threads", str(wanted)]) == 0
        assert torch.get_num_threads() == wanted
    finally:
        torch.set_num_threads(before)
    assert main_exit(["sample", str(tmp_path / "r"), "--threads", "0"]) == 2
    assert "argument --threads: must be in 1..1024 (got 0)" in capsys.readouterr().err
    assert parser.parse_args(MINIMAL["sample"]).threads is None  # default: the library's policy


def _no_constants(token: str) -> None:
    raise AssertionError(f"{token} is not JSON")


def test_json_output_is_strict(capsys) -> None:
    value = {"loss": math.nan, "curve": [1.5, math.inf, -math.inf], "nested": {"p": (math.nan, 2)}, "n": 3, "s": "é"}
    text = strict_json(value)
    assert json.loads(text, parse_constant=_no_constants) == {"loss": None, "curve": [1.5, None, None], "nested": {"p": [None, 2]}, "n": 3, "s": "é"}
    print_json({"perplexity": math.inf})
    assert json.loads(capsys.readouterr().out, parse_constant=_no_constants) == {"perplexity": None}


def test_every_json_output_goes_through_the_strict_helper() -> None:
    cli = Path(__file__).resolve().parents[1] / "src" / "bigramlm" / "cli"
    dumping = [p.name for p in cli.glob("*.py") if "json.dumps(" in p.read_text(encoding="utf-8") and p.name != "common.py"]
    assert dumping == []



"""The command line end to end, and every bad input of issue 2 item 12 as a one-line error."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bigramlm.cli import build_parser, main


def run_cli(argv: list[str], capsys) -> tuple[int, str, str]:
    try:
        code = main([str(a) for a in argv])
    except SystemExit as exc:  # argparse: --help, usage errors
        code = exc.code if isinstance(exc.code, int) else 1
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code: int, err: str, *fragments: str) -> None:
    assert code != 0
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "error: " in lines[0]
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """One short sgd run and one counts run on a hand-made corpus, shared by the tests."""
    root = tmp_path_factory.mktemp("cli-runs")
    corpus = root / "corpus.txt"
    corpus.write_text(("to be, or not to be: that is the question.\n" * 60) + "whether 'tis nobler in the mind\n", encoding="utf-8")
    sgd, counts = root / "sgd", root / "counts"
    assert main(["train", "--data", str(corpus), "--out", str(sgd), "--steps", "60", "--lr", "0.05",
                 "--eval-every", "30", "--checkpoint-every", "30", "--no-progress"]) == 0
    assert main(["train", "--data", str(corpus), "--out", str(counts), "--method", "counts"]) == 0
    return {"corpus": corpus, "sgd": sgd, "counts": counts, "root": root}


# --- end to end -------------------------------------------------------------------


def test_train_writes_a_complete_run_directory(runs) -> None:
    sgd = runs["sgd"]
    for name in ("config.json", "model.safetensors", "tokenizer.json", "metrics.jsonl", "eval.json", "loss.png", "resume.safetensors"):
        assert (sgd / name).is_file(), name
    config = json.loads((sgd / "config.json").read_text(encoding="utf-8"))
    assert config["model"]["name"] == "bigram"
    assert config["training"]["steps"] == 60 and config["training"]["learning_rate"] == 0.05
    records = [json.loads(line) for line in (sgd / "metrics.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [r["step"] for r in records if "val_loss" in r] == [30, 60]
    assert all("ema_loss" in r for r in records if "loss" in r)
    assert (sgd / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_train_json_summary(runs, capsys) -> None:
    out = runs["root"] / "json-run"
    code, stdout, _ = run_cli(["train", "--data", runs["corpus"], "--out", out, "--method", "counts", "--json"], capsys)
    assert code == 0
    summary = json.loads(stdout)
    assert summary["split"] == "val" and summary["loss"] > 0 and summary["steps"] == 0


def test_eval_json_and_text(runs, capsys) -> None:
    code, out, _ = run_cli(["eval", runs["counts"], "--json"], capsys)
    assert code == 0
    result = json.loads(out)
    assert set(result) == {"split", "loss", "bits_per_char", "perplexity", "tokens"}
    recorded = json.loads((runs["counts"] / "eval.json").read_text())
    assert result["loss"] == pytest.approx(recorded["loss"], abs=1e-9)  # eval == what train reported
    code, out, _ = run_cli(["eval", runs["sgd"], "--split", "train"], capsys)
    assert code == 0 and out.startswith("train: loss ") and "bits/char" in out and "perplexity" in out


def test_sample_streams_text(runs, capsys) -> None:
    code, out, err = run_cli(["sample", runs["counts"], "--tokens", "300", "--seed", "7"], capsys)
    assert code == 0 and err == ""
    assert len(out) == 301 and out.endswith("\n")
    assert set(out) <= set(runs["corpus"].read_text(encoding="utf-8")) | {"\n"}
    code, again, _ = run_cli(["sample", runs["counts"], "--tokens", "300", "--seed", "7"], capsys)
    assert again == out  # --seed reproduces
    code, greedy, _ = run_cli(["sample", runs["sgd"], "--prompt", "to b", "--tokens", "20", "--temperature", "0"], capsys)
    code, top1, _ = run_cli(["sample", runs["sgd"], "--prompt", "to b", "--tokens", "20", "--top-k", "1", "--seed", "3"], capsys)
    assert code == 0 and greedy == top1 and len(greedy) == 21


def test_data_info_prints_context_target_pairs(runs, capsys) -> None:
    code, out, _ = run_cli(["data", "info", runs["corpus"], "--block-size", "8"], capsys)
    assert code == 0
    pairs = [line for line in out.splitlines() if line.startswith("when input is [")]
    assert len(pairs) == 8
    assert " the target is: " in pairs[0]
    assert "vocab_size = " in out and "length: " in out


def test_help_on_every_command(capsys) -> None:
    parser = build_parser()
    commands = [[name] for name in parser._subparsers._group_actions[0].choices]  # noqa: SLF001
    commands.append(["data", "info"])
    assert ["train"] in commands and ["sample"] in commands
    for command in commands:
        code, out, _ = run_cli([*command, "--help"], capsys)
        assert code == 0 and out.startswith("usage: bigramlm"), command
    code, out, _ = run_cli(["--help"], capsys)
    assert code == 0 and "train" in out


def test_shakespeare_counts_reaches_the_add_one_optimum(shakespeare_path, tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("BIGRAMLM_DATA_DIR", str(shakespeare_path.parent.parent))
    code, out, _ = run_cli(["train", "--data", "tinyshakespeare", "--method", "counts", "--out", tmp_path / "ts", "--json"], capsys)
    assert code == 0
    summary = json.loads(out)
    assert summary["loss"] == pytest.approx(2.4819, abs=1e-3)
    n = len(shakespeare_path.read_text(encoding="utf-8"))
    assert summary["tokens"] == n - int(0.9 * n) - 1  # every target of the val split, not a batch estimate


# --- bad input: one line, no traceback, non-zero exit --------------------------------


@pytest.fixture
def bad_files(tmp_path) -> dict[str, Path]:
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes("caf\u00e9 au lait, d\u00e9j\u00e0 vu\n".encode("latin-1") * 20)
    short = tmp_path / "short.txt"
    short.write_text("a short file of a few dozen characters, no more.\n", encoding="utf-8")
    folder = tmp_path / "folder"
    folder.mkdir()
    return {"missing": tmp_path / "missing.txt", "empty": empty, "latin1": latin1, "short": short, "folder": folder}


@pytest.mark.parametrize(
    ("which", "fragments"),
    [
        ("missing", ["no such file"]),
        ("empty", ["is empty"]),
        ("latin1", ["not UTF-8", "0xe9"]),
        ("folder", ["directory"]),
    ],
)
@pytest.mark.parametrize("command", ["train", "data"])
def test_bad_data_files(bad_files, tmp_path, capsys, which: str, fragments: list[str], command: str) -> None:
    path = bad_files[which]
    argv = ["train", "--data", path, "--out", tmp_path / "run"] if command == "train" else ["data", "info", path]
    code, _, err = run_cli(argv, capsys)
    assert_one_line_error(code, err, *fragments)
    assert not (tmp_path / "run" / "model.safetensors").exists()


def test_block_size_not_shorter_than_a_split(bad_files, tmp_path, capsys) -> None:
    # 50 characters: the val split has 5, so a block of 5 cannot fit.
    code, _, err = run_cli(["train", "--data", bad_files["short"], "--out", tmp_path / "run", "--block-size", "5"], capsys)
    assert_one_line_error(code, err, "--block-size 5", "val split")
    code, _, err = run_cli(["data", "info", bad_files["short"], "--block-size", "100"], capsys)
    assert_one_line_error(code, err, "--block-size 100")


def _copy_run(src: Path, dst: Path) -> Path:
    dst.mkdir()
    for f in src.iterdir():
        (dst / f.name).write_bytes(f.read_bytes())
    return dst


@pytest.mark.parametrize("command", ["eval", "sample"])
def test_missing_or_corrupt_checkpoint(runs, tmp_path, capsys, command: str) -> None:
    code, _, err = run_cli([command, tmp_path / "no-such-run"], capsys)
    assert_one_line_error(code, err, "no such run directory")

    run = _copy_run(runs["counts"], tmp_path / "no-weights")
    (run / "model.safetensors").unlink()
    code, _, err = run_cli([command, run], capsys)
    assert_one_line_error(code, err, "missing checkpoint")

    run = _copy_run(runs["counts"], tmp_path / "garbage")
    (run / "model.safetensors").write_bytes(b"\x00\x01not a safetensors file")
    code, _, err = run_cli([command, run], capsys)
    assert_one_line_error(code, err, "corrupt checkpoint")

    run = _copy_run(runs["counts"], tmp_path / "truncated")
    weights = (run / "model.safetensors").read_bytes()
    (run / "model.safetensors").write_bytes(weights[: len(weights) // 2])
    code, _, err = run_cli([command, run], capsys)
    assert_one_line_error(code, err, "corrupt checkpoint")

    run = _copy_run(runs["counts"], tmp_path / "bad-config")
    (run / "config.json").write_text("{", encoding="utf-8")
    code, _, err = run_cli([command, run], capsys)
    assert_one_line_error(code, err, "corrupt")

    run = _copy_run(runs["counts"], tmp_path / "no-config")
    (run / "config.json").unlink()
    code, _, err = run_cli([command, run], capsys)
    assert_one_line_error(code, err, "config.json")


@pytest.mark.parametrize("command", ["eval", "sample"])
def test_tokenizer_that_does_not_match(runs, tmp_path, capsys, command: str) -> None:
    tokenizer = json.loads((runs["counts"] / "tokenizer.json").read_text(encoding="utf-8"))

    run = _copy_run(runs["counts"], tmp_path / "fewer")
    (run / "tokenizer.json").write_text(json.dumps({**tokenizer, "chars": tokenizer["chars"][:-1]}), encoding="utf-8")
    code, _, err = run_cli([command, run], capsys)
    assert_one_line_error(code, err, "does not match")

    # Same size, different characters: only the fingerprint can tell.
    run = _copy_run(runs["counts"], tmp_path / "swapped")
    chars = sorted([*tokenizer["chars"][:-1], "\u00e9"])
    (run / "tokenizer.json").write_text(json.dumps({**tokenizer, "chars": chars}), encoding="utf-8")
    code, _, err = run_cli([command, run], capsys)
    assert_one_line_error(code, err, "not the one this checkpoint was trained with")

    run = _copy_run(runs["counts"], tmp_path / "no-tokenizer")
    (run / "tokenizer.json").unlink()
    code, _, err = run_cli([command, run], capsys)
    assert_one_line_error(code, err, "tokenizer")


@pytest.mark.parametrize(("tokens", "fragment"), [("-1", "must not be negative"), ("1000000000000", "absurd")])
def test_negative_or_absurd_tokens(runs, capsys, tokens: str, fragment: str) -> None:
    code, out, err = run_cli(["sample", runs["counts"], "--tokens", tokens], capsys)
    assert_one_line_error(code, err, fragment)
    assert out == ""


def test_bad_arguments_are_one_line_usage_errors(runs, capsys) -> None:
    code, _, err = run_cli(["sample", runs["counts"], "--tokens", "many"], capsys)
    assert_one_line_error(code, err, "--tokens")
    code, _, err = run_cli(["sample", runs["counts"], "--temperature", "-1"], capsys)
    assert_one_line_error(code, err, "temperature")
    code, _, err = run_cli(["sample", runs["counts"], "--prompt", "to \u00e9"], capsys)
    assert_one_line_error(code, err, "'\u00e9'", "position 3")
    code, _, err = run_cli(["train", "--data", runs["corpus"], "--out", runs["sgd"]], capsys)
    assert_one_line_error(code, err, "already holds a run")
    code, _, err = run_cli(["train", "--data", runs["corpus"], "--out", runs["root"] / "x", "--steps", "0"], capsys)
    assert_one_line_error(code, err, "steps")


def test_real_process_exit_code_and_stderr(tmp_path) -> None:
    """The installed console script itself: exit status 2 and one stderr line."""
    script = Path(sys.executable).with_name("bigramlm")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "bigramlm"]
    proc = subprocess.run([*command, "sample", str(tmp_path / "absent")], capture_output=True, text=True,
                          env={**os.environ}, timeout=120)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.startswith("error: ") and proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr


def test_run_dir_that_is_a_file_and_moved_data(runs, tmp_path, capsys) -> None:
    code, _, err = run_cli(["eval", runs["corpus"]], capsys)  # a file, not a run directory
    assert_one_line_error(code, err, "not a run directory")
    other = tmp_path / "other.txt"
    other.write_text("a different corpus entirely, of another length.\n" * 10, encoding="utf-8")
    code, _, err = run_cli(["eval", runs["counts"], "--data", other], capsys)
    assert_one_line_error(code, err, "was trained on")
    # The same content under another name is accepted: the run records what it needs.
    moved = tmp_path / "moved.txt"
    moved.write_bytes(runs["corpus"].read_bytes())
    code, out, _ = run_cli(["eval", runs["counts"], "--data", moved, "--json"], capsys)
    assert code == 0 and json.loads(out)["tokens"] > 0


def test_data_info_json(runs, capsys) -> None:
    code, out, _ = run_cli(["data", "info", runs["corpus"], "--block-size", "4", "--json"], capsys)
    assert code == 0
    info = json.loads(out)
    text = runs["corpus"].read_text(encoding="utf-8")
    assert info["characters"] == len(text) and info["vocab"] == "".join(sorted(set(text)))
    assert [p["target"] for p in info["pairs"]] == [info["vocab"].index(c) for c in text[1:5]]

"""``exclude_intents`` / ``train --exclude-intents``: a run trained without some intents.

Their rows leave train and val after the split (the other rows stay exactly where they
were), test keeps them, the spec records the option so that the run's data rebuilds the
same, and ``excluded_rows`` hands out the rows taken out."""

from __future__ import annotations

import json

import pytest

from bigramlm.checkpoint import read_config
from bigramlm.cli import main
from bigramlm.data import load_run_data
from bigramlm.data.instructions import excluded_rows, load_instruction_data, load_instruction_data_from_spec
from bigramlm.data.run_files import InstructionRunFiles
from bigramlm.errors import BigramLMError
from desk_helpers import write_support_csv

NEW = ["get_refund", "contact_human_agent"]


def _ids(rows) -> list[int]:
    return [r.id for r in rows]


def _check_against_the_plain_split(plain, without, new):
    for part in ("train", "val"):
        assert _ids(without.parts[part]) == [r.id for r in plain.parts[part] if r.intent not in new]
        assert _ids(excluded_rows(without, part)) == [r.id for r in plain.parts[part] if r.intent in new]
        assert all(r.intent not in new for r in without.parts[part])
    assert _ids(without.parts["test"]) == _ids(plain.parts["test"])  # test keeps every row
    assert _ids(excluded_rows(without, "test")) == [r.id for r in plain.parts["test"] if r.intent in new]
    assert {i for i, _ in without.label_set} == {i for i, _ in plain.label_set} - set(new)


def test_excluded_after_the_split_and_kept_in_test(tmp_path):
    csv_path = write_support_csv(tmp_path / "support.csv")
    plain = load_instruction_data(str(csv_path))
    without = load_instruction_data(str(csv_path), exclude_intents=NEW)
    _check_against_the_plain_split(plain, without, set(NEW))
    assert excluded_rows(without) and all(r.intent in NEW for r in excluded_rows(without))
    spec = without.spec
    assert spec["exclude_intents"] == NEW
    assert spec["split"]["rows"]["train"] == len(without.parts["train"])
    assert spec["split"]["excluded_rows"] == {"train": len(excluded_rows(without)), "val": len(excluded_rows(without, "val"))}
    assert "exclude_intents" not in plain.spec and "excluded_rows" not in plain.spec["split"]
    assert all(r.intent not in NEW for r in without.run_files().train_rows)
    assert set(without.run_files().split_ids["test"]) == set(_ids(plain.parts["test"]))
    # The spec rebuilds the same rows, and hands out the same excluded rows.
    again = load_instruction_data_from_spec(spec)
    assert again.train_text == without.train_text and again.val_text == without.val_text
    assert _ids(excluded_rows(spec, "train")) == _ids(excluded_rows(without, "train"))
    assert excluded_rows(plain.spec) == [] and excluded_rows(plain) == []
    one = load_instruction_data(str(csv_path), exclude_intents="get_refund")  # one name, not its letters
    assert one.spec["exclude_intents"] == ["get_refund"]


def test_bitext_sample_keeps_every_other_row_in_its_part(bitext_sample_path):
    new = ["cancel_order", "track_order"]
    plain = load_instruction_data(str(bitext_sample_path))
    _check_against_the_plain_split(plain, load_instruction_data(str(bitext_sample_path), exclude_intents=new), set(new))


def test_bad_names_are_one_line_errors(tmp_path, capsys):
    csv_path = write_support_csv(tmp_path / "support.csv")
    with pytest.raises(BigramLMError) as info:
        load_instruction_data(str(csv_path), exclude_intents=["get_refund", "teleport_me"])
    assert info.value.param == "exclude_intents"
    assert str(info.value).startswith("exclude_intents names intent(s) the data does not have: teleport_me (it has: ")
    with pytest.raises(BigramLMError, match="nothing would be left to train on"):
        load_instruction_data(str(csv_path), exclude_intents=["get_refund", "contact_human_agent", "cancel_order", "track_order"])
    out = tmp_path / "run"
    assert main(["train", "--data", str(csv_path), "--method", "counts", "--out", str(out), "--no-progress",
                 "--exclude-intents", "get_refund,teleport_me"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --exclude-intents names intent(s) the data does not have: teleport_me") and err.count("\n") == 1
    assert not (out / "config.json").exists()


def test_train_flag_records_the_option_and_the_run_never_sees_the_intents(tmp_path, capsys):
    csv_path = write_support_csv(tmp_path / "support.csv")
    run = tmp_path / "run"
    assert main(["train", "--data", str(csv_path), "--method", "counts", "--out", str(run), "--no-progress", "--json",
                 "--exclude-intents", " get_refund , contact_human_agent,"]) == 0
    capsys.readouterr()
    spec = read_config(run).data
    assert spec["exclude_intents"] == NEW
    saved = json.loads((run / "config.json").read_text(encoding="utf-8"))["data"]["exclude_intents"]
    assert saved == NEW
    files = InstructionRunFiles.load(run)  # the rows the retrieval index and learn's replay use
    assert files.train_rows and all(r.intent not in NEW for r in files.train_rows)
    assert {i for i, _ in files.label_set} == {"cancel_order", "track_order"}
    direct = load_instruction_data(str(csv_path), exclude_intents=NEW)
    assert files.split_ids == direct.run_files().split_ids
    rebuilt = load_run_data(spec)
    assert rebuilt.train_text == direct.train_text and "refund" not in rebuilt.train_text.lower()
    would_be = excluded_rows(spec)
    assert {r.intent for r in would_be} == set(NEW) and _ids(would_be) == _ids(excluded_rows(direct))

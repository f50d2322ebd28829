"""An instruction run keeps what the assistant needs of its dataset: assist, learn and the
desk read the run directory and nothing else; eval reads the dataset for its test rows
only; a run written before the files existed rebuilds them once. The fitted retrieval
index is kept beside them, and refitted whenever it is stale."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from bigramlm.cli import main
from bigramlm.data.formats import count_placeholders, strip_leading_markers
from bigramlm.data.instructions import load_instruction_data
from bigramlm.data.run_files import DATA_FILE, TRAIN_ROWS_FILE, InstructionRunFiles
from bigramlm.errors import BigramLMError
from bigramlm.serve.app import create_app
from bigramlm.support.assistant import Assistant
from bigramlm.support.retrieval import INDEX_FILE, Case, CaseIndex

from test_support_data import INTENTS, write_small_csv


def _train(csv_path: Path, run: Path) -> Path:
    assert main(["train", "--data", str(csv_path), "--method", "counts", "--out", str(run), "--no-progress", "--json"]) == 0
    return run


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("run-files")
    csv_path = write_small_csv(root / "small.csv")
    return _train(csv_path, root / "run"), csv_path


def test_training_saves_rows_labels_placeholders_and_split(trained):
    run, csv_path = trained
    files = InstructionRunFiles.load(run)
    data = load_instruction_data(str(csv_path))
    assert files.train_rows == data.parts["train"] and files.train_text == data.train_text
    assert files.labels is True and files.label_set == data.label_set and len(files.label_set) == len(INTENTS)
    assert set(files.known_placeholders) == {"Order Number", "Customer Support Phone Number", "Website URL",
                                             "Customer Support Hours"}
    ids = files.split_ids
    assert {name: [r.id for r in rows] for name, rows in data.parts.items()} == ids
    every = ids["train"] + ids["val"] + ids["test"]
    assert sorted(every) == list(range(len(every))) and ids["test"]  # each row in exactly one part
    meta = json.loads((run / DATA_FILE).read_text(encoding="utf-8"))
    assert meta["train_rows"] == {"file": TRAIN_ROWS_FILE, "count": len(files.train_rows), "sha256": meta["train_rows"]["sha256"]}
    assert meta["source_sha256"] and meta["format_version"] == 1


def test_assist_learn_and_desk_need_no_dataset(tmp_path, capsys):
    csv_path = write_small_csv(tmp_path / "small.csv")
    run = _train(csv_path, tmp_path / "run")
    keep = shutil.copy(csv_path, tmp_path / "kept.csv")
    csv_path.unlink()  # the dataset is gone: only the run directory is left
    capsys.readouterr()
    assert main(["assist", str(run), "i want to cancel order 12", "--json", "--n", "2", "--max-tokens", "30", "--seed", "1"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["intent"] in INTENTS and result["similar_cases"][0]["intent"] == "cancel_order"
    with TestClient(create_app(run)) as client:  # the desk, likewise
        body = client.post("/api/suggest", json={"message": "where is my package", "n": 1, "max_new_tokens": 10}).json()
        assert body["similar_cases"][0]["intent"] == "track_order"
    cases = tmp_path / "cases.csv"
    cases.write_text("instruction,response,intent,category\nzorblax broke,Sorry about the zorblax.,get_refund,REFUND\n",
                     encoding="utf-8")
    assert main(["learn", str(run), "--cases", str(cases), "--steps", "3", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["replay"] == 0.5  # the replay text came from the run itself
    # eval reads the dataset for its test rows, and says where it looked when it is gone
    argv = ["eval", str(run), "--task", "support", "--json", "--n", "1", "--max-tokens", "10", "--limit", "2",
            "--paraphrases", str(_paraphrases(tmp_path))]
    assert main(argv) == 2
    assert "small.csv" in capsys.readouterr().err
    assert main(argv + ["--data", str(keep)]) == 0
    assert json.loads(capsys.readouterr().out)["n_test"] == 2
    # the train split comes from the run alone
    assert main(argv + ["--split", "train"]) == 0
    assert json.loads(capsys.readouterr().out)["split"] == "train"


def _paraphrases(tmp_path: Path) -> Path:
    path = tmp_path / "p.jsonl"
    path.write_text(json.dumps({"message": "stop my purchase", "intent": "cancel_order", "category": "ORDER"}) + "\n",
                    encoding="utf-8")
    return path


def test_old_run_rebuilds_its_files_once(trained, tmp_path):
    run, csv_path = trained
    old = shutil.copytree(run, tmp_path / "old", ignore=shutil.ignore_patterns("cases.sqlite*"))
    written = {name: (run / name).read_bytes() for name in (DATA_FILE, TRAIN_ROWS_FILE)}
    for name in written:
        (old / name).unlink()  # as a run written before this version
    Assistant.load(old, use_store=False)
    # rebuilt from the dataset and saved: the very bytes training writes
    assert {name: (old / name).read_bytes() for name in written} == written
    moved = tmp_path / "moved.csv"
    shutil.copy(csv_path, moved)
    newer = shutil.copytree(old, tmp_path / "newer")
    for name in written:
        (newer / name).unlink()
    with pytest.raises(BigramLMError, match="not the file this run was trained on"):
        Assistant.load(newer, data=str(write_small_csv(tmp_path / "other.csv", [["B", "one more", "ORDER", "track_order", "ok"]])),
                       use_store=False)
    assert Assistant.load(newer, data=str(moved), use_store=False).label_set == InstructionRunFiles.load(run).label_set


def test_corrupt_run_files_are_one_line_errors(trained, tmp_path):
    run, _ = trained
    broken = shutil.copytree(run, tmp_path / "broken", ignore=shutil.ignore_patterns("cases.sqlite*"))
    rows = broken / TRAIN_ROWS_FILE
    rows.write_bytes(rows.read_bytes()[:-5])
    with pytest.raises(BigramLMError, match="does not match its recorded sha256") as info:
        Assistant.load(broken, use_store=False)
    assert "\n" not in str(info.value) and f"delete {DATA_FILE}" in str(info.value)
    (broken / DATA_FILE).write_text("{not json", encoding="utf-8")
    with pytest.raises(BigramLMError, match="corrupt"):
        Assistant.load(broken, use_store=False)


def test_rank_strips_leading_header_markers():
    from bigramlm.support.ranking import rank_candidates

    candidates = ["### e st your order", "e st your order", "### Intent: cancel_order\n### Response:\nI can help",
                  "###", "  ## \n", "#123 is cancelled"]
    ranked = rank_candidates(candidates)
    assert sorted((s.index, s.text) for s in ranked) == [(0, "e st your order"), (2, "I can help"), (5, "#123 is cancelled")]
    assert all(not s.text.startswith("###") for s in ranked)
    assert strip_leading_markers("##Response:\nok") == "ok" and strip_leading_markers("Hello # there") == "Hello # there"


def test_placeholders_are_counted_where_the_brand_reads_them():
    from bigramlm.support import brand

    assert brand.count_placeholders is count_placeholders
    assert count_placeholders(["call {{ Phone }} or {{Phone}}", "{{bad"]) == {"Phone": 2}


def test_fitted_index_is_kept_in_the_run_and_refitted_when_stale(trained, tmp_path):
    run, _ = trained
    copy = shutil.copytree(run, tmp_path / "run", ignore=shutil.ignore_patterns("cases.sqlite*", INDEX_FILE))
    base = [Case(r.message, r.reply, r.intent, r.category, "train", r.id)
            for r in InstructionRunFiles.load(copy).train_rows]
    fresh = CaseIndex(base)
    queries = ["i want to cancel order 12", "where is my package", "zorblax", "refund pls!!"]
    expected = [[(c.id, round(s, 6)) for c, s in fresh.search(q, 3)] for q in queries]

    def results(index: CaseIndex) -> list:
        return [[(c.id, round(s, 6)) for c, s in index.search(q, 3)] for q in queries]

    cache = copy / INDEX_FILE
    assert results(CaseIndex.cached(base, cache)) == expected and cache.is_file()
    stamp = cache.stat().st_mtime_ns
    cached = CaseIndex.cached(base, cache)
    assert results(cached) == expected and cache.stat().st_mtime_ns == stamp  # read, not refitted
    v = cached.vectorizer  # the store's cases (``CaseSearch``) project into the same space
    assert (v.transform(["zorblax gadget cracked"]) @ v.transform(["zorblax gadget"]).T)[0, 0] > 0
    # other messages: a different key, so the cache is refitted, not reused
    fewer = base[:-3]
    assert [[c.id for c, _ in CaseIndex.cached(fewer, cache).search(q, 3)] for q in queries] == \
        [[c.id for c, _ in CaseIndex(fewer).search(q, 3)] for q in queries]
    cache.write_bytes(b"not a zip file at all")
    assert results(CaseIndex.cached(base, cache)) == expected
    with np.load(cache, allow_pickle=False) as npz:  # rewritten whole
        assert npz["shape"].tolist()[0] == len(base)

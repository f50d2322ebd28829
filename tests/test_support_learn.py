"""``learn`` as one unit: a failed learn stores nothing and marks nothing, bad settings are
one-line errors, non-finite training never replaces good weights, and ``learn --undo``
restores the weights from before the last learn bit for bit."""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
from pathlib import Path

import pytest
import torch

from bigramlm.data.cases import Case
from bigramlm.checkpoint import WEIGHTS, load_run, save_weights
from bigramlm.cli import main
from bigramlm.errors import BigramLMError
from bigramlm.support import learning
from bigramlm.support.learning import learn
from bigramlm.support.publish import undo_learn
from bigramlm.support.store import SCHEMA_VERSION, CaseStore, LearnChanges, store_path
from bigramlm.support.history import HISTORY_DIR, JOURNAL

from test_support_data import write_small_csv

CASES = (
    "instruction,response,intent,category\n"
    '"my zorblax arrived cracked","Sorry! A new zorblax ships today.",get_refund,REFUND\n'
    '"pause the zorblax newsletter","Done: the zorblax newsletter is paused.",newsletter_subscription,SUBSCRIPTION\n'
)


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("learn")
    csv_path = write_small_csv(root / "small.csv")
    run = root / "run"
    assert main(["train", "--data", str(csv_path), "--method", "counts", "--out", str(run), "--no-progress", "--json"]) == 0
    return run


@pytest.fixture
def run(trained, tmp_path) -> Path:
    return Path(shutil.copytree(trained, tmp_path / "run", ignore=shutil.ignore_patterns("cases.sqlite*")))


@pytest.fixture
def cases_file(tmp_path) -> Path:
    path = tmp_path / "cases.csv"
    path.write_text(CASES, encoding="utf-8")
    return path


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _poisoning_optimizer(model, learning_rate):
    """An injected training error: every step leaves a NaN in the weights."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate, weight_decay=0.0)
    step = optimizer.step

    def poisoned_step(*args, **kwargs):
        out = step(*args, **kwargs)
        with torch.no_grad():
            next(model.parameters()).view(-1)[0] = float("nan")
        return out

    optimizer.step = poisoned_step
    return optimizer


@pytest.mark.parametrize("flag,value,param,bad,shown", [
    ("--lr", "0", "learning_rate", 0.0, "--lr must be in (0, 1]"),
    ("--lr", "nan", "learning_rate", float("nan"), "--lr must be a finite number"),
    ("--lr", "1.5", "learning_rate", 1.5, "--lr must be in (0, 1]"),
    ("--batch-size", "0", "batch_size", 0, "--batch-size must be in 1.."),
    ("--batch-size", "100000000", "batch_size", 100_000_000, "--batch-size must be in 1.."),
    ("--steps", "-1", "steps", -1, "--steps must be in 0.."),
    ("--replay", "1", "replay", 1.0, "--replay must be in [0, 1)"),
    ("--replay", "-0.1", "replay", -0.1, "--replay must be in [0, 1)"),
])
def test_bad_settings_are_one_line_errors(run, cases_file, capsys, flag, value, param, bad, shown):
    weights = _sha(run / WEIGHTS)
    assert main(["learn", str(run), "--cases", str(cases_file), flag, value]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {shown}") and err.count("\n") == 1
    with pytest.raises(BigramLMError) as info:
        learn(run, cases_file, **{param: bad})
    assert info.value.param == param and str(info.value).startswith(param)
    assert _sha(run / WEIGHTS) == weights and not store_path(run).exists()  # nothing read, nothing written


@pytest.mark.parametrize("steps", [1, 5])  # 1: caught in the weights after the last step; 5: in the next loss
def test_failed_learns_store_nothing_and_keep_the_weights(run, cases_file, capsys, monkeypatch, steps):
    weights = _sha(run / WEIGHTS)
    with CaseStore.for_run(run) as store:
        desk_id = store.add_case(Case("is my quuxel refund done", "Yes, it went out today.", intent="get_refund"))
    monkeypatch.setattr(learning, "_optimizer", _poisoning_optimizer)
    for _ in range(3):
        assert main(["learn", str(run), "--cases", str(cases_file), "--steps", str(steps)]) == 2
        errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and "learning diverged" in errors[0] and "weights were kept" in errors[0]
    assert _sha(run / WEIGHTS) == weights and not (run / JOURNAL).exists()
    load_run(run)  # still loads: finite weights
    with CaseStore.for_run(run) as store:
        assert [c.id for c in store.list_cases()] == [desk_id]  # no case of the file stored
        assert store.desk_stats().to_dict()["last_learned_id"] == 0 and store.last_learn() is None
    monkeypatch.undo()
    for attempt in range(2):  # a success stores each case once, and learning the file again adds nothing
        assert main(["learn", str(run), "--cases", str(cases_file), "--steps", "5", "--json"]) == 0
        assert json.loads(capsys.readouterr().out)["stored_cases"] == (2, 0)[attempt]
    with CaseStore.for_run(run) as store:
        messages = [c.case.message for c in store.list_cases()]
        assert messages == ["is my quuxel refund done", "my zorblax arrived cracked", "pause the zorblax newsletter"]
        # the desk case was not trained on: it is still waiting for a learn from the store
        assert [c.id for c in store.cases_since_last_learn()] == [desk_id]
    assert _sha(run / WEIGHTS) != weights


def test_save_weights_refuses_non_finite(run):
    model = load_run(run).model
    before = _sha(run / WEIGHTS)
    with torch.no_grad():
        next(model.parameters()).view(-1)[0] = float("inf")
    with pytest.raises(BigramLMError, match="not finite"):
        save_weights(run, model)
    assert _sha(run / WEIGHTS) == before


def test_undo_restores_the_weights_bit_for_bit(run, cases_file, capsys):
    original = (run / WEIGHTS).read_bytes()
    assert main(["learn", str(run), "--undo"]) == 2
    assert "nothing to undo" in capsys.readouterr().err
    first = learn(run, cases_file, steps=5)
    after_first = (run / WEIGHTS).read_bytes()
    assert first.cases == 2 and after_first != original
    assert (run / HISTORY_DIR / f"{hashlib.sha256(original).hexdigest()}.{WEIGHTS}").read_bytes() == original
    with CaseStore.for_run(run) as store:
        store.add_case(Case("blorptastic order question", "Here is the answer.", intent="track_order", category="ORDER"))
    assert learn(run, steps=5).cases == 1  # the desk case
    assert (run / WEIGHTS).read_bytes() != after_first
    assert main(["learn", str(run), "--undo", "--json"]) == 0
    undone = json.loads(capsys.readouterr().out)
    assert undone["cases_unmarked"] == 1 and undone["weights_sha256"] == hashlib.sha256(after_first).hexdigest()
    assert (run / WEIGHTS).read_bytes() == after_first
    load_run(run)
    with CaseStore.for_run(run) as store:
        assert [c.case.message for c in store.cases_since_last_learn()] == ["blorptastic order question"]
        assert store.count() == 3  # undo keeps the cases; only their marks change
    # The history keeps every version a learn replaced: a second undo reaches the original.
    undo_learn(run)
    assert (run / WEIGHTS).read_bytes() == original
    with pytest.raises(BigramLMError, match="nothing to undo"):
        undo_learn(run)
    assert learn(run, steps=5).cases == 3  # every unmarked case is learned again
    undo_learn(run)
    assert (run / WEIGHTS).read_bytes() == original


def test_undo_refuses_weights_replaced_since(run, cases_file):
    learn(run, cases_file, steps=3)
    model = load_run(run).model
    with torch.no_grad():
        next(model.parameters()).view(-1)[0] += 1.0
    save_weights(run, model)  # e.g. retrained in place
    replaced = (run / WEIGHTS).read_bytes()
    with pytest.raises(BigramLMError, match="changed after the last learn"):
        undo_learn(run)
    assert (run / WEIGHTS).read_bytes() == replaced


def test_version_1_store_is_migrated(tmp_path):
    path = store_path(tmp_path)
    with sqlite3.connect(path) as db:  # the version-1 schema, as older releases wrote it
        db.executescript("""
            CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
            CREATE TABLE cases (id INTEGER PRIMARY KEY AUTOINCREMENT, created_at REAL NOT NULL, message TEXT NOT NULL,
                reply TEXT NOT NULL, intent TEXT, category TEXT, suggestion_id TEXT, edited INTEGER NOT NULL DEFAULT 0,
                edit_distance REAL, source TEXT NOT NULL DEFAULT 'desk');
            INSERT INTO meta VALUES ('schema_version', '1'), ('last_learned_id', '2');
            INSERT INTO cases(created_at, message, reply) VALUES (0, 'a', 'ra'), (0, 'b', 'rb'), (0, 'c', 'rc');
        """)
    db.close()
    with CaseStore(path) as store:
        assert [c.case.message for c in store.cases_since_last_learn()] == ["c"]
        assert store.desk_stats().last_learned_id == 2 and store.count() == 3
        ids, stored = store.record_learn([Case("d", "rd")], [3], LearnChanges("w0", "w1"))
        assert stored == 1 and store.cases_since_last_learn() == [] and store.desk_stats().last_learned_id == ids[0]
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0] == str(SCHEMA_VERSION)
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    db.close()
    with CaseStore(path) as again:  # opening a migrated store again changes nothing
        assert again.count() == 4 and again.integrity_check() == "ok"


def test_learn_trains_on_accepted_cases_and_never_on_dismissed_suggestions(run):
    """A request shows three suggestions: one is accepted edited, one dismissed, one left.
    learn takes the accepted case (every accepted one: nothing is excluded) and nothing else."""
    dismissed_text = "Zorblax the quuxel: dismissed, never to be learned."
    with CaseStore.for_run(run) as store:
        store.record_suggestions([("s0", "Your refund is on its way.", -1.0), ("s1", dismissed_text, -1.2),
                                  ("s2", "Left alone.", -1.5)], request_id="r0")
        accepted = store.add_case(Case("is my refund done", "Your refund is on its way today.", intent="get_refund", category="REFUND"), suggestion_id="s0", edited=True, edit_distance=0.15)
        typed = store.add_case(Case("hello", "Hi, how can I help?"))  # typed by hand, no suggestion
        assert store.dismiss_suggestion("s1", reason="nonsense").created
        with pytest.raises(BigramLMError):
            store.add_case(Case("is my refund done", dismissed_text), suggestion_id="s1")
        assert [c.id for c in store.cases_since_last_learn()] == [accepted, typed]
    result = learn(run, steps=3)
    assert result.cases == 2 and result.stored_cases == 0
    with CaseStore.for_run(run) as store:
        assert store.cases_since_last_learn() == [] and store.count() == 2
        assert all(dismissed_text not in (c.case.message, c.case.reply) for c in store.list_cases(limit=10**9))
        assert store.dismissed_texts() == [dismissed_text] and store.desk_stats().to_dict()["dismissed"] == 1

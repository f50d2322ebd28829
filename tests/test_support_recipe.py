"""--recipe support on a tiny table: the understanding is fitted and saved, the label set
grows when learn meets a new intent, and undo puts the understanding back too."""

from __future__ import annotations

import json

import pytest

from bigramlm.cli import main
from bigramlm.support.settings import SuggestSettings
from bigramlm.support.assistant import Assistant
from bigramlm.support.understanding import UNDERSTANDING_FILE, Understander
from desk_helpers import INTENTS, write_support_csv


@pytest.fixture(scope="module")
def recipe_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("recipe")
    table = write_support_csv(root / "s.csv", copies=6)
    run = root / "run"
    code = main(["train", "--data", str(table), "--recipe", "support", "--model", "bigram",
                 "--exclude-intents", "get_refund", "--out", str(run), "--json"])
    assert code == 0
    return run, table


def test_the_recipe_saves_the_understanding_and_records_its_choices(recipe_run):
    run, _ = recipe_run
    understander, intents = Understander.load(run)
    assert sorted(understander.classes) == sorted(set(INTENTS) - {"get_refund"})
    assert len(intents) == len(understander.message_embeddings)
    recipe = json.loads((run / "config.json").read_text(encoding="utf-8"))["recipe"]
    assert recipe["name"] == "support" and recipe["understanding"]["intents"] == 3
    result = Assistant.load(run, use_store=False).suggest("please put me through to an agent", SuggestSettings(n=1, max_new_tokens=5, seed=0))
    assert result.intent == "contact_human_agent" and result.understanding.intent_method.startswith("sentence-embedding")


def test_learn_grows_the_label_set_and_undo_shrinks_it(recipe_run, tmp_path, capsys):
    import shutil

    run = shutil.copytree(recipe_run[0], tmp_path / "run")
    cases = tmp_path / "cases.csv"
    messages, reply = INTENTS["get_refund"][1], INTENTS["get_refund"][2]
    cases.write_text("instruction,response,intent,category\n" + "".join(f'"{m}","{reply}",get_refund,REFUND\n' for m in messages),
                     encoding="utf-8")
    assert main(["learn", str(run), "--cases", str(cases), "--steps", "3", "--json"]) == 0
    capsys.readouterr()
    understander, _ = Understander.load(run)
    assert "get_refund" in understander.classes and understander.categories["get_refund"] == "REFUND"
    assistant = Assistant.load(run, use_store=False)
    assert assistant.understand("I want my money back for this").intent == "get_refund"
    assert main(["learn", str(run), "--undo", "--json"]) == 0
    assert "get_refund" not in Understander.load(run)[0].classes
    assert (run / UNDERSTANDING_FILE).is_file()


def test_learn_replays_the_replies_the_model_was_trained_on(tmp_path) -> None:
    """A recipe run trains on central replies: they are kept beside its rows, and learn's replay reads them."""
    from bigramlm.data.run_files import TRAIN_TARGETS_FILE, read_train_targets, write_train_targets

    write_train_targets(tmp_path, ["a", "b"])
    assert (tmp_path / TRAIN_TARGETS_FILE).exists()
    assert read_train_targets(tmp_path, 2) == ["a", "b"]
    assert read_train_targets(tmp_path, 3) is None  # not this run's rows: the rows' own replies
    assert read_train_targets(tmp_path / "missing", 2) is None


def test_central_targets_travel_with_the_run_files(tmp_path) -> None:
    from bigramlm.data import load_data
    from bigramlm.data.run_files import read_train_targets
    from bigramlm.support.recipe import with_central_targets

    data = load_data(str(write_support_csv(tmp_path / "s.csv", copies=6)), labels=True)
    central = with_central_targets(data)
    rows = central.parts["train"]
    assert len(central.train_targets) == len(rows)
    central.write_run_files(tmp_path / "run")
    assert read_train_targets(tmp_path / "run", len(rows)) == central.train_targets

"""--recipe support on a tiny table: the understanding is fitted and saved, the label set
grows when learn meets a new intent, and undo puts the understanding back too."""

from __future__ import annotations

import json

import pytest

from bigramlm.cli import main
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
    result = Assistant.load(run, use_store=False).suggest("please put me through to an agent", n=1, max_new_tokens=5, seed=0)
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

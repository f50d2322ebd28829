"""The assistant end to end on a small instruction run: assist (JSON schema, streaming,
unknown characters, threads), learn (store + index + weights) and eval --task support."""

from __future__ import annotations

import json
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch

from bigramlm.data.cases import Case
from bigramlm.support.settings import SuggestSettings
from bigramlm.support.assistant import Assistant
from bigramlm.checkpoint import load_run, read_config
from bigramlm.cli import main
from bigramlm.data.formats import strip_leading_markers
from bigramlm.errors import BigramLMError
from bigramlm.support.store import CaseStore

from test_support_data import INTENTS, write_small_csv


@pytest.fixture(scope="module")
def support_run(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("support")
    csv_path = write_small_csv(root / "small.csv")
    run = root / "run"
    assert main(["train", "--data", str(csv_path), "--method", "counts", "--out", str(run), "--no-progress", "--json"]) == 0
    return run, csv_path


@pytest.fixture
def fresh_run(support_run, tmp_path) -> Path:
    """A private copy of the run (learn changes weights and the store)."""
    run, _ = support_run
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    for leftover in copy.glob("cases.sqlite*"):
        leftover.unlink()
    return copy


SUGGESTION_KEYS = {"id", "text", "filled_text", "score", "unfilled_placeholders", "mangled_placeholders"}


def _check_schema(result: dict) -> None:
    for key, kind in [("intent", str), ("category", str), ("intent_probability", float), ("suggestions", list),
                      ("similar_cases", list), ("replaced_characters", int)]:
        assert isinstance(result[key], kind), key
    assert result["intent"] in INTENTS and INTENTS[result["intent"]] == result["category"]
    assert 0.0 <= result["intent_probability"] <= 1.0
    assert result["suggestions"], "no suggestion"
    scores = [s["score"] for s in result["suggestions"]]
    assert scores == sorted(scores, reverse=True)
    assert len({s["text"] for s in result["suggestions"]}) == len(result["suggestions"])
    for s in result["suggestions"]:
        assert SUGGESTION_KEYS <= set(s)
        assert isinstance(s["text"], str) and s["text"] == s["text"].strip() and s["text"]
        assert "### Instruction" not in s["text"]
        assert isinstance(s["unfilled_placeholders"], list) and isinstance(s["mangled_placeholders"], list)
    for case in result["similar_cases"]:
        assert {"message", "reply", "intent", "score"} <= set(case)


def test_run_records_instruction_format(support_run):
    run, _ = support_run
    spec = read_config(run).data
    assert spec["kind"] == "instructions" and spec["format"]["labels"] is True
    assert sorted(tuple(p) for p in spec["label_set"]) == sorted(INTENTS.items())
    assert spec["split"]["rows"]["test"] >= 4


def test_assist_json_schema(support_run, capsys, tmp_path):
    run, _ = support_run
    brand = tmp_path / "brand.toml"
    brand.write_text('[placeholders]\n"Website URL" = "https://acme.example"\n', encoding="utf-8")
    argv = ["assist", str(run), "i want to cancel order 12", "--json", "--n", "3", "--max-tokens", "80",
            "--seed", "1", "--brand", str(brand)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    result = json.loads(out)
    _check_schema(result)
    assert len(result["similar_cases"]) == 3
    assert result["similar_cases"][0]["intent"] == "cancel_order"  # retrieval finds the right neighbourhood
    assert "https://acme.example" not in json.dumps([s["text"] for s in result["suggestions"]])
    assert main(argv) == 0 and json.loads(capsys.readouterr().out)["suggestions"][0]["text"] == result["suggestions"][0]["text"]
    # the human-readable form works too
    assert main(["assist", str(run), "where is my package", "--n", "1", "--max-tokens", "40"]) == 0
    assert "intent:" in capsys.readouterr().out


def test_assist_with_baseline(support_run, capsys):
    run, _ = support_run
    assert main(["assist", str(run), "i want to cancel order 9", "--json", "--n", "1", "--max-tokens", "20", "--baseline"]) == 0
    baseline = json.loads(capsys.readouterr().out)["baseline"]
    assert baseline["method"] == "tfidf-logreg" and baseline["intent"] == "cancel_order"
    assert baseline["category"] == "ORDER" and 0.0 < baseline["probability"] <= 1.0


def test_assist_errors(support_run, tmp_path, capsys):
    run, _ = support_run
    assert main(["assist", str(run), "   ", "--json"]) == 2
    assert "empty" in capsys.readouterr().err
    text_run = tmp_path / "text-run"
    corpus = tmp_path / "t.txt"
    corpus.write_text("hello world, this is plain text. " * 20, encoding="utf-8")
    assert main(["train", "--data", str(corpus), "--method", "counts", "--out", str(text_run), "--no-progress", "--json"]) == 0
    capsys.readouterr()
    assert main(["assist", str(text_run), "hi"]) == 2
    assert "not trained on an instruction dataset" in capsys.readouterr().err


def test_unknown_characters_never_crash(support_run):
    run, _ = support_run
    assistant = Assistant.load(run, use_store=False)
    result = assistant.suggest("cancel my order 😡🙏 — très vite, Ω≈ç√", SuggestSettings(n=2, max_new_tokens=30, seed=0)).to_dict()
    _check_schema(result)
    assert result["replaced_characters"] >= 6
    # NFKC folds full-width letters onto ASCII: nothing to replace
    text, replaced = assistant.normalize("ｃａｎｃｅｌ")
    assert (text, replaced) == ("cancel", 0)


def test_stream_events_and_threads(support_run):
    run, _ = support_run
    assistant = Assistant.load(run, use_store=False)
    events = [e.to_dict() for e in assistant.suggest_stream("track my package", SuggestSettings(n=2, max_new_tokens=60, seed=5))]
    assert events[0]["type"] == "understanding" and events[-1]["type"] == "done"
    assert all(e["type"] == "token" for e in events[1:-1])
    grown = ["", ""]
    for e in events[1:-1]:
        grown[e["index"]] += e["text"]
    result = events[-1]["result"]
    for s in result["suggestions"]:
        if s["source"] == "model":  # the reply is the generated text, less any header marker it began with
            assert strip_leading_markers(grown[s["index"]]) == s["text"] and grown[s["index"]].rstrip().endswith(s["text"])
            assert s["label"] == "model draft"
        else:  # a resolved reply, saying so
            assert s["index"] == -1 and s["label"] == f"training row #{s['case_id']}" and s["source"] == "dataset"
    assert {d["index"] for d in result["drafts"]} <= {0, 1} and all("non_words" in d for d in result["drafts"])
    assert assistant.suggest("track my package", SuggestSettings(n=2, max_new_tokens=60, seed=5)).to_dict()["suggestions"][0]["text"] == result["suggestions"][0]["text"]

    # The pool re-raises a worker's exception here, so a failure in any thread fails the test.
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = dict(zip(range(4), pool.map(lambda k: assistant.suggest("refund please", SuggestSettings(n=2, max_new_tokens=50, seed=k)).to_dict(), range(4))))
    assert len(results) == 4
    solo = assistant.suggest("refund please", SuggestSettings(n=2, max_new_tokens=50, seed=2)).to_dict()
    assert [s["text"] for s in results[2]["suggestions"]] == [s["text"] for s in solo["suggestions"]]


def test_drafts_are_decoded_apart_from_the_suggestions_shown(support_run):
    run, _ = support_run
    assistant = Assistant.load(run, use_store=False)

    def decode(drafts: int | None) -> tuple[dict[int, str], dict]:
        settings = SuggestSettings(n=3, drafts=drafts, max_new_tokens=40, seed=5)
        events = [e.to_dict() for e in assistant.suggest_stream("track my package", settings)]
        grown: dict[int, str] = {}
        for e in events[1:-1]:
            grown[e["index"]] = grown.get(e["index"], "") + e["text"]
        return grown, events[-1]["result"]

    grown, result = decode(1)  # only the greedy draft (a bigram's is refused): resolved replies fill the rest
    assert set(grown) == {0} and result["settings"]["drafts"] == 1 and result["settings"]["n"] == 3
    assert result["suggestions"] and {s["source"] for s in result["suggestions"]} == {"dataset"}
    grown3, result3 = decode(None)  # left to the assistant: n drafts
    assert set(grown3) == {0, 1, 2} and result3["settings"]["drafts"] == 3
    assert grown3[0] == grown[0]  # the greedy draft is the same either way
    assert [s["text"] for s in result3["suggestions"]] == [s["text"] for s in result["suggestions"]]  # samples refused too


def test_a_draft_that_can_never_be_shown_ends_where_its_fault_is(support_run, monkeypatch):
    """A draft that loops or writes a word found nowhere is ended there (``DraftWatch``):
    the same suggestions, each ended draft a refused beginning of the whole one, fewer tokens."""
    from bigramlm.support import readability

    run, _ = support_run
    assistant = Assistant.load(run, use_store=False)
    settings = SuggestSettings(n=3, max_new_tokens=120, seed=5)
    watched = assistant.suggest("I want a refund for my broken order", settings)
    monkeypatch.setattr(readability.RunText, "watch", lambda self, message="": lambda piece: False)
    whole = assistant.suggest("I want a refund for my broken order", settings)
    assert [s.text for s in watched.suggestions] == [s.text for s in whole.suggestions]
    full = {d.index: d for d in whole.drafts}
    ended = [d for d in watched.drafts if len(d.text) < len(full[d.index].text)]
    assert ended, "no draft was ended early: the bigram's drafts should hold non-words"
    for d in watched.drafts:
        assert d.readable == full[d.index].readable and full[d.index].text.startswith(d.text.rstrip())
    assert all(not d.readable and (d.non_words or d.loops) for d in ended)
    assert watched.decode.tokens < whole.decode.tokens


def test_a_busy_desk_writes_only_the_greedy_draft(support_run):
    run, _ = support_run
    desk = Assistant.load(run, use_store=False, share_decodes=True)
    settings = SuggestSettings(n=3, max_new_tokens=40, seed=5)
    assert desk.suggest("track my package", settings).settings.drafts == 3  # alone: n drafts
    other = desk.suggest_stream("refund please", settings)
    while next(other).to_dict()["type"] != "token":  # another request is in the shared decode
        pass
    shed = desk.suggest("track my package", settings)
    assert shed.settings.drafts == 1 and {d.index for d in shed.drafts} <= {0}
    asked = desk.suggest("track my package", SuggestSettings(n=3, drafts=2, max_new_tokens=40, seed=5))
    assert asked.settings.drafts == 2  # drafts a request asks for are written, busy or not
    other.close()
    assert desk.suggest("track my package", settings).settings.drafts == 3


def test_learn_from_file_then_retrieved(fresh_run, tmp_path, capsys):
    before = load_run(fresh_run).model.token_embedding_table.weight.detach().clone()
    cases = tmp_path / "cases.csv"
    cases.write_text(
        "instruction,response,intent,category\n"
        '"my zorblax gadget arrived cracked","Sorry! Send a photo to {{Website URL}} and a new zorblax ships today.",get_refund,REFUND\n'
        '"pause the zorblax newsletter","Done: the zorblax newsletter is paused.",,\n',
        encoding="utf-8",
    )
    assert main(["learn", str(fresh_run), "--cases", str(cases), "--steps", "30", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["cases"] == 2 and summary["steps"] == 30
    assert summary["case_loss_after"] < summary["case_loss_before"]
    after = load_run(fresh_run).model.token_embedding_table.weight.detach()
    assert not torch.equal(before, after)
    with CaseStore.for_run(fresh_run) as store:
        stored = store.list_cases(0, 10)
        assert [c.case.message for c in stored] == ["my zorblax gadget arrived cracked", "pause the zorblax newsletter"]
        assert store.cases_since_last_learn() == []
    result = Assistant.load(fresh_run).suggest("zorblax gadget cracked", SuggestSettings(n=1, max_new_tokens=20, seed=0)).to_dict()
    top = result["similar_cases"][0]
    assert top["message"] == "my zorblax gadget arrived cracked" and top["source"] == "learn"
    # nothing new since: a plain learn does nothing
    assert main(["learn", str(fresh_run), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["cases"] == 0


def test_learn_from_store_since_last_learn(fresh_run, capsys):
    with CaseStore.for_run(fresh_run) as store:
        store.add_case(Case("is the quuxel refund done", "Yes, your quuxel refund went out today.", intent="get_refund", category="REFUND"), suggestion_id="abc", edited=True, edit_distance=0.2)
    assert main(["learn", str(fresh_run), "--steps", "5", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["cases"] == 1
    with CaseStore.for_run(fresh_run) as store:
        assert store.desk_stats().to_dict()["cases_since_last_learn"] == 0
    assistant = Assistant.load(fresh_run)
    assert assistant.understand("quuxel refund", 1).similar_cases[0].case.source == "desk"
    # a case accepted while the assistant is up is indexed on the next request
    with CaseStore.for_run(fresh_run) as store:
        store.add_case(Case("blorptastic order question", "Here is the answer.", intent="track_order"))
    result = assistant.suggest("blorptastic order", SuggestSettings(n=1, max_new_tokens=10, seed=0)).to_dict()
    assert result["similar_cases"][0]["message"] == "blorptastic order question"


def test_learn_rejects_bad_cases_file(fresh_run, tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text("message,reply\nhi,there\n", encoding="utf-8")
    assert main(["learn", str(fresh_run), "--cases", str(bad)]) == 2
    assert "lacks the instruction column" in capsys.readouterr().err


def test_eval_support_json(support_run, tmp_path, capsys):
    run, _ = support_run
    paraphrases = tmp_path / "p.jsonl"
    paraphrases.write_text(
        "".join(json.dumps({"message": m, "intent": i, "category": INTENTS[i]}) + "\n" for m, i in [
            ("stop my purchase from being sent", "cancel_order"), ("where's my parcel now", "track_order"),
            ("I want my cash returned", "get_refund"), ("add me to your mailing list", "newsletter_subscription")]),
        encoding="utf-8")
    argv = ["eval", str(run), "--task", "support", "--split", "test", "--json", "--n", "2", "--drafts", "2", "--max-tokens", "60",
            "--paraphrases", str(paraphrases)]
    assert main(argv) == 0
    result = json.loads(capsys.readouterr().out)
    for key in ("intent_accuracy", "category_accuracy", "rouge_l", "paraphrase_intent_accuracy"):
        assert 0.0 <= result[key] <= 1.0, key
    for key in ("chrf", "bleu"):
        assert 0.0 <= result[key] <= 100.0
    assert result["bits_per_char"] > 0 and result["n_test"] >= 4 and result["n_paraphrases"] == 4
    b = result["baselines"]
    assert set(b) >= {"tfidf_logreg_intent_accuracy", "retrieval_chrf", "retrieval_bleu", "retrieval_rouge_l",
                      "tfidf_logreg_paraphrase_intent_accuracy"}
    assert b["tfidf_logreg_intent_accuracy"] == 1.0  # near-copies: the random split flatters the baseline
    assert b["retrieval_chrf"] > result["chrf"]  # a bigram does not beat copying the nearest reply
    # The fluency figures: the floor from held-out train replies, and no shown draft below it.
    f = result["fluency"]
    assert f["held_out"] >= 1 and f["drafts"] > 0 and isinstance(f["floor"], float)
    assert 0.0 <= f["draft_disfluent_rate"] <= f["draft_rejected_rate"] <= 1.0  # a draft below the floor is refused
    assert f["shown_below_floor"] == 0.0
    # the exact LM eval now has a test split too
    assert main(["eval", str(run), "--split", "test", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["split"] == "test"


def test_train_with_custom_columns(tmp_path, capsys):
    import csv

    path = tmp_path / "custom.csv"
    with open(path, "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(["question", "answer", "label"])
        for intent in INTENTS:
            for k in range(8):
                w.writerow([f"message {k} about {intent.replace('_', ' ')}", f"reply {k} for {intent}", intent])
    run = tmp_path / "run"
    argv = ["train", "--data", str(path), "--method", "counts", "--out", str(run), "--no-progress", "--json",
            "--instruction-col", "question", "--response-col", "answer", "--intent-col", "label"]
    assert main(argv) == 0
    spec = read_config(run).data
    assert spec["columns"] == {"instruction": "question", "response": "answer", "intent": "label", "category": None}
    capsys.readouterr()
    assert main(["assist", str(run), "message about get refund", "--json", "--n", "1", "--max-tokens", "20"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["intent"] in INTENTS and result["category"] is None
    # a run without labels classifies by its nearest training cases
    plain = tmp_path / "plain"
    assert main(argv[:6] + [str(plain)] + argv[7:] + ["--no-labels"]) == 0
    capsys.readouterr()
    assert read_config(plain).data["format"]["labels"] is False
    assert main(["assist", str(plain), "message about get refund", "--json", "--n", "1", "--max-tokens", "20"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["intent_method"] == "nearest-cases" and result["intent"] == "get_refund"


def test_moved_data_is_checked(support_run, tmp_path):
    run, csv_path = support_run
    other = write_small_csv(tmp_path / "other.csv", [["B", "one more row", "ORDER", "track_order", "ok"]])
    with pytest.raises(BigramLMError, match="not the file this run was trained on"):
        Assistant.load(run, data=str(other), use_store=False)


# --- any model of the shared interface ---------------------------------------------------------------


from dataclasses import dataclass  # noqa: E402

import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from bigramlm.checkpoint import ModelSpec, save_weights, write_config  # noqa: E402
from bigramlm.models import LanguageModel, register_model  # noqa: E402


@dataclass
class WindowConfig:
    vocab_size: int
    block_size: int = 6


class WindowLM(LanguageModel):
    """A windowed model with no Markov shortcut: logits use the two last tokens, and
    it refuses inputs longer than its block, as a GPT does."""

    def __init__(self, config: WindowConfig):
        super().__init__()
        self.config = config
        self.cur = nn.Embedding(config.vocab_size, config.vocab_size)
        self.prev = nn.Embedding(config.vocab_size + 1, config.vocab_size)

    def forward(self, idx, targets=None):
        assert idx.size(1) <= self.config.block_size, "input longer than the block size"
        prev = torch.cat([torch.full_like(idx[:, :1], self.config.vocab_size), idx[:, :-1]], dim=1)
        logits = self.cur(idx) + self.prev(prev)
        loss = None if targets is None else F.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1))
        return logits, loss


def test_windowed_model_drops_in(fresh_run, tmp_path, capsys):
    register_model("windowtest", WindowConfig, WindowLM)
    config = read_config(fresh_run)
    vocab = config.model.config["vocab_size"]
    torch.manual_seed(0)
    model = WindowLM(WindowConfig(vocab_size=vocab, block_size=6))
    config.model = ModelSpec("windowtest", {"vocab_size": vocab, "block_size": 6})
    config.training.block_size = 6
    write_config(fresh_run, config)
    save_weights(fresh_run, model)
    result = Assistant.load(fresh_run).suggest("cancel my order please 🙏", SuggestSettings(n=2, max_new_tokens=25, seed=0)).to_dict()
    _check_schema(result)
    assert result["replaced_characters"] == 1
    probs = Assistant.load(fresh_run, use_store=False).understand("track my package").intents
    assert sum(p.probability for p in probs) <= 1.0 + 1e-6 and len(probs) == min(5, len(INTENTS))
    cases = tmp_path / "cases.csv"
    cases.write_text("instruction,response,intent,category\nhello there,general kenobi,track_order,ORDER\n", encoding="utf-8")
    assert main(["learn", str(fresh_run), "--cases", str(cases), "--steps", "3", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["block_size"] == 6

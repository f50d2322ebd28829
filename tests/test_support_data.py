"""Instruction datasets: notebook formatting, the stratified row split, bad files, brand
profiles, scoring and metrics. Small CSVs are written by the tests; the Bitext sample is
used where ``BIGRAMLM_DATA_DIR`` has it."""

from __future__ import annotations

import csv
import json
import tomllib
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn

from bigramlm.support.brand import BrandProfile, brand_template, count_placeholders, fill_placeholders
from bigramlm.cli import main
from bigramlm.data import load_data
from bigramlm.errors import BigramLMError
from bigramlm.data.formats import format_block
from bigramlm.data.instructions import export_text, load_instruction_data
from bigramlm.data.splits import stratified_split
from bigramlm.data.cases import Case
from bigramlm.data.table import read_table
from bigramlm.evaluation.scoring import continuation_logprobs
from bigramlm.models import LanguageModel
from bigramlm.support.metrics import lcs_length, rouge_l
from bigramlm.support.paraphrases import load_paraphrases

INTENTS = {
    "cancel_order": "ORDER",
    "track_order": "ORDER",
    "get_refund": "REFUND",
    "newsletter_subscription": "SUBSCRIPTION",
}
OPENERS = ["i want to", "please help me", "can you", "how do i", "I need to", "need to", "could you help me",
           "is it possible to", "where can i", "help me", "i'd like to", "how can i"]
ACTIONS = {
    "cancel_order": "cancel order {{Order Number}}",
    "track_order": "track my package {{Order Number}}",
    "get_refund": "get my money back for {{Order Number}}",
    "newsletter_subscription": "sign up for the newsletter",
}
REPLIES = {
    "cancel_order": "I've cancelled order {{Order Number}}. Call {{Customer Support Phone Number}} if you need more.",
    "track_order": "You can follow order {{Order Number}} at {{Website URL}} at any time.",
    "get_refund": "Your refund for {{Order Number}} is on its way; see {{Website URL}} for details. Merci!",
    "newsletter_subscription": "You're subscribed! Manage it at {{Website URL}} during {{Customer Support Hours}}.",
}


def write_small_csv(path: Path, extra_rows: list[list[str]] | None = None) -> Path:
    rows = [["flags", "instruction", "category", "intent", "response"]]
    for intent, category in INTENTS.items():
        for k, opener in enumerate(OPENERS):
            rows.append(["B", f"  {opener} {ACTIONS[intent]}\n", category, intent, f"{REPLIES[intent]} (#{k})  "])
    rows += extra_rows or []
    with open(path, "w", encoding="utf-8", newline="") as f:
        csv.writer(f).writerows(rows)
    return path


@pytest.fixture
def small_csv(tmp_path) -> Path:
    return write_small_csv(tmp_path / "small.csv")


def notebook_text(path: Path) -> str:
    """The notebook's own loop, verbatim in behaviour: iterrows, strip, skip empty, join."""
    import pandas as pd

    df = pd.read_csv(path)
    pairs = []
    for _, row in df.iterrows():
        prompt = row["instruction"].strip()
        reply = row["response"].strip()
        if prompt and reply:
            pairs.append(f"### Instruction:\n{prompt}\n\n### Response:\n{reply}\n\n")
    return "".join(pairs)


# --- formatting ------------------------------------------------------------------------------


def test_block_is_the_notebooks_byte_for_byte():
    assert format_block("hi there", "hello!") == "### Instruction:\nhi there\n\n### Response:\nhello!\n\n"
    labelled = format_block("hi", "yo", "greet", "SOCIAL", labels=True)
    assert labelled == "### Instruction:\nhi\n\n### Intent: greet\n### Category: SOCIAL\n\n### Response:\nyo\n\n"


def test_export_matches_notebook_loop(small_csv, tmp_path):
    expected = notebook_text(small_csv)
    assert export_text(str(small_csv))[0] == expected
    out = tmp_path / "customer_support_data.txt"
    assert main(["data", "export", str(small_csv), "--out", str(out)]) == 0
    assert out.read_bytes() == expected.encode("utf-8")
    # fields are stripped: no leading spaces, no trailing newline inside the block
    assert "### Instruction:\ni want to cancel order {{Order Number}}\n\n" in expected


def test_export_with_labels(small_csv, tmp_path):
    out = tmp_path / "labelled.txt"
    assert main(["data", "export", str(small_csv), "--out", str(out), "--with-labels"]) == 0
    text = out.read_text(encoding="utf-8")
    assert text.count("### Intent: ") == 48 and text.count("### Category: ") == 48


def test_export_sample_matches_notebook(bitext_sample_path):
    text, _ = export_text(str(bitext_sample_path))
    assert text == notebook_text(bitext_sample_path)
    assert len(text) == 5_289_196 and len(set(text)) == 91


# --- split -------------------------------------------------------------------------------------


def _check_split(parts: dict[str, list[Case]], all_rows: list[Case]) -> None:
    intents = {r.intent for r in all_rows}
    for name in ("train", "val", "test"):
        assert {r.intent for r in parts[name]} == intents, name
    assert sum(len(p) for p in parts.values()) == len(all_rows)
    assert {r.id for p in parts.values() for r in p} == {r.id for r in all_rows}
    seen = {r.message for r in parts["train"]} | {r.message for r in parts["val"]}
    assert not seen & {r.message for r in parts["test"]}, "a test message leaked into train/val"


def test_stratified_split_small(tmp_path):
    # Duplicated instructions must land in one part together.
    dup = [["B", "dup message about cancel", "ORDER", "cancel_order", f"reply {i}"] for i in range(5)]
    path = write_small_csv(tmp_path / "dup.csv", dup)
    table = read_table(path)
    parts = stratified_split(table.rows)
    _check_split(parts, table.rows)
    homes = {name for name, rows in parts.items() for r in rows if r.message == "dup message about cancel"}
    assert len(homes) == 1
    assert stratified_split(table.rows) == parts  # seeded: the same every time
    assert stratified_split(table.rows, seed=7) != parts


def test_stratified_split_sample(bitext_sample_path):
    data = load_instruction_data(str(bitext_sample_path))
    _check_split(data.parts, [r for p in data.parts.values() for r in p])
    counts = {k: len(v) for k, v in data.parts.items()}
    total = sum(counts.values())
    assert 0.78 < counts["train"] / total < 0.82 and 0.09 < counts["test"] / total < 0.11
    assert len({r.intent for r in data.parts["test"]}) == 27
    assert len(data.label_set) == 27
    # the training text is the labelled train rows, nothing of test
    assert data.test_text and data.parts["test"][0].reply in data.test_text
    assert f"### Instruction:\n{data.parts['test'][0].message}\n\n" not in data.train_text


def test_run_spec_records_format_columns_split(small_csv):
    data = load_data(str(small_csv))
    spec = data.spec
    assert spec["kind"] == "instructions"
    assert spec["format"]["labels"] is True and "### Intent: {intent}" in spec["format"]["template"]
    assert spec["columns"] == {"instruction": "instruction", "response": "response", "intent": "intent", "category": "category"}
    assert spec["split"]["seed"] == 1337 and spec["split"]["fractions"] == [0.8, 0.1, 0.1]
    assert sum(spec["split"]["rows"].values()) == 48


# --- other formats and column names ---------------------------------------------------------------


def test_jsonl_and_parquet_with_custom_columns(tmp_path):
    import pandas as pd

    records = [{"q": f"question {i} about {intent}", "a": f"answer {i}", "label": intent, "group": cat}
               for intent, cat in INTENTS.items() for i in range(6)]
    jsonl = tmp_path / "d.jsonl"
    jsonl.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    parquet = tmp_path / "d.parquet"
    pd.DataFrame(records).to_parquet(parquet)
    for path in (jsonl, parquet):
        data = load_data(str(path), instruction_col="q", response_col="a", intent_col="label", category_col="group")
        assert data.labels and len(data.label_set) == 4
        assert data.train_text.startswith("### Instruction:\nquestion")


# --- bad files ------------------------------------------------------------------------------------


def _one_line_error(capsys, argv) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err
    return err


def test_missing_column(tmp_path, capsys):
    path = tmp_path / "nocol.csv"
    path.write_text("instruction,answer\nhello,hi\n", encoding="utf-8")
    with pytest.raises(BigramLMError, match="lacks the response column 'response'"):
        read_table(path)
    err = _one_line_error(capsys, ["data", "export", str(path), "--out", str(tmp_path / "o.txt")])
    assert "response" in err and "answer" in err  # names what is missing and what is there
    # ... and naming the right column fixes it
    assert main(["data", "export", str(path), "--out", str(tmp_path / "o.txt"), "--response-col", "answer"]) == 0


def test_explicit_missing_intent_column(small_csv):
    with pytest.raises(BigramLMError, match="intent column 'label'"):
        read_table(small_csv, intent_col="label")


def test_empty_rows(tmp_path, capsys):
    path = write_small_csv(tmp_path / "gaps.csv", [["B", "   ", "ORDER", "cancel_order", "reply"], ["", "", "", "", ""]])
    table = read_table(path)
    assert table.skipped == 2 and len(table.rows) == 48
    assert main(["data", "export", str(path), "--out", str(tmp_path / "gaps.txt")]) == 0
    assert "skipped 2 rows with an empty instruction or response" in capsys.readouterr().out
    empty = tmp_path / "allempty.csv"
    empty.write_text("instruction,response\n ,x\ny,\n,\n", encoding="utf-8")
    err = _one_line_error(capsys, ["data", "export", str(empty), "--out", str(tmp_path / "o.txt")])
    assert "no usable rows" in err
    header_only = tmp_path / "header.csv"
    header_only.write_text("instruction,response\n", encoding="utf-8")
    assert "no usable rows" in _one_line_error(capsys, ["data", "export", str(header_only), "--out", str(tmp_path / "o.txt")])
    zero = tmp_path / "zero.csv"
    zero.write_text("", encoding="utf-8")
    assert "is empty" in _one_line_error(capsys, ["data", "export", str(zero), "--out", str(tmp_path / "o.txt")])


def test_bad_quoting(tmp_path, capsys):
    path = tmp_path / "quotes.csv"
    path.write_text('instruction,response\n"unclosed quote,hello\nfine,ok\n', encoding="utf-8")
    err = _one_line_error(capsys, ["data", "export", str(path), "--out", str(tmp_path / "o.txt")])
    assert "cannot parse CSV" in err
    extra = tmp_path / "fields.csv"
    extra.write_text('instruction,response\na,b\nc,"d",e\n', encoding="utf-8")
    assert "cannot parse CSV" in _one_line_error(capsys, ["data", "export", str(extra), "--out", str(tmp_path / "o.txt")])


def test_bad_jsonl(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"instruction": "a", "response": "b"}\n{not json\n', encoding="utf-8")
    with pytest.raises(BigramLMError, match="line 2"):
        read_table(path)


def test_column_flags_rejected_for_text(tiny_corpus, tmp_path, capsys):
    err = _one_line_error(capsys, ["train", "--data", str(tiny_corpus), "--out", str(tmp_path / "r"), "--intent-col", "x"])
    assert "--intent-col" in err


# --- brand profiles -------------------------------------------------------------------------------


def test_brand_fill_unfilled_and_mangled(tmp_path):
    profile = tmp_path / "brand.toml"
    profile.write_text(
        '[brand]\nname = "Acme"\n[placeholders]\n"Customer Support Phone Number" = "+1 555 0100"\n'
        '"{{Website URL}}" = "https://acme.example"\n"Order Number" = ""\n',
        encoding="utf-8",
    )
    known = {"Customer Support Phone Number", "Website URL", "Order Number"}
    brand = BrandProfile.load(profile, known=known)
    assert brand.name == "Acme"
    r = brand.fill("Call {{Customer Support Phone Number}} or visit {{Website URL}} about {{Order Number}}.")
    assert r.text == "Call +1 555 0100 or visit https://acme.example about {{Order Number}}."
    assert r.unfilled == ["Order Number"] and r.mangled == []
    broken = brand.fill("See {{Website URL}} and {{Ordr Numbr}} and {{Customer Support")
    assert broken.text.startswith("See https://acme.example and {{Ordr Numbr}} and {{Customer Support")
    reasons = sorted(m["reason"] for m in broken.mangled)
    assert reasons == ["unbalanced braces", "unknown placeholder name"]
    assert any("{{Customer Support" in m["text"] for m in broken.mangled)
    stray = fill_placeholders("done}} now", {})
    assert stray.mangled and stray.text == "done}} now"  # shown as generated, and reported


def test_brand_profile_errors(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[placeholders\n", encoding="utf-8")
    with pytest.raises(BigramLMError, match="not valid TOML"):
        BrandProfile.load(bad)
    with pytest.raises(BigramLMError, match="no such brand profile"):
        BrandProfile.load(tmp_path / "missing.toml")


def test_brand_init_lists_every_placeholder(small_csv, tmp_path, capsys):
    out = tmp_path / "brand.toml"
    assert main(["brand", "init", "--data", str(small_csv), "--out", str(out)]) == 0
    text = out.read_text(encoding="utf-8")
    parsed = tomllib.loads(text)
    counts = count_placeholders(r.reply for r in read_table(small_csv).rows)
    assert set(parsed["placeholders"]) == set(counts) == {
        "Order Number", "Customer Support Phone Number", "Website URL", "Customer Support Hours"}
    assert f"{counts['Website URL']} occurrences\n\"Website URL\"" in text
    assert main(["brand", "init", "--data", str(small_csv), "--out", str(out)]) == 2  # no silent overwrite
    # a filled template loads back
    filled = text.replace('"Website URL" = ""', '"Website URL" = "https://x.example"')
    out.write_text(filled, encoding="utf-8")
    assert BrandProfile.load(out).values == {"Website URL": "https://x.example"}
    assert brand_template(Counter({'Quote "x"': 1}), "s").count('"Quote \\"x\\""') == 1


# --- scoring and metrics ------------------------------------------------------------------------------


class _PairModel(LanguageModel):
    """A windowed toy model: logits depend on the current and the previous token."""

    def __init__(self, vocab: int, block: int):
        super().__init__()
        torch.manual_seed(0)
        self.cur = nn.Embedding(vocab, vocab)
        self.prev = nn.Embedding(vocab + 1, vocab)  # index `vocab` = no previous token in the window
        self.block = block
        self.vocab = vocab

    def get_block_size(self) -> int:
        return self.block

    def forward(self, idx, targets=None):
        assert idx.size(1) <= self.block, "context longer than the block size"
        prev = torch.cat([torch.full_like(idx[:, :1], self.vocab), idx[:, :-1]], dim=1)
        return self.cur(idx) + self.prev(prev), None


def test_continuation_logprobs_crop_to_block_exactly():
    model = _PairModel(7, block=6)
    rng = np.random.default_rng(1)
    prefixes = [rng.integers(0, 7, n).tolist() for n in (1, 3, 20)]
    conts = [rng.integers(0, 7, n).tolist() for n in (5, 0, 17)]
    got = continuation_logprobs(model, prefixes, conts)
    for p, c, g in zip(prefixes, conts, got):
        seq = p + c
        ref = []
        for t in range(len(p), len(seq)):
            ctx = torch.tensor([seq[max(0, t - 6) : t]])
            ref.append(torch.log_softmax(model(ctx)[0][0, -1], -1)[seq[t]].item())
        assert np.allclose(g, ref, atol=1e-5)


def test_lcs_and_rouge_l():
    def lcs_dp(a, b):
        table = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
        for i in range(len(a)):
            for j in range(len(b)):
                table[i + 1][j + 1] = table[i][j] + 1 if a[i] == b[j] else max(table[i][j + 1], table[i + 1][j])
        return table[-1][-1]

    rng = np.random.default_rng(0)
    for _ in range(200):
        a = rng.integers(0, 5, rng.integers(0, 30)).astype(str).tolist()
        b = rng.integers(0, 5, rng.integers(0, 30)).astype(str).tolist()
        assert lcs_length(a, b) == lcs_dp(a, b)
    assert rouge_l("the cat sat", "the cat sat") == 1.0
    assert rouge_l("", "x") == 0.0
    assert rouge_l("the cat", "the big cat") == pytest.approx(2 * 1.0 * (2 / 3) / (1 + 2 / 3))


def test_paraphrases_are_our_own(bitext_sample_path):
    items = load_paraphrases()
    assert len(items) >= 40
    table = read_table(bitext_sample_path)
    intents = {r.intent for r in table.rows}
    assert {p["intent"] for p in items} == intents  # at least one per intent, none unknown
    pairs = {(r.intent, r.category) for r in table.rows}
    assert all((p["intent"], p["category"]) in pairs for p in items)
    messages = {r.message.lower() for r in table.rows}
    assert not any(p["message"].lower() in messages for p in items)

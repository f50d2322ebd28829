"""Replies an agent can send: short replies (``support.length``), the brand's preference and
the request's, ``brand init``'s slots by frequency, and the demo's sample brand profile."""

from __future__ import annotations

import csv
import json
import tomllib
from collections import Counter
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from bigramlm.cli import main
from bigramlm.errors import BigramLMError
from bigramlm.support.brand import BrandProfile, brand_template, coverage
from bigramlm.support.length import is_closing, sentences, shorten

REPO = Path(__file__).resolve().parents[1]
SAMPLE_BRAND = REPO / "src" / "bigramlm" / "resources" / "sample-brand.toml"

LONG = ("I'm sorry to hear about order {{Order Number}}. I can help you cancel it today. "
        "Visit {{Website URL}} and sign in. Choose the order and press Cancel. "
        "If you need anything else, feel free to let me know!")
LISTED = ("I understand you want to cancel purchase {{Order Number}}. Here's what you need to do:\n\n"
          "1. Sign in: visit {{Website URL}}.\n2. Open your orders.\n3. Press Cancel.\n\n"
          "Is there anything else I can help you with?")


def _text(text: str, span: tuple[int, int]) -> str:
    return text[span[0]:span[1]]


def test_sentences_split_at_ends_and_lines_never_inside_a_placeholder():
    text = "Call {{Phone. Number}} now! Is it e.g. late? Yes.\n1. Open it. Then close it.\n- Done"
    assert [_text(text, s) for s in sentences(text)] == [
        "Call {{Phone. Number}} now!", "Is it e.g. late?", "Yes.", "1. Open it. Then close it.", "- Done"]


def test_short_keeps_the_leading_sentences_and_the_closing_line():
    short = shorten(LONG)
    assert short == ("I'm sorry to hear about order {{Order Number}}. I can help you cancel it today. "
                     "If you need anything else, feel free to let me know!")
    assert shorten(LONG, "as_is") == LONG and shorten(LONG, None) == LONG


def test_short_drops_a_list_and_the_line_announcing_it_keeps_the_paragraph_break():
    assert shorten(LISTED) == ("I understand you want to cancel purchase {{Order Number}}.\n\n"
                               "Is there anything else I can help you with?")


def test_short_never_cuts_mid_sentence_and_keeps_placeholders_whole():
    no_closing = LONG.replace(" If you need anything else, feel free to let me know!", " Your order number is {{Order Number}}.")
    short = shorten(no_closing)
    assert short == "I'm sorry to hear about order {{Order Number}}. I can help you cancel it today."
    for text in (LONG, LISTED, no_closing):
        pieces = [_text(text, s) for s in sentences(text)]
        assert all(p in pieces for p in [_text(shorten(text), s) for s in sentences(shorten(text))])
        assert shorten(text).count("{{") == shorten(text).count("}}")


def test_short_leaves_short_replies_and_replies_opening_with_a_list_as_they_are():
    assert shorten("Sure. Visit {{Website URL}}.") == "Sure. Visit {{Website URL}}."
    assert shorten("1. Sign in.\n2. Cancel.\n3. Done.") == "1. Sign in.\n2. Cancel.\n3. Done."


def test_closing_lines():
    assert is_closing("Is there anything else I can assist you with?")
    assert is_closing("Thank you for your patience and cooperation.")
    assert not is_closing("Choose the order and press Cancel.")
    assert not is_closing("Thank you " + "very " * 40 + "much.")  # content, however polite


def test_an_unknown_length_is_a_library_error():
    with pytest.raises(BigramLMError) as info:
        shorten(LONG, "tiny")
    assert info.value.param == "length" and "as_is, short" in str(info.value)


def test_brand_reply_length(tmp_path):
    path = tmp_path / "brand.toml"
    path.write_text('[brand]\nreply_length = "short"\n', encoding="utf-8")
    assert BrandProfile.load(path).reply_length == "short"
    path.write_text('[brand]\nname = "Acme"\n', encoding="utf-8")
    assert BrandProfile.load(path).reply_length is None
    path.write_text('[brand]\nreply_length = "tiny"\n', encoding="utf-8")
    with pytest.raises(BigramLMError, match="reply_length must be one of as_is, short"):
        BrandProfile.load(path)


def test_brand_template_lists_slots_by_frequency_with_the_top_20s_coverage():
    counts = Counter({f"Slot {k:02d}": 100 - k for k in range(25)})
    assert coverage(counts) == "top 20 of 25 slots cover 1,810 of 2,200 occurrences (82.3%)"
    text = brand_template(counts, "data.csv")
    assert "# top 20 of 25 slots cover 1,810 of 2,200 occurrences (82.3%): fill those first." in text
    assert text.index('"Slot 00"') < text.index('"Slot 01"') < text.index('"Slot 24"')
    assert '# 1. 100 occurrences\n"Slot 00" = ""' in text and '# 25. 76 occurrences\n"Slot 24" = ""' in text
    parsed = tomllib.loads(text)
    assert list(parsed["placeholders"]) == sorted(counts) and parsed["brand"]["reply_length"] == "as_is"
    assert coverage(Counter()) == "top 0 of 0 slots cover 0 of 0 occurrences"


def test_brand_init_prints_the_coverage(tmp_path, capsys):
    table = tmp_path / "t.csv"
    with open(table, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["instruction", "response", "intent", "category"])
        for k in range(3):
            writer.writerow([f"cancel {k}", "Cancel {{Order Number}} at {{Website URL}}.", "cancel_order", "ORDER"])
        writer.writerow(["call", "Call {{Phone}}.", "contact", "CONTACT"])
    out = tmp_path / "brand.toml"
    assert main(["brand", "init", "--data", str(table), "--out", str(out)]) == 0
    assert "top 3 of 3 slots cover 7 of 7 occurrences (100.0%)" in capsys.readouterr().out
    text = out.read_text(encoding="utf-8")
    assert text.index('"Order Number"') < text.index('"Phone"') and text.index('"Website URL"') < text.index('"Phone"')
    assert BrandProfile.load(out).values == {}  # an empty template fills nothing


def test_the_sample_brand_profile_fills_the_common_slots_and_leaves_the_customers():
    brand = BrandProfile.load(SAMPLE_BRAND)
    assert brand.name == "Acme" and brand.holding_reply and brand.reply_length == "as_is"
    for slot in ("Customer Support Phone Number", "Website URL", "Customer Support Hours", "Online Order Interaction",
                 "Online Company Portal Info", "Customer Support Email"):
        assert brand.values[slot]
    assert "Order Number" not in brand.values and "Client Last Name" not in brand.values
    demo = (REPO / "scripts" / "demo.sh").read_text(encoding="utf-8")
    assert "src/bigramlm/resources/sample-brand.toml" in demo and demo.count('--brand "$BRAND"') == 1


# --- the request's option and the brand's, end to end on a tiny run -------------------------------

REPLIES = {
    "cancel_order": ("I'm sorry to hear you want to cancel order {{Order Number}}. I can cancel it for you today. "
                     "Visit {{Website URL}} and sign in. Open the order and press Cancel. "
                     "Is there anything else I can help you with?"),
    "track_order": ("Thanks for asking about order {{Order Number}}. It is on its way to you now. "
                    "Open {{Website URL}} and sign in. Choose Track to see where it is. "
                    "Thank you for your patience!"),
}
MESSAGES = ["i want to cancel order 12", "please cancel my purchase", "cancel the order i made", "stop my order now",
            "where is my package", "track my order please", "my order has not arrived", "when will it come"]


@pytest.fixture(scope="module")
def long_run(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("length")
    table = root / "long.csv"
    with open(table, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["flags", "instruction", "category", "intent", "response"])
        for copy in range(4):
            for k, message in enumerate(MESSAGES):
                intent = "cancel_order" if k < 4 else "track_order"
                writer.writerow(["B", message + "!" * copy, "ORDER", intent, REPLIES[intent]])
    run = root / "run"
    assert main(["train", "--data", str(table), "--method", "counts", "--out", str(run), "--no-progress", "--json"]) == 0
    return run


def _row_texts(result: dict) -> list[str]:
    """The suggestions taken from training rows (the model's drafts vary)."""
    return [s["text"] for s in result["suggestions"] if s["source"] != "model"]


def test_assist_length_flag(long_run, capsys):
    argv = ["assist", str(long_run), "i want to cancel order 12", "--json", "--n", "1", "--max-tokens", "20", "--seed", "1"]
    assert main(argv) == 0
    as_is = json.loads(capsys.readouterr().out)
    assert main([*argv, "--length", "short"]) == 0
    short = json.loads(capsys.readouterr().out)
    assert _row_texts(as_is) and set(_row_texts(as_is)) == {REPLIES["cancel_order"]}
    assert set(_row_texts(short)) == {shorten(REPLIES["cancel_order"])}
    assert short["settings"]["length"] == "short"
    with pytest.raises(SystemExit) as exited:
        main([*argv, "--length", "tiny"])
    assert exited.value.code == 2 and "invalid choice: 'tiny'" in capsys.readouterr().err


def test_suggest_length_option_and_brand_preference(long_run, tmp_path):
    from bigramlm.serve.app import create_app

    brand = tmp_path / "brand.toml"
    brand.write_text('[brand]\nreply_length = "short"\n[placeholders]\n"Website URL" = "https://acme.example"\n',
                     encoding="utf-8")
    body = {"message": "where is my package", "n": 1, "max_new_tokens": 20, "seed": 1, "intent": "track_order"}
    with TestClient(create_app(long_run, brand_path=brand)) as client:
        by_brand = client.post("/api/suggest", json=body).json()
        as_is = client.post("/api/suggest", json={**body, "length": "as_is"}).json()
        bad = client.post("/api/suggest", json={**body, "length": "tiny"})
    expected = shorten(REPLIES["track_order"])
    assert set(_row_texts(by_brand)) == {expected} and set(_row_texts(as_is)) == {REPLIES["track_order"]}
    filled = [s["filled_text"] for s in by_brand["suggestions"] if s["source"] != "model"]
    assert filled == [expected.replace("{{Website URL}}", "https://acme.example")] * len(filled)
    assert all(s["base_text"] == s["filled_text"] for s in by_brand["suggestions"] if s["source"] != "model")
    assert bad.status_code == 422

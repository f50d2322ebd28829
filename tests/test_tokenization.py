"""CharTokenizer: round trips (non-ASCII, emoji), JSON save/load, unknown characters."""

from __future__ import annotations

import json

import numpy as np
import pytest

from bigramlm.errors import BigramLMError
from bigramlm.tokenization import CharTokenizer, load_tokenizer, normalize_for_vocab, save_tokenizer

TEXT = "Hello, there!\nÇa va? naïve café, ß, 日本語, and emoji 🙂🚀 (astral plane).\n"


def test_vocabulary_is_sorted_set_of_characters() -> None:
    tok = CharTokenizer.from_text(TEXT)
    assert tok.chars == "".join(sorted(set(TEXT)))
    assert tok.vocab_size == len(set(TEXT))
    # ids follow the sorted order, as the notebook's stoi does
    assert [tok.stoi[c] for c in tok.chars] == list(range(tok.vocab_size))


def test_round_trip_non_ascii_and_emoji() -> None:
    tok = CharTokenizer.from_text(TEXT)
    ids = tok.encode(TEXT)
    assert ids.dtype == np.int64 and len(ids) == len(TEXT)
    # same ids as the notebook's list comprehension
    assert ids.tolist() == [tok.stoi[c] for c in TEXT]
    assert tok.decode(ids) == TEXT
    assert tok.decode(ids.tolist()) == TEXT
    assert tok.decode([]) == ""
    assert tok.encode("").size == 0
    ascii_only = "Hello, there!"  # the byte-table fast path must agree with the general one
    assert tok.encode(ascii_only).tolist() == [tok.stoi[c] for c in ascii_only]
    emoji = "🚀🙂🚀"
    assert tok.decode(tok.encode(emoji)) == emoji


def test_json_save_load(tmp_path) -> None:
    tok = CharTokenizer.from_text(TEXT)
    path = tmp_path / "tokenizer.json"
    save_tokenizer(tok, path)
    data = json.loads(path.read_text(encoding="utf-8"))
    assert data["type"] == "char"
    loaded = load_tokenizer(path)
    assert isinstance(loaded, CharTokenizer)
    assert loaded.chars == tok.chars
    assert loaded.replacement == tok.replacement
    assert np.array_equal(loaded.encode(TEXT), tok.encode(TEXT))
    assert loaded.decode(loaded.encode(TEXT)) == TEXT


@pytest.mark.parametrize(
    ("text", "char", "position"),
    [("abcz", "z", 3), ("Xabc", "X", 0), ("ab🙃c", "🙃", 2), ("ab\u00e9", "\u00e9", 2)],
)
def test_unknown_character_names_char_and_position(text: str, char: str, position: int) -> None:
    tok = CharTokenizer.from_text("abc ")
    with pytest.raises(BigramLMError) as info:
        tok.encode(text)
    message = str(info.value)
    assert repr(char) in message
    assert f"position {position}" in message
    assert "\n" not in message


def test_unknown_character_replace() -> None:
    tok = CharTokenizer.from_text("abc ")
    assert tok.replacement == " "  # no U+FFFD or '?' in this vocabulary
    ids = tok.encode("a🙃bz", on_unknown="replace")
    assert tok.decode(ids) == "a b "
    assert tok.count_unknown("a🙃bz") == 2


def test_code_point_beyond_table_is_unknown() -> None:
    # The lookup table ends at the largest code point in the vocabulary; anything above
    # must be reported, not wrap around or index out of bounds.
    tok = CharTokenizer.from_text("ab")
    with pytest.raises(BigramLMError, match="position 1"):
        tok.encode("a\U0010ffff")


def test_decode_rejects_out_of_range_ids() -> None:
    tok = CharTokenizer.from_text("ab")
    with pytest.raises(BigramLMError):
        tok.decode([0, 2])
    with pytest.raises(BigramLMError):
        tok.decode([-1])


def test_corrupt_tokenizer_file(tmp_path) -> None:
    path = tmp_path / "tokenizer.json"
    path.write_text("{not json", encoding="utf-8")
    with pytest.raises(BigramLMError, match="corrupt"):
        load_tokenizer(path)
    path.write_text('{"type": "char", "chars": ["b", "a"]}', encoding="utf-8")
    with pytest.raises(BigramLMError, match="sorted"):
        load_tokenizer(path)
    with pytest.raises(BigramLMError, match="missing"):
        load_tokenizer(tmp_path / "absent.json")


def test_normalize_for_vocab_folds_then_replaces() -> None:
    tok = CharTokenizer.from_text("abc A?")
    text, replaced = normalize_for_vocab("ＡＢ a☃", tok)  # full-width A folds to A; B and ☃ are unknown
    assert text == "A? a?"
    assert replaced == 2

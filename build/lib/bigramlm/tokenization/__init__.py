"""Tokenizers behind one protocol: the lecture's characters and byte-level BPE.

Every tokenizer encodes text to a numpy array of int64 ids and decodes back, says
where an unprompted sample starts, replaces what it cannot encode, and saves itself as
JSON; ``load_tokenizer`` reads any of them back by its ``type``.
"""

from __future__ import annotations

import hashlib
import json
import unicodedata
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from bigramlm._fs import atomic_write_text
from bigramlm.errors import BigramLMError
from bigramlm.tokenization.char import CharTokenizer


class Tokenizer(Protocol):
    kind: str

    @property
    def vocab_size(self) -> int: ...

    @property
    def start_id(self) -> int: ...

    def encode(self, text: str, on_unknown: str = "error") -> np.ndarray: ...

    def decode(self, ids: Any) -> str: ...

    def replace_unknown(self, text: str) -> tuple[str, int]: ...

    def to_dict(self) -> dict[str, Any]: ...


def normalize_for_vocab(text: str, tokenizer: Tokenizer) -> tuple[str, int]:
    """The serving-time policy for characters a model never saw.

    NFKC normalisation first (it folds full-width forms, ligatures and compatibility
    characters onto their plain spellings), then every character still outside the
    vocabulary becomes the tokenizer's replacement character. Returns the text and
    how many characters were replaced.
    """
    return tokenizer.replace_unknown(unicodedata.normalize("NFKC", text))


def tokenizer_from_dict(data: dict[str, Any]) -> Tokenizer:
    kind = data.get("type")
    if kind == "char":
        return CharTokenizer(data["chars"], replacement=data.get("replacement"))
    if kind == "bpe":
        # Imported here: the Rust tokenizers library costs start-up that char runs never need.
        from bigramlm.tokenization.bpe import BPETokenizer

        return BPETokenizer.from_dict(data)
    raise BigramLMError(f"unknown tokenizer type {kind!r}")


def build_tokenizer(kind: str, train_text: str, vocab_text: str, vocab_size: int | None = None) -> Tokenizer:
    """A new tokenizer of ``kind`` ("char" or "bpe") for a run.

    The char vocabulary is every character of ``vocab_text`` (all the run sees); BPE
    merges are learned from ``train_text`` only, so validation text is never peeked at.
    """
    if kind == "bpe":
        from bigramlm.tokenization.bpe import DEFAULT_VOCAB, BPETokenizer

        return BPETokenizer.train(train_text, vocab_size if vocab_size is not None else DEFAULT_VOCAB)
    if kind == "char":
        return CharTokenizer.from_text(vocab_text)
    raise BigramLMError(f"unknown tokenizer {kind!r} (use char or bpe)", param="tokenizer")


def save_tokenizer(tokenizer: Tokenizer, path: Path) -> None:
    atomic_write_text(path, json.dumps(tokenizer.to_dict(), ensure_ascii=False))


def load_tokenizer(path: Path) -> Tokenizer:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BigramLMError(f"missing tokenizer file {path}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BigramLMError(f"corrupt tokenizer file {path}: {exc}") from None
    if not isinstance(data, dict):
        raise BigramLMError(f"corrupt tokenizer file {path}: not a JSON object")
    try:
        return tokenizer_from_dict(data)
    except (KeyError, TypeError) as exc:
        raise BigramLMError(f"corrupt tokenizer file {path}: missing {exc}") from None


def tokenizer_fingerprint(tokenizer: Tokenizer) -> str:
    """sha256 of the tokenizer's canonical JSON: two vocabularies of the same size but
    different characters must not pass for each other."""
    canonical = json.dumps(tokenizer.to_dict(), sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


__all__ = [
    "CharTokenizer",
    "Tokenizer",
    "build_tokenizer",
    "load_tokenizer",
    "normalize_for_vocab",
    "save_tokenizer",
    "tokenizer_fingerprint",
    "tokenizer_from_dict",
]

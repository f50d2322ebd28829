"""Byte-level BPE tokens, trained on the training split with Hugging Face ``tokenizers``.

Byte-level means the base alphabet is the 256 byte values, so any text encodes (there
is no unknown character) and ``decode(encode(text)) == text`` exactly. Merges are
learned from the training text only, so validation text is never peeked at.
"""

from __future__ import annotations

from typing import Any, Iterator

import numpy as np

from bigramlm.errors import BigramLMError

MIN_VOCAB = 257  # the 256 bytes plus at least one merge
DEFAULT_VOCAB = 512


def _lines(text: str) -> list[str]:
    # Encoding line by line lets the Rust side use all cores (encode_batch); the
    # newline stays attached to its line, so concatenated ids decode to the text.
    return text.splitlines(keepends=True)


class BPETokenizer:
    kind = "bpe"

    def __init__(self, tokenizer: Any):
        self._tok = tokenizer
        newline = self._tok.encode("\n").ids
        #: Where an unprompted sample starts, like the char tokenizer's newline.
        self.start_id = newline[0] if len(newline) == 1 else 0

    @classmethod
    def train(cls, text: str, vocab_size: int) -> "BPETokenizer":
        """Learn ``vocab_size - 256`` merges from ``text``."""
        from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

        if vocab_size < MIN_VOCAB:
            raise BigramLMError(f"vocab_size must be at least {MIN_VOCAB} for byte-level BPE (got {vocab_size})", param="vocab_size")
        if not text:
            raise BigramLMError("cannot train a BPE tokenizer on empty text")
        tok = Tokenizer(models.BPE())
        # add_prefix_space=False keeps the round trip exact (nothing is inserted).
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False,
            special_tokens=[],
        )

        def chunks() -> Iterator[str]:
            lines = _lines(text)
            for start in range(0, len(lines), 1000):
                yield "".join(lines[start : start + 1000])

        tok.train_from_iterator(chunks(), trainer=trainer)
        return cls(tok)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "BPETokenizer":
        from tokenizers import Tokenizer

        try:
            return cls(Tokenizer.from_str(data["tokenizer"]))
        except Exception as exc:  # the Rust side raises its own exception type
            raise BigramLMError(f"corrupt BPE tokenizer: {str(exc).splitlines()[0]}") from None

    @property
    def vocab_size(self) -> int:
        return self._tok.get_vocab_size()

    def encode(self, text: str, on_unknown: str = "error") -> np.ndarray:
        """Encode to int64 ids. ``on_unknown`` is accepted for the shared interface;
        byte-level BPE has no unknown characters."""
        if not text:
            return np.zeros(0, dtype=np.int64)
        encodings = self._tok.encode_batch(_lines(text), add_special_tokens=False)
        return np.fromiter((i for e in encodings for i in e.ids), dtype=np.int64)

    def replace_unknown(self, text: str) -> tuple[str, int]:
        """Byte-level BPE encodes every character: nothing to replace."""
        return text, 0

    def decode(self, ids: Any) -> str:
        array = np.asarray(ids, dtype=np.int64).reshape(-1)
        if array.size and (array.min() < 0 or array.max() >= self.vocab_size):
            raise BigramLMError(f"token id out of range for a vocabulary of {self.vocab_size}")
        return self._tok.decode(array.tolist(), skip_special_tokens=False)

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.kind, "tokenizer": self._tok.to_str()}

    def __repr__(self) -> str:
        return f"BPETokenizer(vocab_size={self.vocab_size})"


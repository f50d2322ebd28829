"""Turn a ``--data`` source into the train and val text a model is trained on.

Plain text is split by characters at 90% (train first), as in the lecture. Instruction
datasets (CSV/JSONL/Parquet, or ``--data bitext``) are split by rows in
``bigramlm.instructions``; both end up as a ``TextData``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import BigramLMError
from .sources import read_text_file, resolve_source

INSTRUCTION_SUFFIXES = {".csv", ".jsonl", ".parquet"}


@dataclass
class TextData:
    kind: str  # "text" or "instructions"
    train_text: str
    val_text: str
    #: What config.json records about the data, so a run needs nothing but its folder.
    spec: dict[str, Any] = field(default_factory=dict)
    #: Text the character vocabulary is built from (train + val: all the run sees).
    vocab_text: str = ""

    def __post_init__(self) -> None:
        if not self.vocab_text:
            self.vocab_text = self.train_text + self.val_text


def split_text(text: str, train_fraction: float = 0.9) -> tuple[str, str]:
    """The lecture's contiguous split: first 90% of characters train, the rest validate."""
    n = int(train_fraction * len(text))
    return text[:n], text[n:]


def load_text(source: str) -> tuple[str, Path]:
    path, _ = resolve_source(source)
    return read_text_file(path), path


def is_instruction_source(source: str) -> bool:
    from .sources import REGISTRY

    if source in REGISTRY:
        return REGISTRY[source].kind == "instructions"
    return Path(source).suffix.lower() in INSTRUCTION_SUFFIXES


def load_data(source: str, train_fraction: float = 0.9, **instruction_options: Any) -> TextData:
    """Load any ``--data`` source as train/val text."""
    if is_instruction_source(source):
        try:
            from .instructions import load_instruction_data
        except ImportError:
            raise BigramLMError(f"{source} is an instruction dataset, which this build cannot read") from None
        return load_instruction_data(source, **instruction_options)
    if not 0.0 < train_fraction < 1.0:
        raise BigramLMError(f"train fraction must be between 0 and 1 (got {train_fraction})")
    text, path = load_text(source)
    train_text, val_text = split_text(text, train_fraction)
    if len(val_text) < 2:
        raise BigramLMError(f"{source} is too short to split into train and val ({len(text)} characters)")
    spec = {"kind": "text", "source": source, "path": str(path), "characters": len(text), "train_fraction": train_fraction}
    return TextData(kind="text", train_text=train_text, val_text=val_text, spec=spec, vocab_text=text)


def load_run_data(config: dict[str, Any], source: str | None = None) -> TextData:
    """Rebuild the exact train/val text a run was trained on, from its config.json.

    ``source`` overrides where the data is read from (the file may have moved); the
    content must still be what the run recorded.
    """
    spec = config.get("data") or {}
    if spec.get("kind") == "instructions":
        from .instructions import load_instruction_data_from_spec

        return load_instruction_data_from_spec(spec, source)
    origin = source or spec.get("source") or spec.get("path")
    if not origin:
        raise BigramLMError("the run does not record its data; pass --data")
    data = load_data(origin, train_fraction=spec.get("train_fraction", 0.9))
    recorded = spec.get("characters")
    if recorded is not None and recorded != data.spec["characters"]:
        raise BigramLMError(
            f"{origin} has {data.spec['characters']} characters but the run was trained on "
            f"{recorded}; pass the original file with --data"
        )
    return data


def data_info(source: str, block_size: int = 8, preview: int = 500) -> dict[str, Any]:
    """What the lecture prints about a corpus: size, vocabulary, a preview, and the
    context -> target pairs packed into one window."""
    from .tokenization import CharTokenizer

    data = load_data(source)
    text = data.vocab_text
    tokenizer = CharTokenizer.from_text(text)
    window = tokenizer.encode(data.train_text[: block_size + 1]).tolist()
    if len(window) < block_size + 1:
        raise BigramLMError(f"block size {block_size} is longer than the training text")
    x, y = window[:block_size], window[1:]
    return {
        "source": source,
        "kind": data.kind,
        "characters": len(text),
        "vocab_size": tokenizer.vocab_size,
        "vocab": tokenizer.chars,
        "preview": text[:preview],
        "train_characters": len(data.train_text),
        "val_characters": len(data.val_text),
        "block_size": block_size,
        "pairs": [{"context": x[: t + 1], "target": y[t]} for t in range(block_size)],
        "pairs_text": [{"context": tokenizer.decode(x[: t + 1]), "target": tokenizer.decode([y[t]])} for t in range(block_size)],
    }


# Named corpora defined in other modules (the Bitext dataset) register themselves on import.
from . import instructions as _instructions  # noqa: E402,F401

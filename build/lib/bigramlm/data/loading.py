"""One entry point for any data source: ``load_data`` for a new run, ``load_run_data``
to rebuild exactly what a run was trained on from its recorded spec."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bigramlm.data.instructions import load_instruction_data, load_instruction_data_from_spec
from bigramlm.data.registry import is_instruction_source
from bigramlm.data.text import TextData, load_text_data
from bigramlm.errors import BigramLMError


def load_data(source: str, train_fraction: float = 0.9, **instruction_options: Any) -> TextData:
    """Load any data source as train/val text: a named corpus, a text file or an instruction table.

    ``instruction_options`` (column names, ``labels``, ...) apply to instruction tables.
    """
    if is_instruction_source(source):
        return load_instruction_data(source, **instruction_options)
    return load_text_data(source, train_fraction)


def load_run_data(spec: dict[str, Any], source: str | None = None) -> TextData:
    """Rebuild the exact train/val text a run was trained on, from its recorded data spec.

    ``source`` overrides where the data is read from (the file may have moved); the
    content must still be what the run recorded.
    """
    spec = spec or {}
    if spec.get("kind") == "instructions":
        return load_instruction_data_from_spec(spec, source)
    origin = source or spec.get("source") or spec.get("path")
    if not origin:
        raise BigramLMError("the run does not record its data; pass its source as data", param="data")
    data = load_text_data(origin, train_fraction=spec.get("train_fraction", 0.9))
    recorded = spec.get("characters")
    if recorded is not None and recorded != data.spec["characters"]:
        raise BigramLMError(
            f"{origin} has {data.spec['characters']} characters but the run was trained on "
            f"{recorded}; pass the original file as data",
            param="data",
        )
    return data


@dataclass
class DataInfo:
    """What the lecture prints about a corpus: size, vocabulary, a preview, and the
    context -> target pairs packed into one window."""

    source: str
    kind: str
    characters: int
    vocab_size: int
    vocab: str
    preview: str
    train_characters: int
    val_characters: int
    block_size: int
    pairs: list[dict[str, Any]]
    pairs_text: list[dict[str, str]]


def data_info(source: str, block_size: int = 8, preview: int = 500) -> DataInfo:
    from bigramlm.tokenization import CharTokenizer

    if block_size < 1:
        raise BigramLMError(f"block_size must be at least 1 (got {block_size})", param="block_size")
    data = load_data(source)
    text = data.vocab_text
    tokenizer = CharTokenizer.from_text(text)
    window = tokenizer.encode(data.train_text[: block_size + 1]).tolist()
    if len(window) < block_size + 1:
        raise BigramLMError(f"block_size {block_size} is longer than the training text", param="block_size")
    x, y = window[:block_size], window[1:]
    return DataInfo(
        source=source,
        kind=data.kind,
        characters=len(text),
        vocab_size=tokenizer.vocab_size,
        vocab=tokenizer.chars,
        preview=text[: max(preview, 0)],
        train_characters=len(data.train_text),
        val_characters=len(data.val_text),
        block_size=block_size,
        pairs=[{"context": x[: t + 1], "target": y[t]} for t in range(block_size)],
        pairs_text=[{"context": tokenizer.decode(x[: t + 1]), "target": tokenizer.decode([y[t]])} for t in range(block_size)],
    )

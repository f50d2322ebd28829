"""Plain text as a run's data: the lecture's contiguous 90/10 character split.

Instruction tables are split by rows instead (``bigramlm.data.instructions``); both end
up as a ``TextData``, which is what training reads.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bigramlm.data.registry import resolve_source
from bigramlm.data.sources import read_text_file
from bigramlm.errors import BigramLMError


@dataclass
class TextData:
    """The train and val text of a run, and what ``config.json`` records about where it came from."""

    kind: str  # "text" or "instructions"
    train_text: str
    val_text: str
    #: What config.json records about the data, so a run needs nothing but its folder.
    spec: dict[str, Any] = field(default_factory=dict)
    #: Text the character vocabulary is built from (train + val: all the run sees).
    vocab_text: str = ""
    #: The train text as the units it is made of (an instruction table's formatted rows),
    #: whose concatenation is ``train_text``; None for plain text.
    train_units: list[str] | None = None

    def __post_init__(self) -> None:
        if not self.vocab_text:
            self.vocab_text = self.train_text + self.val_text

    def write_run_files(self, run_dir: Path) -> None:
        """Save into a new run what later commands need of this data besides ``spec``.

        Plain text needs nothing: its spec rebuilds the split. Instruction data saves
        its rows, so the assistant never has to re-read the dataset.
        """


def split_text(text: str, train_fraction: float = 0.9) -> tuple[str, str]:
    """The lecture's contiguous split: first 90% of characters train, the rest validate."""
    n = int(train_fraction * len(text))
    return text[:n], text[n:]


def load_text_data(source: str, train_fraction: float = 0.9) -> TextData:
    """A text file or named text corpus, split by characters as in the lecture."""
    if not 0.0 < train_fraction < 1.0:
        raise BigramLMError(f"train_fraction must be between 0 and 1 (got {train_fraction})")
    path, _ = resolve_source(source)
    text = read_text_file(path)
    train_text, val_text = split_text(text, train_fraction)
    if len(val_text) < 2:
        raise BigramLMError(f"{source} is too short to split into train and val ({len(text)} characters)")
    spec = {"kind": "text", "source": source, "path": str(path), "characters": len(text), "train_fraction": train_fraction}
    return TextData(kind="text", train_text=train_text, val_text=val_text, spec=spec, vocab_text=text)

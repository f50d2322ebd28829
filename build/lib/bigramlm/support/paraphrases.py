"""Hand-written customer messages for measuring understanding beyond the dataset's phrasing."""

from __future__ import annotations

import json
import os
from importlib import resources
from pathlib import Path

from bigramlm.errors import BigramLMError


def load_paraphrases(path: str | os.PathLike[str] | None = None) -> list[dict[str, str]]:
    """The hand-written messages (``message``, ``intent``, ``category``), one JSON object a line."""
    if path is None:
        text = resources.files("bigramlm").joinpath("resources/paraphrases.jsonl").read_text(encoding="utf-8")
        where = "bigramlm/resources/paraphrases.jsonl"
    else:
        from bigramlm.data.sources import read_text_file

        text = read_text_file(Path(path))  # a regular UTF-8 file of bounded size, or one line
        where = str(path)
    items = []
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            try:
                item = json.loads(line)
            except json.JSONDecodeError as exc:
                raise BigramLMError(f"{where}: line {number}: {exc.msg}") from None
            if not isinstance(item, dict) or not isinstance(item.get("message"), str) or not isinstance(item.get("intent"), str) \
                    or not item["message"].strip() or not item["intent"].strip():
                raise BigramLMError(f"{where}: line {number} needs a message and an intent, both text")
            items.append(item)
    return items

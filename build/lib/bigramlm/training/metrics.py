"""``metrics.jsonl``: one JSON object per logged step, appended; cut back on resume."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from bigramlm._fs import FILE_MODE, atomic_write_text

#: The key of the record a finished run ends with (the final full-split evaluation).
FINAL_KEY = "final_val_loss"


def append_metrics(path: Path, records: list[dict[str, Any]]) -> None:
    if records:
        with open(path, "a", encoding="utf-8") as f:
            # open() would create the file under the umask of the moment; every file of
            # a run gets the one mode of the atomic writes (_fs.FILE_MODE).
            if hasattr(os, "fchmod"):
                os.fchmod(f.fileno(), FILE_MODE)
            f.writelines(json.dumps(r) + "\n" for r in records)


def truncate_metrics(path: Path, step: int) -> None:
    """On resume, forget what is redone: records after the checkpoint step, and the
    final record (a run resumed after writing it, or extended, writes its own)."""
    if not path.exists():
        return
    kept = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:  # a kill mid-append leaves a partial last line
            continue
        if record.get("step", 0) <= step and FINAL_KEY not in record:
            kept.append(line)
    atomic_write_text(path, "".join(line + "\n" for line in kept))


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """Every complete record (a kill mid-append leaves a partial last line, which is skipped)."""
    if not path.exists():
        return []
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records

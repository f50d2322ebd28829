"""``metrics.jsonl``: one JSON object per logged step, appended; cut back on resume."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bigramlm._fs import atomic_write_text


def append_metrics(path: Path, records: list[dict[str, Any]]) -> None:
    if records:
        with open(path, "a", encoding="utf-8") as f:
            f.writelines(json.dumps(r) + "\n" for r in records)


def truncate_metrics(path: Path, step: int) -> None:
    """On resume, forget metrics logged after the checkpoint step (they are redone)."""
    if not path.exists():
        return
    kept = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:  # a kill mid-append leaves a partial last line
            continue
        if record.get("step", 0) <= step:
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

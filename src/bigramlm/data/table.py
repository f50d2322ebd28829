"""Instruction tables (CSV, JSONL, Parquet) read into cases (``data.cases``) of stripped text.

A usable row has a non-empty instruction and response after ``str.strip``; the intent
and category columns are used when present. Every problem is a one-line error that
names the file and what to do.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypedDict

from bigramlm.data.cases import DATASET, Case
from bigramlm.data.sources import check_input_file
from bigramlm.errors import BigramLMError

DEFAULT_COLUMNS = {"instruction": "instruction", "response": "response", "intent": "intent", "category": "category"}


@dataclass
class Table:
    rows: list[Case]
    skipped: int  # rows with an empty instruction or response
    columns: dict[str, str | None]


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and math.isnan(value):
        return ""
    return value if isinstance(value, str) else str(value)


def _read_frame(path: Path):
    """Read a CSV/JSONL/Parquet file into a DataFrame of strings; one-line errors."""
    import pandas as pd

    suffix = path.suffix.lower()
    check_input_file(path)
    if path.stat().st_size == 0:
        raise BigramLMError(f"{path} is empty")
    if suffix == ".csv":
        try:
            # Strings only, and no "NA"/"null" guessing: a customer may well write "None".
            return pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8", engine="c")
        except UnicodeDecodeError as exc:
            raise BigramLMError(f"{path} is not UTF-8 text (bad byte at offset {exc.start})") from None
        except pd.errors.EmptyDataError:
            raise BigramLMError(f"{path} has no header row and no data") from None
        except pd.errors.ParserError as exc:
            detail = " ".join(str(exc).split())
            raise BigramLMError(f"cannot parse CSV {path}: {detail} (check the quoting of that row)") from None
    if suffix == ".jsonl":
        records = []
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise BigramLMError(f"{path} is not UTF-8 text (bad byte at offset {exc.start})") from None
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise BigramLMError(f"cannot parse JSONL {path}: line {number}: {exc.msg}") from None
            if not isinstance(record, dict):
                raise BigramLMError(f"cannot parse JSONL {path}: line {number} is not a JSON object")
            records.append(record)
        if not records:
            raise BigramLMError(f"{path} has no records")
        return pd.DataFrame.from_records(records)
    if suffix == ".parquet":
        try:
            return pd.read_parquet(path)
        except Exception as exc:  # pyarrow raises several types for a bad file
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise BigramLMError(f"cannot read Parquet {path}: {first}") from None
    raise BigramLMError(f"{path}: unsupported instruction file type {suffix!r} (use .csv, .jsonl or .parquet)")


def read_table(
    path: str | os.PathLike[str],
    instruction_col: str | None = None,
    response_col: str | None = None,
    intent_col: str | None = None,
    category_col: str | None = None,
    require_labels: bool = False,
) -> Table:
    """Read the usable rows of an instruction table.

    ``instruction_col``/``response_col`` default to ``instruction``/``response`` and
    must exist. ``intent_col``/``category_col`` default to ``intent``/``category`` and
    are used when present; naming one that does not exist is an error.
    """
    path = Path(path)
    frame = _read_frame(path)
    available = [str(c) for c in frame.columns]
    wanted = {
        "instruction": instruction_col or DEFAULT_COLUMNS["instruction"],
        "response": response_col or DEFAULT_COLUMNS["response"],
    }
    missing = [f"{role} column {name!r}" for role, name in wanted.items() if name not in available]
    optional: dict[str, str | None] = {}
    for role, given in (("intent", intent_col), ("category", category_col)):
        name = given or DEFAULT_COLUMNS[role]
        if name in available:
            optional[role] = name
        elif given is not None or require_labels:
            missing.append(f"{role} column {name!r}")
            optional[role] = None
        else:
            optional[role] = None
    if missing:
        names = ("instruction_col", "response_col", "intent_col", "category_col")
        raise BigramLMError(
            f"{path} lacks the {', '.join(missing)} (it has: {', '.join(available) or 'no columns'}); "
            f"name them with {', '.join(names)}",
            param=names,
        )
    columns = {**wanted, **optional}
    instructions = [_cell(v).strip() for v in frame[wanted["instruction"]].tolist()]
    responses = [_cell(v).strip() for v in frame[wanted["response"]].tolist()]
    n = len(instructions)
    intents = [_cell(v).strip() for v in frame[optional["intent"]].tolist()] if optional["intent"] else [""] * n
    categories = [_cell(v).strip() for v in frame[optional["category"]].tolist()] if optional["category"] else [""] * n
    rows: list[Case] = []
    for i in range(n):
        # The notebook's rule: keep a pair only when both stripped fields are non-empty.
        if instructions[i] and responses[i]:
            rows.append(Case(instructions[i], responses[i], intents[i] or None, categories[i] or None, DATASET, i))
    if not rows:
        raise BigramLMError(
            f"{path} has no usable rows: all {n} rows have an empty {wanted['instruction']!r} or {wanted['response']!r}"
        )
    return Table(rows=rows, skipped=n - len(rows), columns=columns)


class ColumnOptions(TypedDict):
    """The ``*_col`` keyword arguments of ``read_table``."""

    instruction_col: str | None
    response_col: str | None
    intent_col: str | None
    category_col: str | None


def column_options(spec: dict[str, Any]) -> ColumnOptions:
    """The ``*_col`` keyword arguments of ``read_table`` that a run's data spec recorded."""
    columns = spec.get("columns") or {}
    return ColumnOptions(instruction_col=columns.get("instruction"), response_col=columns.get("response"),
                         intent_col=columns.get("intent"), category_col=columns.get("category"))

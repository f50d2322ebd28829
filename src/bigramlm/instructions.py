"""Instruction datasets (Bitext and any CSV/JSONL/Parquet table) as training text.

Formatting
----------
Each usable row becomes exactly the notebook's block::

    ### Instruction:\\n{instruction}\\n\\n### Response:\\n{response}\\n\\n

with both fields stripped (``str.strip``) and rows with an empty field skipped. A run
that predicts intent trains on the *labelled* block, which adds the intent and the
category as labelled lines between the instruction and the response::

    ### Instruction:\\n{instruction}\\n\\n### Intent: {intent}\\n### Category: {category}\\n\\n### Response:\\n{response}\\n\\n

(``### Category`` is left out when the data has no category column). The format's
name and both templates are written into the run's ``config.json`` (``data.format``).

Split
-----
Rows are split, never characters: the CSV is sorted by intent, so a contiguous
character split would put whole intents only in validation. Within each intent the
distinct instructions are shuffled with a seeded generator and cut 80/10/10 into
train/val/test; every copy of one instruction goes to the same part, so no test
message is ever seen in training. Each part gets at least one instruction of an intent
that has three or more.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from .datasets import TextData
from .errors import BigramLMError
from .sources import Corpus, register, resolve_source, sha256_of

FORMAT_NAME = "bitext-instruction-v1"
BLOCK_TEMPLATE = "### Instruction:\n{instruction}\n\n### Response:\n{response}\n\n"
LABELLED_TEMPLATE = (
    "### Instruction:\n{instruction}\n\n### Intent: {intent}\n### Category: {category}\n\n### Response:\n{response}\n\n"
)
INSTRUCTION_HEADER = "### Instruction:\n"
RESPONSE_HEADER = "### Response:\n"
#: Where generation stops: the start of the next block (or any next header).
STOP_STRINGS = ("\n\n### ", "### Instruction")

DEFAULT_COLUMNS = {"instruction": "instruction", "response": "response", "intent": "intent", "category": "category"}
SPLIT_FRACTIONS = (0.8, 0.1, 0.1)
SPLIT_SEED = 1337
PARTS = ("train", "val", "test")

# --- the Bitext corpus -------------------------------------------------------------

BITEXT_REPO = "bitext/Bitext-customer-support-llm-chatbot-training-dataset"
BITEXT_FILE = "Bitext_Sample_Customer_Support_Training_Dataset_27K_responses-v11.csv"
#: The dataset repository's commit we pin (the file's bytes are also checked by sha256).
BITEXT_REVISION = "430d1a89bd93bd1fa23c16f29dd53e73f0087443"
BITEXT_SHA256 = "6f81102b0100b97b8468eb04368033a23206bf1fde9d53500d5806ec1001a434"


def fetch_from_hf_hub(corpus: Corpus, dest: Path, repo_id: str = BITEXT_REPO, revision: str = BITEXT_REVISION) -> None:
    """Download ``corpus.file_name`` from a Hugging Face dataset repo at a pinned revision.

    ``huggingface_hub`` reads ``HF_ENDPOINT`` once at import; we read it at call time
    and pass it on, so a test (or a mirror) can point the download anywhere. The file
    lands in a private temporary hub cache, is checked against the registry's sha256,
    and only then is copied atomically to ``dest``: a failure caches nothing.
    """
    try:
        from huggingface_hub import hf_hub_download
    except ImportError:  # a declared dependency, but keep the message useful
        raise BigramLMError("huggingface_hub is not installed; cannot download the Bitext dataset") from None
    endpoint = os.environ.get("HF_ENDPOINT") or None
    created_parent = not dest.parent.exists()
    dest.parent.mkdir(parents=True, exist_ok=True)
    hub_cache = Path(tempfile.mkdtemp(prefix=".hf-", dir=dest.parent))
    hub_logger = logging.getLogger("huggingface_hub")
    level = hub_logger.level
    ok = False
    try:
        # The hub client logs every retry as a warning; our one-line error says it all.
        hub_logger.setLevel(logging.ERROR)
        try:
            local = hf_hub_download(
                repo_id, corpus.file_name, repo_type="dataset", revision=revision,
                cache_dir=hub_cache, endpoint=endpoint,
            )
        except Exception as exc:  # network, HTTP and hub errors all end in one line
            first = (str(exc).strip().splitlines() or [""])[0]
            where = endpoint or "https://huggingface.co"
            raise BigramLMError(
                f"download of {repo_id}/{corpus.file_name} (revision {revision[:12]}) from {where} failed: "
                f"{type(exc).__name__}: {first}"
            ) from None
        finally:
            hub_logger.setLevel(level)
        digest = sha256_of(Path(local))
        if digest != corpus.sha256:
            raise BigramLMError(
                f"download of {repo_id}/{corpus.file_name} failed its checksum: sha256 {digest} != {corpus.sha256}"
            )
        fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
        os.close(fd)
        try:
            shutil.copyfile(local, tmp)
            os.replace(tmp, dest)
            ok = True
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    finally:
        shutil.rmtree(hub_cache, ignore_errors=True)
        if not ok and created_parent:
            try:
                dest.parent.rmdir()  # a failed download leaves nothing behind, not even a folder
            except OSError:
                pass


BITEXT = register(
    Corpus(name="bitext", file_name=BITEXT_FILE, sha256=BITEXT_SHA256, kind="instructions", fetch=fetch_from_hf_hub)
)


# --- rows ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    """One usable row: stripped fields, and its position in the source table."""

    index: int
    instruction: str
    response: str
    intent: str | None = None
    category: str | None = None


@dataclass
class Table:
    rows: list[Row]
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
    if path.is_dir():
        raise BigramLMError(f"{path} is a directory, not a data file")
    if not path.is_file():
        raise BigramLMError(f"no such file: {path}")
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
        flag_hint = "; name them with --instruction-col/--response-col/--intent-col/--category-col"
        raise BigramLMError(
            f"{path} lacks the {', '.join(missing)} (it has: {', '.join(available) or 'no columns'}){flag_hint}"
        )
    columns = {**wanted, **optional}
    instructions = [_cell(v).strip() for v in frame[wanted["instruction"]].tolist()]
    responses = [_cell(v).strip() for v in frame[wanted["response"]].tolist()]
    n = len(instructions)
    intents = [_cell(v).strip() for v in frame[optional["intent"]].tolist()] if optional["intent"] else [""] * n
    categories = [_cell(v).strip() for v in frame[optional["category"]].tolist()] if optional["category"] else [""] * n
    rows: list[Row] = []
    for i in range(n):
        # The notebook's rule: keep a pair only when both stripped fields are non-empty.
        if instructions[i] and responses[i]:
            rows.append(Row(i, instructions[i], responses[i], intents[i] or None, categories[i] or None))
    if not rows:
        raise BigramLMError(
            f"{path} has no usable rows: all {n} rows have an empty {wanted['instruction']!r} or {wanted['response']!r}"
        )
    return Table(rows=rows, skipped=n - len(rows), columns=columns)


# --- formatting --------------------------------------------------------------------------


def label_lines(intent: str | None, category: str | None = None) -> str:
    """The labelled lines of a block (empty when there is no intent)."""
    if not intent:
        return ""
    text = f"### Intent: {intent}\n"
    if category:
        text += f"### Category: {category}\n"
    return text + "\n"


def prompt_text(instruction: str, intent: str | None = None, category: str | None = None, labels: bool = False) -> str:
    """Everything of a block before the response: what generation continues from."""
    head = f"{INSTRUCTION_HEADER}{instruction}\n\n"
    if labels:
        head += label_lines(intent, category)
    return head + RESPONSE_HEADER


def format_block(instruction: str, response: str, intent: str | None = None, category: str | None = None, labels: bool = False) -> str:
    """One row as text; with ``labels=False`` exactly the notebook's block."""
    if not labels:
        return f"### Instruction:\n{instruction}\n\n### Response:\n{response}\n\n"
    return prompt_text(instruction, intent, category, labels=True) + f"{response}\n\n"


def format_rows(rows: Iterable[Row], labels: bool = False) -> str:
    return "".join(format_block(r.instruction, r.response, r.intent, r.category, labels) for r in rows)


def format_spec(labels: bool) -> dict[str, Any]:
    return {
        "name": FORMAT_NAME,
        "labels": labels,
        "template": LABELLED_TEMPLATE if labels else BLOCK_TEMPLATE,
        "notebook_template": BLOCK_TEMPLATE,
        "label_lines": "### Intent: {intent}\n### Category: {category}\n\n",
        "stop": list(STOP_STRINGS),
        "strip": "both fields str.strip(); rows with an empty instruction or response are skipped",
    }


# --- split -------------------------------------------------------------------------------


def _part_sizes(n: int, fractions: Sequence[float]) -> tuple[int, int, int]:
    """Sizes of train/val/test for ``n`` units; val and test get one each when n >= 3."""
    n_val = int(round(n * fractions[1]))
    n_test = int(round(n * fractions[2]))
    if n >= 3:
        n_val, n_test = max(1, n_val), max(1, n_test)
    elif n == 2:
        n_val, n_test = 0, 1
    else:
        n_val, n_test = 0, 0
    return n - n_val - n_test, n_val, n_test


def stratified_split(rows: Sequence[Row], fractions: Sequence[float] = SPLIT_FRACTIONS, seed: int = SPLIT_SEED) -> dict[str, list[Row]]:
    """Seeded split of rows into train/val/test, stratified by intent, grouped by instruction.

    The unit shuffled is a distinct instruction text (its stratum is the intent of its
    first row), so duplicates of a message can never sit on both sides. Strata are
    visited in sorted order and each draws a permutation from one seeded generator:
    the split depends only on the rows, the fractions and the seed. Each part keeps
    the rows' original order.
    """
    if len(fractions) != 3 or any(f < 0 for f in fractions) or abs(sum(fractions) - 1.0) > 1e-9:
        raise BigramLMError(f"split fractions must be three non-negative numbers summing to 1 (got {list(fractions)})")
    units: dict[str, list[int]] = {}
    stratum_units: dict[str, list[str]] = {}
    for pos, row in enumerate(rows):
        if row.instruction not in units:
            units[row.instruction] = []
            stratum_units.setdefault(row.intent or "", []).append(row.instruction)
        units[row.instruction].append(pos)
    rng = np.random.default_rng(seed)
    assignment = np.zeros(len(rows), dtype=np.int8)
    for stratum in sorted(stratum_units):
        members = stratum_units[stratum]
        order = rng.permutation(len(members))
        n_train, n_val, _ = _part_sizes(len(members), fractions)
        for rank, unit_pos in enumerate(order):
            part = 0 if rank < n_train else (1 if rank < n_train + n_val else 2)
            assignment[units[members[unit_pos]]] = part
    return {name: [r for r, a in zip(rows, assignment) if a == k] for k, name in enumerate(PARTS)}


# --- loading -------------------------------------------------------------------------------


@dataclass
class InstructionData(TextData):
    """Train/val text of an instruction dataset, plus its rows and the held-out test part."""

    test_text: str = ""
    parts: dict[str, list[Row]] = field(default_factory=dict)
    labels: bool = False

    @property
    def label_set(self) -> list[tuple[str, str | None]]:
        """The (intent, category) pairs seen in training, sorted: the classifier's classes."""
        return sorted({(r.intent, r.category) for r in self.parts.get("train", []) if r.intent}, key=lambda p: (p[0], p[1] or ""))


def _resolve(source: str) -> tuple[Path, str]:
    path, corpus = resolve_source(source)
    return path, (corpus.name if corpus else str(source))


def load_instruction_data(
    source: str,
    instruction_col: str | None = None,
    response_col: str | None = None,
    intent_col: str | None = None,
    category_col: str | None = None,
    labels: bool | None = None,
    seed: int = SPLIT_SEED,
    fractions: Sequence[float] = SPLIT_FRACTIONS,
    **ignored: Any,
) -> InstructionData:
    """Load an instruction dataset (``bitext`` or a CSV/JSONL/Parquet path) as a run's data.

    ``labels`` (default: whenever the data has an intent column) trains on the labelled
    block so that the run can classify intent. Unknown keyword options are ignored so
    that ``load_data`` can pass the CLI's instruction flags through unconditionally.
    """
    path, origin = _resolve(source)
    table = read_table(path, instruction_col, response_col, intent_col, category_col)
    has_intent = table.columns.get("intent") is not None
    if labels is None:
        labels = has_intent
    if labels and not has_intent:
        raise BigramLMError(f"{path} has no intent column, so a labelled run cannot be trained; name it with --intent-col")
    parts = stratified_split(table.rows, fractions, seed)
    if not parts["train"] or not parts["val"]:
        raise BigramLMError(f"{path} has too few usable rows ({len(table.rows)}) to split into train, val and test")
    texts = {name: format_rows(rows, labels) for name, rows in parts.items()}
    spec: dict[str, Any] = {
        "kind": "instructions",
        "source": origin,
        "path": str(path),
        "sha256": sha256_of(path),
        "columns": table.columns,
        "format": format_spec(labels),
        "split": {
            "method": "rows, seeded shuffle stratified by intent, grouped by instruction text",
            "fractions": list(fractions),
            "seed": seed,
            "rows": {name: len(rows) for name, rows in parts.items()},
        },
        "rows": len(table.rows),
        "skipped_rows": table.skipped,
        "characters": {name: len(text) for name, text in texts.items()},
    }
    data = InstructionData(
        kind="instructions",
        train_text=texts["train"],
        val_text=texts["val"],
        spec=spec,
        test_text=texts["test"],
        parts=parts,
        labels=labels,
    )
    spec["label_set"] = [[i, c] for i, c in data.label_set]
    return data


def column_options(spec: dict[str, Any]) -> dict[str, str | None]:
    """The ``*_col`` keyword arguments of ``read_table`` that a run's data spec recorded."""
    columns = spec.get("columns") or {}
    return {f"{role}_col": columns.get(role) for role in ("instruction", "response", "intent", "category")}


def load_instruction_data_from_spec(spec: dict[str, Any], source: str | None = None) -> InstructionData:
    """Rebuild a run's exact rows and split from ``config.json``'s data section.

    ``source`` overrides where the file is read from; its sha256 must still match.
    """
    origin = source or spec.get("source") or spec.get("path")
    if not origin:
        raise BigramLMError("the run does not record its data; pass --data")
    split = spec.get("split") or {}
    try:
        data = load_instruction_data(
            origin,
            **column_options(spec),
            labels=bool((spec.get("format") or {}).get("labels", False)),
            seed=int(split.get("seed", SPLIT_SEED)),
            fractions=tuple(split.get("fractions", SPLIT_FRACTIONS)),
        )
    except BigramLMError as exc:
        if source is None and spec.get("path") and origin != spec.get("path"):
            raise BigramLMError(f"{exc} (the run was trained on {spec['path']}; pass it with --data)") from None
        raise
    recorded = spec.get("sha256")
    if recorded and data.spec["sha256"] != recorded:
        raise BigramLMError(
            f"{origin} is not the file this run was trained on (sha256 {data.spec['sha256'][:12]}... != "
            f"{recorded[:12]}...); pass the original file with --data"
        )
    return data


def export_text(source: str, with_labels: bool = False, **columns: Any) -> str:
    """The whole dataset formatted as the notebook writes ``customer_support_data.txt``."""
    path, _ = _resolve(source)
    table = read_table(path, **columns, require_labels=with_labels)
    return format_rows(table.rows, labels=with_labels)


def write_export(text: str, out: Path) -> None:
    """Write UTF-8 with no newline translation, so the bytes are the notebook's on Linux."""
    from .checkpoint import atomic_write

    def write(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8", newline="") as f:
            f.write(text)

    atomic_write(Path(out), write)


__all__ = [
    "BLOCK_TEMPLATE",
    "InstructionData",
    "LABELLED_TEMPLATE",
    "Row",
    "STOP_STRINGS",
    "export_text",
    "format_block",
    "format_rows",
    "label_lines",
    "load_instruction_data",
    "load_instruction_data_from_spec",
    "prompt_text",
    "read_table",
    "stratified_split",
]

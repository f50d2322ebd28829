"""Instruction datasets (Bitext and any CSV/JSONL/Parquet table) as a run's data.

The rows are read by ``table``, split by ``splits`` and formatted by ``formats``; this
module puts them together as an ``InstructionData`` and records in its ``spec`` how to
rebuild exactly the same rows, split and text from the run's ``config.json``, including
the intents a run was trained without (``exclude_intents``, whose rows ``excluded_rows``
gives back).

A new run also saves what later commands need of its rows (``run_files``), so that
``assist``, ``serve`` and ``learn`` read the run directory and nothing else:
``load_run_files`` gives those files back, and rebuilds them once from the dataset for
a run written before they existed. Only ``eval`` on the val or test part reads the
dataset again (``read_split_rows``), choosing the rows by their saved indices.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from bigramlm._fs import atomic_write_text, check_writable, sha256_of
from bigramlm.data.formats import count_placeholders, format_block, format_rows, format_spec
from bigramlm.data.registry import resolve_source
from bigramlm.data.run_files import InstructionRunFiles, split_ids, write_train_targets
from bigramlm.data.splits import PARTS, SPLIT_FRACTIONS, SPLIT_SEED, stratified_split
from bigramlm.data.splits import exclude_intents as exclude_split_intents
from bigramlm.data.cases import Case
from bigramlm.data.table import Table, column_options, read_table
from bigramlm.data.text import TextData
from bigramlm.errors import BigramLMError


@dataclass
class InstructionData(TextData):
    """Train/val text of an instruction dataset, plus its rows and the held-out test part."""

    test_text: str = ""
    parts: dict[str, list[Case]] = field(default_factory=dict)
    labels: bool = False
    #: By part, the rows of the intents left out with ``exclude_intents`` ({} without it).
    excluded: dict[str, list[Case]] = field(default_factory=dict)
    #: The replies the model trains on, one per train row, where they are not the rows'
    #: own (``--recipe support``'s central replies); None: the rows' own.
    train_targets: list[str] | None = None

    @property
    def label_set(self) -> list[tuple[str, str | None]]:
        """The (intent, category) pairs seen in training, sorted: the classifier's classes."""
        return sorted({(r.intent, r.category) for r in self.parts.get("train", []) if r.intent}, key=lambda p: (p[0], p[1] or ""))

    def run_files(self) -> InstructionRunFiles:
        """What a run keeps of this data: label set, known placeholders, train rows, split."""
        train = self.parts.get("train", [])
        known = count_placeholders([r.reply for r in train]) + count_placeholders([r.message for r in train])
        return InstructionRunFiles(
            labels=self.labels,
            label_set=self.label_set,
            known_placeholders=sorted(known),
            train_rows=list(train),
            split_ids=split_ids(self.parts),
            source_sha256=self.spec.get("sha256"),
        )

    def write_run_files(self, run_dir: Path) -> None:
        self.run_files().save(run_dir)
        if self.train_targets is not None:
            write_train_targets(run_dir, self.train_targets)


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
    exclude_intents: Sequence[str] | None = None,
    **ignored: Any,
) -> InstructionData:
    """Load an instruction dataset (``bitext`` or a CSV/JSONL/Parquet path) as a run's data.

    ``labels`` (default: whenever the data has an intent column) trains on the labelled
    block so that the run can classify intent. ``exclude_intents`` leaves those intents
    out of the train and val parts, after the split (every other row stays where it
    was) and not out of test: the model and the retrieval index never see them, and
    ``excluded_rows`` hands out the rows taken out. Unknown keyword options are ignored
    so that ``load_data`` can pass the CLI's instruction flags through unconditionally.
    """
    path, origin = _resolve(source)
    table = read_table(path, instruction_col, response_col, intent_col, category_col)
    has_intent = table.columns.get("intent") is not None
    if labels is None:
        labels = has_intent
    if labels and not has_intent:
        raise BigramLMError(f"{path} has no intent column, so a labelled run cannot be trained; name it with intent_col", param="intent_col")
    if isinstance(exclude_intents, str):  # one name, not its characters
        exclude_intents = [exclude_intents]
    parts = stratified_split(table.rows, fractions, seed)
    excluded: dict[str, list[Case]] = {}
    if exclude_intents:
        parts, excluded = exclude_split_intents(parts, exclude_intents, [r.intent for r in table.rows])
    if not parts["train"] or not parts["val"]:
        raise BigramLMError(f"{path} has too few usable rows ({len(table.rows)}) to split into train, val and test")
    texts = {name: format_rows(rows, labels) for name, rows in parts.items()}
    data = InstructionData(
        kind="instructions",
        train_text=texts["train"],
        val_text=texts["val"],
        spec=_data_spec(path, origin, table, labels, seed, fractions, parts, texts),
        test_text=texts["test"],
        parts=parts,
        labels=labels,
        train_units=[format_block(r.message, r.reply, r.intent, r.category, labels) for r in parts["train"]],
        excluded=excluded,
    )
    if exclude_intents:
        data.spec["exclude_intents"] = list(dict.fromkeys(exclude_intents))
        data.spec["split"]["excluded_rows"] = {name: len(excluded[name]) for name in ("train", "val")}
    data.spec["label_set"] = [[i, c] for i, c in data.label_set]
    return data


def _data_spec(path: Path, origin: str, table: Table, labels: bool, seed: int, fractions: Sequence[float],
               parts: dict[str, list[Case]], texts: dict[str, str]) -> dict[str, Any]:
    """What ``config.json`` records of the data: enough to rebuild the same rows and split."""
    return {
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


def excluded_rows(data: "InstructionData | dict[str, Any]", part: str = "train", source: str | None = None) -> list[Case]:
    """The rows of the intents a run was trained without (``exclude_intents``), of one part.

    "train" and "val": the rows the option took out of that part (the would-be training
    rows of the new intents: resolved cases a benchmark can ``learn``); "test": the new
    intents' rows the test part kept. ``data`` is an ``InstructionData`` or a run's data
    spec (``config.json``), which is rebuilt from its dataset (``source``: where it is
    now). [] for data loaded without the option.
    """
    if part not in PARTS:
        raise BigramLMError(f"part must be one of {', '.join(PARTS)} (got {part!r})", param="part")
    if not isinstance(data, InstructionData):
        if not data.get("exclude_intents"):
            return []
        data = load_instruction_data_from_spec(data, source)
    return list(data.excluded.get(part, []))


def run_source_path(spec: dict[str, Any], source: str | None = None) -> Path:
    """The run's dataset file (or ``source`` instead), checked against the recorded sha256."""
    origin = source or spec.get("source") or spec.get("path")
    if not origin:
        raise BigramLMError("the run does not record its data; pass its source as data", param="data")
    try:
        path, _ = _resolve(origin)
    except BigramLMError as exc:
        if source is None and spec.get("path") and origin != spec.get("path"):
            raise BigramLMError(f"{exc} (the run was trained on {spec['path']}; pass that file as data)", param="data") from None
        raise
    recorded = spec.get("sha256")
    if recorded:
        actual = sha256_of(path)
        if actual != recorded:
            raise BigramLMError(
                f"{origin} is not the file this run was trained on (sha256 {actual[:12]}... != "
                f"{recorded[:12]}...); pass the original file as data", param="data"
            )
    return path


def load_instruction_data_from_spec(spec: dict[str, Any], source: str | None = None) -> InstructionData:
    """Rebuild a run's exact rows and split from ``config.json``'s data section.

    ``source`` overrides where the file is read from; its sha256 must still match.
    """
    run_source_path(spec, source)  # fails fast, before parsing, on a missing or different file
    split = spec.get("split") or {}
    return load_instruction_data(
        source or spec.get("source") or spec["path"],
        **column_options(spec),
        labels=bool((spec.get("format") or {}).get("labels", False)),
        seed=int(split.get("seed", SPLIT_SEED)),
        fractions=tuple(split.get("fractions", SPLIT_FRACTIONS)),
        exclude_intents=spec.get("exclude_intents"),
    )


def load_run_files(run_dir: str | Path, spec: dict[str, Any], source: str | None = None) -> InstructionRunFiles:
    """The run's saved rows and labels; for a run written before they were saved, rebuilt
    from the dataset once and saved into the run directory.

    ``source`` says where the dataset is; when given it is checked against the run's
    recorded sha256 even if the saved files make reading it unnecessary.
    """
    if source is not None:
        run_source_path(spec, source)
    saved = InstructionRunFiles.load(run_dir)
    if saved is not None:
        return saved
    files = load_instruction_data_from_spec(spec, source).run_files()
    try:
        files.save(run_dir)
    except OSError:
        pass  # a read-only run directory still loads, from the dataset each time
    return files


def read_split_rows(spec: dict[str, Any], files: InstructionRunFiles, part: str, source: str | None = None) -> list[Case]:
    """The rows of one part of the run's split: train from the run, val and test from the dataset.

    The dataset is read (and checked against its sha256) but not split again: the rows
    are the ones whose indices training saved.
    """
    if part == "train":
        return list(files.train_rows)
    if part not in files.split_ids:
        raise BigramLMError(f"split {part!r} does not exist (splits: {', '.join(files.split_ids)})", param="split")
    path = run_source_path(spec, source)
    return files.select(read_table(path, **column_options(spec)).rows, part)


def export_text(source: str, with_labels: bool = False, **columns: Any) -> tuple[str, Table]:
    """The whole dataset formatted as the notebook writes ``customer_support_data.txt``, and
    the table it came from (its rows, and how many were skipped): ``data export`` writes it."""
    path, _ = _resolve(source)
    table = read_table(path, **columns, require_labels=with_labels)
    return format_rows(table.rows, labels=with_labels), table


def write_export(text: str, out: Path) -> None:
    """Write UTF-8 with no newline translation, so the bytes are the notebook's on Linux."""
    check_writable(out, "out")
    atomic_write_text(out, text, newline="")

"""What an instruction run keeps of its dataset, so that later commands never re-read it.

Training writes two files into the run directory (``InstructionData.write_run_files``):

- ``train_rows.jsonl.gz``: the train rows, one JSON array a line,
  ``[row index, instruction, response, intent, category]``: the retrieval base of the
  assistant, the classes of its intent baseline and the replay text of ``learn``;
- ``data.json``: the format version, the dataset's sha256, whether the run is
  labelled, the label set (the classifier's classes), the placeholder names known from
  the train rows, the source row indices of each part of the split (train/val/test),
  and the rows file's name, count and sha256.

JSON, never pickle: reading a run must not run code. Gzip because the rows are most of
the text (Bitext sample: 6,314 train rows, 4.3 MB as JSON lines, 0.73 MB gzipped,
read back in 80 ms). Both files are written atomically, ``data.json`` last, so a
``data.json`` always names a complete rows file.
"""

from __future__ import annotations

import gzip
import json
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from bigramlm._fs import atomic_write, atomic_write_text, read_checked, sha256_of
from bigramlm.data.formats import format_rows
from bigramlm.data.cases import DATASET, Case
from bigramlm.errors import BigramLMError

DATA_FILE = "data.json"
TRAIN_ROWS_FILE = "train_rows.jsonl.gz"
FORMAT_VERSION = 1


@dataclass
class InstructionRunFiles:
    """The label set, known placeholders, train rows and split of an instruction run."""

    labels: bool
    label_set: list[tuple[str, str | None]]
    known_placeholders: list[str]
    train_rows: list[Case]
    #: Source row indices (``Case.id``) of each part: which rows went to train/val/test.
    split_ids: dict[str, list[int]] = field(default_factory=dict)
    source_sha256: str | None = None

    @property
    def train_text(self) -> str:
        """The run's training text, exactly as training formatted it."""
        return format_rows(self.train_rows, self.labels)

    def save(self, run_dir: str | Path) -> None:
        run_dir = Path(run_dir)
        lines = "".join(
            json.dumps([r.id, r.message, r.reply, r.intent, r.category], ensure_ascii=False) + "\n"
            for r in self.train_rows
        ).encode("utf-8")
        # mtime=0: the same rows give the same bytes, so the recorded sha256 is reproducible.
        packed = gzip.compress(lines, compresslevel=6, mtime=0)
        atomic_write(run_dir / TRAIN_ROWS_FILE, lambda tmp: Path(tmp).write_bytes(packed))
        meta = {
            "format_version": FORMAT_VERSION,
            "source_sha256": self.source_sha256,
            "labels": self.labels,
            "label_set": [[i, c] for i, c in self.label_set],
            "known_placeholders": sorted(self.known_placeholders),
            "split_ids": self.split_ids,
            "train_rows": {"file": TRAIN_ROWS_FILE, "count": len(self.train_rows), "sha256": sha256_of(run_dir / TRAIN_ROWS_FILE)},
        }
        atomic_write_text(run_dir / DATA_FILE, json.dumps(meta, ensure_ascii=False, separators=(",", ":")))

    @classmethod
    def load(cls, run_dir: str | Path) -> "InstructionRunFiles | None":
        """The saved files of ``run_dir``, or None for a run written before they existed."""
        run_dir = Path(run_dir)
        path = run_dir / DATA_FILE
        if not path.exists():
            return None
        try:
            meta = json.loads(path.read_text(encoding="utf-8"))
            rows_path = run_dir / meta["train_rows"]["file"]
            if Path(meta["train_rows"]["file"]).name != meta["train_rows"]["file"]:
                raise ValueError("the rows file must be in the run directory")
            packed = read_checked(rows_path, meta["train_rows"]["sha256"])  # one read: hashed, then parsed
            rows = [Case(str(ins), str(res), intent, category, DATASET, int(i))
                    for i, ins, res, intent, category in map(json.loads, gzip.decompress(packed).splitlines())]
            if len(rows) != meta["train_rows"]["count"] or meta["format_version"] != FORMAT_VERSION:
                raise ValueError("unexpected row count or format version")
            return cls(
                labels=bool(meta["labels"]),
                label_set=[(str(i), c or None) for i, c in meta["label_set"]],
                known_placeholders=[str(n) for n in meta["known_placeholders"]],
                train_rows=rows,
                split_ids={str(k): [int(i) for i in v] for k, v in meta["split_ids"].items()},
                source_sha256=meta.get("source_sha256"),
            )
        except (OSError, ValueError, KeyError, TypeError, EOFError, zlib.error) as exc:
            raise BigramLMError(
                f"corrupt {path} or its rows ({exc}); delete {DATA_FILE} and the run rebuilds it from its dataset"
            ) from None

    def select(self, rows: Sequence[Case], part: str) -> list[Case]:
        """The rows of ``part`` among a re-read table's rows, in the table's order."""
        if part not in self.split_ids:
            raise BigramLMError(f"split {part!r} does not exist (splits: {', '.join(self.split_ids)})", param="split")
        wanted = set(self.split_ids[part])
        return [r for r in rows if r.id in wanted]


def split_ids(parts: dict[str, list[Case]]) -> dict[str, list[int]]:
    return {name: [_row_id(r) for r in rows] for name, rows in parts.items()}


def _row_id(row: Case) -> int:
    """A dataset row's id: its position in its file, which every row read from a table has."""
    assert row.id is not None
    return row.id


#: The replies a run's language model was trained on, where they are not the rows' own
#: (``--recipe support`` trains on each row's neighbourhood's central reply): a gzipped
#: JSON list aligned with ``train_rows``. ``learn`` replays these, not the rows' own, so
#: that a fine-tune does not pull the model back to the targets it was not trained on.
TRAIN_TARGETS_FILE = "train_targets.json.gz"


def write_train_targets(run_dir: str | Path, replies: Sequence[str]) -> None:
    packed = gzip.compress(json.dumps(list(replies), ensure_ascii=False).encode("utf-8"), mtime=0)
    atomic_write(Path(run_dir) / TRAIN_TARGETS_FILE, lambda tmp: Path(tmp).write_bytes(packed))


def read_train_targets(run_dir: str | Path, rows: int) -> list[str] | None:
    """The trained-on replies of ``rows`` train rows, or None when the run has none (or they do not match)."""
    path = Path(run_dir) / TRAIN_TARGETS_FILE
    try:
        replies = json.loads(gzip.decompress(path.read_bytes()).decode("utf-8"))
    except (OSError, ValueError, EOFError, zlib.error):
        return None
    if not isinstance(replies, list) or len(replies) != rows or not all(isinstance(r, str) for r in replies):
        return None
    return replies

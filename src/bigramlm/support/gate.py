"""The learn gate: new weights are kept only if they do not make the other intents worse.

Before ``learn`` replaces a run's weights it measures, on held-out validation rows of the
intents it did not learn (``GATE_ROWS_PER_INTENT`` of each), the model's own greedy draft
(chrF against the rows' replies) and the intent accuracy, with the run as it was and as
it would be. New weights that cost more than ``MAX_CHRF_DROP`` chrF or ``MAX_ACCURACY_DROP``
accuracy there are not kept, and learn says so in one line with the figures (``force``
keeps them anyway). A refitted understanding is judged on its accuracy alone.

The figures of the weights before are kept in the run (``gate.json``, keyed by the
weights' and the understanding's sha256), so a second learn does not measure them again.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from bigramlm._fs import atomic_write_text, sha256_of
from bigramlm.checkpoint import WEIGHTS, Run
from bigramlm.data.cases import Case
from bigramlm.data.instructions import load_run_files, read_split_rows
from bigramlm.errors import BigramLMError
from bigramlm.support.metrics import reply_metrics
from bigramlm.support.results import SuggestSettings
from bigramlm.support.understanding import UNDERSTANDING_FILE

from bigramlm.support.assistant import Assistant

if TYPE_CHECKING:
    from bigramlm.support.publish import LearnedUnderstanding

GATE_FILE = "gate.json"
GATE_ROWS_PER_INTENT = 2
MAX_CHRF_DROP = 0.5
MAX_ACCURACY_DROP = 0.005
#: Long enough for nearly every Bitext reply (p99 of a row is 448 tokens, its prompt included).
GATE_TOKENS = 400


@dataclass(frozen=True)
class GateFigures:
    """The other intents' held-out rows: how many, the model's greedy draft chrF, the intent accuracy."""

    rows: int
    chrf: float
    intent_accuracy: float


@dataclass(frozen=True)
class GateVerdict:
    before: GateFigures
    after: GateFigures

    @property
    def chrf_drop(self) -> float:
        return self.before.chrf - self.after.chrf

    @property
    def accuracy_drop(self) -> float:
        return self.before.intent_accuracy - self.after.intent_accuracy

    @property
    def understanding_ok(self) -> bool:
        return self.accuracy_drop <= MAX_ACCURACY_DROP

    @property
    def weights_ok(self) -> bool:
        return self.chrf_drop <= MAX_CHRF_DROP and self.understanding_ok

    def describe(self) -> str:
        b, a = self.before, self.after
        return (f"on {b.rows} held-out rows of the other intents, chrF {b.chrf:.2f} -> {a.chrf:.2f} (limit -{MAX_CHRF_DROP}), "
                f"intent accuracy {b.intent_accuracy:.4f} -> {a.intent_accuracy:.4f} (limit -{MAX_ACCURACY_DROP})")

    def to_dict(self) -> dict[str, object]:
        return {"before": asdict(self.before), "after": asdict(self.after), "weights_ok": self.weights_ok,
                "understanding_ok": self.understanding_ok}


def gate_rows(val_rows: list[Case], learned_intents: set[str | None]) -> list[Case]:
    """The first ``GATE_ROWS_PER_INTENT`` validation rows of every intent not learned."""
    taken: dict[str | None, int] = {}
    out = []
    for row in val_rows:
        if row.intent in learned_intents or taken.get(row.intent, 0) >= GATE_ROWS_PER_INTENT:
            continue
        taken[row.intent] = taken.get(row.intent, 0) + 1
        out.append(row)
    return out


def measure(assistant: Assistant, rows: list[Case]) -> GateFigures:
    """The assistant's model's greedy draft and understanding on ``rows``."""
    settings = SuggestSettings(n=1, drafts=1, max_new_tokens=GATE_TOKENS, temperature=0.0, top_k=None, top_p=None, seed=0)
    results = assistant.suggest_many([r.message for r in rows], settings)
    chrf = reply_metrics([r.model_draft for r in results], [r.reply for r in rows])["chrf"]
    accuracy = sum(r.intent == row.intent for r, row in zip(results, rows)) / len(rows)
    return GateFigures(len(rows), round(chrf, 4), round(accuracy, 6))


def cached_before(run_dir: Path, key: str) -> GateFigures | None:
    try:
        saved = json.loads((Path(run_dir) / GATE_FILE).read_text(encoding="utf-8"))
        return GateFigures(**saved["figures"]) if saved.get("key") == key else None
    except (OSError, ValueError, KeyError, TypeError):
        return None


def keep_before(run_dir: Path, key: str, figures: GateFigures) -> None:
    try:
        atomic_write_text(Path(run_dir) / GATE_FILE, json.dumps({"key": key, "figures": asdict(figures)}))
    except OSError:
        pass  # a read-only run: measured again next time


class Gate:
    """The run's figures on the other intents' held-out rows, before the fine-tune and after it."""

    def __init__(self, run: Run, spec: dict[str, Any], data: str | None, learned: set[str | None],
                 log: Callable[[str], None]):
        self.run, self.log = run, log
        self.files = load_run_files(run.path, spec, data)
        try:
            held_out = read_split_rows(spec, self.files, "val", data)
        except BigramLMError as exc:  # the dataset is elsewhere: the train rows stand in
            log(f"the learn gate measures train rows ({exc})")
            held_out = self.files.train_rows
        self.rows = gate_rows(held_out, learned)
        self.before = self._before() if self.rows else None

    def _before(self) -> GateFigures:
        names = [WEIGHTS, UNDERSTANDING_FILE]
        key = "|".join(sha256_of(self.run.path / n) if (self.run.path / n).is_file() else "-" for n in names)
        figures = cached_before(self.run.path, key)
        if figures is None:
            figures = measure(Assistant(self.run, self.files), self.rows)
            keep_before(self.run.path, key, figures)
        return figures

    def judge(self, understanding: "LearnedUnderstanding | None") -> GateVerdict | None:
        if self.before is None:
            return None
        assistant = Assistant(self.run, self.files)
        if understanding is not None:
            assistant.understander = understanding.understander
        verdict = GateVerdict(self.before, measure(assistant, self.rows))
        self.log(f"learn gate: {verdict.describe()}")
        return verdict

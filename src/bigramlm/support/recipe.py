"""``bigramlm train --recipe support``: one command trains what the assistant needs.

Within one time budget (``time_limit``, counted from the process's start on the CLI):

1. the understanding: the training messages are embedded once by the sentence encoder,
   logistic regression is fitted on them and calibrated on the validation rows
   (``support.understanding``); measured first, so that its cost is inside the budget;
2. the language model on the labelled rows, each written with the central reply of its
   neighbourhood (``central_replies``), with the settings of
   ``training.recipes.SUPPORT_TRAIN_DEFAULTS``: the GPT sized to the budget, or the
   bigram (its closed-form fit) when asked for, which stays a first-class assistant model;
3. a ``recipe`` section in ``config.json``: every choice and the measurement behind it.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from bigramlm.checkpoint import read_config, write_config
from bigramlm.config import TrainConfig
from bigramlm.data.instructions import InstructionData
from bigramlm.data.text import TextData
from bigramlm.errors import BigramLMError
from bigramlm.tokenization import build_tokenizer
from bigramlm.training import TrainResult, train
from bigramlm.training.recipes import SUPPORT_ROW_COVERAGE, SUPPORT_TRAIN_DEFAULTS, support_recipe
from bigramlm.support.paraphrases import load_phrasings
from bigramlm.support.understanding import Understander

MAX_SUPPORT_BLOCK = 1024


@dataclass
class RowLengths:
    """Tokens per labelled train row under the run's tokenizer."""

    mean: float
    p90: int
    p99: int
    block_size: int
    covered: float  # share of rows whose whole block fits in ``block_size``


def measure_rows(data: InstructionData, tokenizer_kind: str, vocab_size: int | None) -> RowLengths:
    """The context the recipe needs: the 99th percentile of the rows, rounded up to 32."""
    if not data.train_units:
        raise BigramLMError("the support recipe needs an instruction dataset (rows of messages and replies)", param="data")
    tokenizer = build_tokenizer(tokenizer_kind, data.train_text, data.vocab_text, vocab_size)
    lengths = np.array([len(tokenizer.encode(unit)) for unit in data.train_units])
    p99 = int(np.percentile(lengths, 100 * SUPPORT_ROW_COVERAGE))
    block = min(MAX_SUPPORT_BLOCK, 32 * math.ceil((p99 + 1) / 32))
    return RowLengths(float(lengths.mean()), int(np.percentile(lengths, 90)), p99, block,
                      float((lengths + 1 <= block).mean()))


#: Central targets cost ~70 s on the Bitext sample (2 quiet cores), more than a short
#: budget can spare: below this budget the GPT trains on the rows' own replies.
CENTRAL_TARGETS_FROM_S = 600.0
#: Past this share of the budget spent before the language model starts, say so.
LOW_MODEL_SHARE = 0.5

#: How many of a row's nearest same-intent training rows vote on its central reply.
CENTRAL_NEIGHBOURS = 12


def _neighbour_replies(data: InstructionData, part: str) -> list[list[str]]:
    """For each row of ``part``, the replies of its nearest same-intent train rows (by message,
    TF-IDF), nearest first, leaving out rows with the very same message."""
    from bigramlm.support.retrieval import CaseIndex

    index = CaseIndex(data.parts["train"])
    rows = data.parts[part]
    hits = index.search_many([r.message for r in rows], k=4 * CENTRAL_NEIGHBOURS)
    return [[c.reply for c, _ in found if c.intent == row.intent and c.message != row.message][:CENTRAL_NEIGHBOURS]
            for row, found in zip(rows, hits)]


def central_replies(data: InstructionData, neighbours: list[list[str]] | None = None) -> list[str]:
    """For each train row, the reply among its own and its nearest same-intent rows' replies
    that agrees most with the others (chrF consensus).

    Agents answer one kind of request in many wordings; training on the central one of a
    neighbourhood instead of each row's own teaches the model the answer agents agree on,
    with less noise to fit (see the recipe's measurements in docs/assistant.md).
    """
    from bigramlm.support.ranking import most_central

    neighbours = _neighbour_replies(data, "train") if neighbours is None else neighbours
    groups = [[row.reply] + others for row, others in zip(data.parts["train"], neighbours)]
    return [group[i] for group, i in zip(groups, most_central(groups))]


def with_central_targets(data: InstructionData) -> InstructionData:
    """The same data, its train text written with ``central_replies`` (val and test keep their own)."""
    import dataclasses

    from bigramlm.data.formats import format_block

    neighbours = _neighbour_replies(data, "train")
    replies = central_replies(data, neighbours)
    units = [format_block(r.message, reply, r.intent, r.category, data.labels) for r, reply in zip(data.parts["train"], replies)]
    text, val_text = "".join(units), data.val_text
    fmt = {**data.spec.get("format", {}), "train_targets": (
        f"each train row's reply is the chrF consensus of its own and its {CENTRAL_NEIGHBOURS} nearest "
        "same-intent rows' replies (support.recipe.central_replies); val and test keep their own")}
    return dataclasses.replace(data, train_text=text, train_units=units, val_text=val_text, vocab_text=text + val_text,
                               spec={**data.spec, "format": fmt}, train_targets=replies)


def fit_understanding(data: InstructionData) -> tuple[Understander, list[str]]:
    """The calibrated intent classifier over sentence embeddings of the train rows and the
    hand-written phrasings of their intents (``support.paraphrases.load_phrasings``), and the
    intent of each message it stores."""
    train_rows = [r for r in data.parts["train"] if r.intent]
    val_rows = [r for r in data.parts.get("val", []) if r.intent]
    if len({r.intent for r in train_rows}) < 2:
        raise BigramLMError("the support recipe needs an intent column with at least two intents", param="data")
    intents = [r.intent for r in train_rows if r.intent]  # all of them: the filter narrows the type
    phrasings = [p for p in load_phrasings() if p["intent"] in set(intents)]
    understander = Understander.fit(
        ([r.message for r in train_rows], intents, [r.category for r in train_rows]),
        ([r.message for r in val_rows], [r.intent for r in val_rows if r.intent]),
        phrasings=([p["message"] for p in phrasings], [p["intent"] for p in phrasings]),
    )
    return understander, intents + [p["intent"] for p in phrasings]


def support_configs(data: InstructionData, model_name: str, time_limit: float | None,
                    overrides: dict[str, Any]) -> tuple[dict[str, Any], TrainConfig, RowLengths | None]:
    """(model config, training config, row lengths) of the recipe; ``overrides`` (flags) win."""
    if model_name == "bigram":
        config = TrainConfig(**{"method": "counts", **overrides})
        return {}, config, None
    model, training = support_recipe(time_limit)
    training.update({k: v for k, v in overrides.items() if v is not None})
    rows = measure_rows(data, training["tokenizer"], training.get("vocab_size"))
    if overrides.get("block_size") is None:
        training["block_size"] = rows.block_size
    return model, TrainConfig(**training), rows


def train_support(
    data: TextData,
    out_dir: str | Path,
    model_name: str = "gpt",
    time_limit: float | None = None,
    overrides: dict[str, Any] | None = None,
    model_overrides: dict[str, Any] | None = None,
    started_at: float | None = None,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
) -> TrainResult:
    """Fit the understanding, then train the language model, within one budget; see the module docstring."""
    log = log or (lambda message: None)
    if not isinstance(data, InstructionData) or not data.labels:
        raise BigramLMError("the support recipe trains on labelled instruction rows (a table with an intent column)",
                            param="data")
    import time

    clock_start = time.time()
    started_at = clock_start if started_at is None else started_at  # the understanding counts too
    budget = SUPPORT_TRAIN_DEFAULTS["time_limit"] if time_limit is None else time_limit
    if model_name == "gpt" and budget >= CENTRAL_TARGETS_FROM_S:
        data = with_central_targets(data)
        log(f"train targets: each row's reply replaced by the central one of its {CENTRAL_NEIGHBOURS} nearest same-intent rows")
    model_config, config, rows = support_configs(data, model_name, time_limit, dict(overrides or {}))
    model_config.update(model_overrides or {})
    understander, intents = fit_understanding(data)
    understanding_s = time.time() - clock_start
    log(f"understanding fitted in {understanding_s:.1f} s (embeddings of {len(intents):,} messages, temperature "
        f"{understander.temperature:.2f}); training the {model_name}")
    if budget and time.time() - started_at > LOW_MODEL_SHARE * budget:
        log(f"warning: the understanding took {time.time() - started_at:.0f} s of the {budget:.0f} s budget, which "
            f"leaves the {model_name} little time to train; give it a longer --time-limit")
    result = train(data, out_dir, model_name=model_name, model_config=model_config, config=config,
                   started_at=started_at, progress=progress, log=log)
    understander.save(Path(out_dir), intents)
    _record(Path(out_dir), model_name, rows, understander, understanding_s)
    return result


def _record(run_dir: Path, model_name: str, rows: RowLengths | None, understander: Understander, seconds: float) -> None:
    config = read_config(run_dir)
    config.extras["recipe"] = {
        "name": "support",
        "model": model_name,
        "row_tokens": asdict(rows) if rows is not None else None,
        "row_coverage_goal": SUPPORT_ROW_COVERAGE,
        "understanding": {
            "encoder": "sentence-transformers/all-MiniLM-L6-v2",
            "classifier": "logistic regression on the embeddings, C=30, of the train rows and the packaged phrasings",
            "temperature": understander.temperature,
            "intents": len(understander.classes),
            "seconds": round(seconds, 1),
        },
    }
    write_config(run_dir, config)

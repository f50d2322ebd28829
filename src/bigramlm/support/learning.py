"""``bigramlm learn``: fold resolved cases into a run's case store, index and weights.

``learn RUN_DIR --cases FILE`` reads cases with the run's own column names (the same
columns as the dataset), stores them, and continues training the model from its
checkpoint for ``--steps`` AdamW steps. ``learn RUN_DIR`` learns from the cases the
store gathered (e.g. accepted on the desk) since the last learn.

Fine-tuning on a few cases alone would make the model forget the rest of the data, so
each batch mixes windows of the new cases with windows of the run's own training text
(``replay``, half by default). The weights are replaced atomically at the end; the store
marks the cases as learned only after that, so a crash never loses a case: the next
``learn`` picks it up again.

Cases are formatted exactly as the run's training blocks. In a labelled run a case that
comes without an intent gets the one the model predicts, so its block keeps the format.
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from bigramlm.checkpoint import load_run, save_weights
from bigramlm.data.batching import get_batch
from bigramlm.data.formats import INSTRUCTION_HEADER, format_block, label_lines
from bigramlm.data.instructions import load_instruction_data_from_spec
from bigramlm.data.table import column_options, read_table
from bigramlm.errors import BigramLMError
from bigramlm.evaluation.lm import total_nats
from bigramlm.evaluation.scoring import continuation_logprob_sums
from bigramlm.support.assistant import require_instruction_run, softmax
from bigramlm.support.store import CaseStore
from bigramlm.tokenization import normalize_for_vocab

LEARN_LOG = "learn.jsonl"
DEFAULT_STEPS = 200


def read_cases_file(path: str | os.PathLike[str], spec: dict[str, Any]) -> list[dict[str, Any]]:
    """Cases from a CSV/JSONL/Parquet file with the run's column names."""
    table = read_table(path, **column_options(spec))
    return [
        {"message": r.instruction, "reply": r.response, "intent": r.intent, "category": r.category}
        for r in table.rows
    ]


def _predict_labels(model, tokenizer, spec: dict[str, Any], message: str) -> tuple[str | None, str | None]:
    pairs = [tuple(p) for p in spec.get("label_set") or []]
    if not pairs:
        return None, None
    prefix = [int(t) for t in tokenizer.encode(f"{INSTRUCTION_HEADER}{message}\n\n", on_unknown="replace")]
    conts = [[int(t) for t in tokenizer.encode(label_lines(i, c), on_unknown="replace")] for i, c in pairs]
    best = int(np.argmax(softmax(continuation_logprob_sums(model, prefix, conts))))
    return pairs[best][0], pairs[best][1]


def learn(
    run_dir: str | os.PathLike[str],
    cases_path: str | os.PathLike[str] | None = None,
    steps: int = DEFAULT_STEPS,
    learning_rate: float | None = None,
    batch_size: int | None = None,
    replay: float = 0.5,
    seed: int = 1337,
    data: str | None = None,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Add cases to the run's store and continue training on them; returns a summary."""
    log = log or (lambda message: None)
    if steps < 0:
        raise BigramLMError(f"--steps must not be negative (got {steps})")
    if not 0.0 <= replay < 1.0:
        raise BigramLMError(f"--replay must be in [0, 1) (got {replay})")
    started = time.perf_counter()
    run = load_run(run_dir)
    spec = require_instruction_run(run)
    labels = bool((spec.get("format") or {}).get("labels"))
    training = run.config.training
    store = CaseStore.for_run(run.path)
    try:
        if cases_path is not None:
            new_cases = read_cases_file(cases_path, spec)
            ids = store.add_cases([{**c, "source": "learn"} for c in new_cases])
            cases = [{**c, "id": i} for c, i in zip(new_cases, ids)]
            log(f"stored {len(cases)} cases from {cases_path}")
        else:
            cases = store.cases_since_last_learn()
            log(f"{len(cases)} cases in the store since the last learn")
        summary: dict[str, Any] = {"run_dir": str(run.path), "cases": len(cases), "steps": 0}
        if not cases:
            summary["message"] = "no new cases to learn from"
            return summary

        blocks = []
        for case in cases:
            intent, category = case.get("intent"), case.get("category")
            if labels and not intent:
                intent, category = _predict_labels(run.model, run.tokenizer, spec, case["message"])
            blocks.append(format_block(case["message"].strip(), case["reply"].strip(), intent, category, labels))
        text, replaced = normalize_for_vocab("".join(blocks), run.tokenizer)
        case_ids = torch.from_numpy(run.tokenizer.encode(text, on_unknown="replace"))

        replay_ids = None
        if replay > 0:
            try:
                replay_ids = torch.from_numpy(
                    run.tokenizer.encode(load_instruction_data_from_spec(spec, data).train_text, on_unknown="replace")
                )
            except BigramLMError as exc:
                log(f"no replay of the training data ({exc}); fine-tuning on the cases alone")
                replay = 0.0

        model = run.model
        block = min(training.block_size, int(model.get_block_size()), len(case_ids) - 1)
        if block < 1:
            raise BigramLMError("the cases are too short to learn from (need at least 2 characters)")
        batch = int(batch_size or training.batch_size)
        lr = float(learning_rate if learning_rate is not None else training.learning_rate)
        before, n_targets = total_nats(model, case_ids, block_size=block)

        generator = torch.Generator().manual_seed(seed)
        n_replay = int(round(batch * replay)) if replay_ids is not None else 0
        n_case = batch - n_replay
        # No weight decay: it would pull a counts-fitted table of log-probabilities towards zero.
        optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
        model.train()
        last = math.nan
        for _ in range(steps):
            xs, ys = get_batch(case_ids, n_case, block, generator)
            if n_replay:
                xr, yr = get_batch(replay_ids, n_replay, block, generator)
                xs, ys = torch.cat([xs, xr]), torch.cat([ys, yr])
            _, loss = model(xs, ys)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            last = float(loss.item())
        model.eval()
        after, _ = total_nats(model, case_ids, block_size=block)
        if steps:
            save_weights(run.path, model)
        store.mark_learned(max(int(c["id"]) for c in cases))
        summary.update({
            "steps": steps,
            "learning_rate": lr,
            "batch_size": batch,
            "replay": replay,
            "block_size": block,
            "replaced_characters": replaced,
            "case_characters": len(text),
            "case_loss_before": before / n_targets,
            "case_loss_after": after / n_targets,
            "last_batch_loss": last,
            "seconds": round(time.perf_counter() - started, 3),
        })
        with open(Path(run.path) / LEARN_LOG, "a", encoding="utf-8") as f:
            f.write(json.dumps({"time": time.time(), **summary}) + "\n")
        return summary
    finally:
        store.close()

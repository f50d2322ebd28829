"""The small public API for notebook users; it mirrors the CLI.

    import bigramlm as bl
    data = bl.load_data("tinyshakespeare")
    result = bl.train(data, "runs/shakespeare", config=bl.TrainConfig(steps=3000, learning_rate=1e-2))
    run = bl.load_run("runs/shakespeare")
    print(bl.evaluate_run(run).loss)
    print(bl.sample(run, "ROMEO:", 200, seed=0))
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from .checkpoint import Run, load_run
from .datasets import load_run_data
from .errors import BigramLMError
from .evaluation import EvalResult, evaluate_ids
from .sampling import generate_text


def _as_run(run: Run | str | os.PathLike[str]) -> Run:
    return run if isinstance(run, Run) else load_run(run)


def evaluate_run(run: Run | str | os.PathLike[str], split: str = "val", data: str | None = None) -> EvalResult:
    """Exact loss of a run over a whole split of the data it was trained on."""
    run = _as_run(run)
    text_data = load_run_data(run.config, data)
    texts = {"train": text_data.train_text, "val": text_data.val_text}
    test_text = getattr(text_data, "test_text", None)
    if test_text is not None:
        texts["test"] = test_text
    if split not in texts:
        raise BigramLMError(f"split {split!r} does not exist for this run (splits: {', '.join(texts)})")
    text = texts[split]
    ids = torch.from_numpy(run.tokenizer.encode(text, on_unknown="replace"))
    characters = len(text) - len(run.tokenizer.decode(ids[:1]))  # characters the targets spell
    return evaluate_ids(run.model, ids, split, characters=characters, block_size=run.config["training"].get("block_size"))


def sample(run: Run | str | os.PathLike[str], prompt: str = "", tokens: int = 500, **options) -> str:
    """Generate ``tokens`` new tokens continuing ``prompt``; returns the new text."""
    run = _as_run(run)
    return "".join(generate_text(run.model, run.tokenizer, prompt, tokens, **options))

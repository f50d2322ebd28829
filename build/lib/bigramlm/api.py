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

import torch

from bigramlm.checkpoint import Run, load_run
from bigramlm.data import load_run_data
from bigramlm.errors import BigramLMError
from bigramlm.evaluation import EvalResult, evaluate_ids
from bigramlm.generation import generate_text


def _as_run(run: Run | str | os.PathLike[str]) -> Run:
    return run if isinstance(run, Run) else load_run(run)


def evaluate_run(run: Run | str | os.PathLike[str], split: str = "val", data: str | None = None) -> EvalResult:
    """Exact loss of a run over a whole split of the data it was trained on."""
    run = _as_run(run)
    text_data = load_run_data(run.config.data, data)
    texts = {"train": text_data.train_text, "val": text_data.val_text}
    test_text = getattr(text_data, "test_text", None)
    if test_text is not None:
        texts["test"] = test_text
    if split not in texts:
        raise BigramLMError(f"split {split!r} does not exist for this run (splits: {', '.join(texts)})", param="split")
    text = texts[split]
    ids = torch.from_numpy(run.tokenizer.encode(text, on_unknown="replace"))
    characters = len(text) - len(run.tokenizer.decode(ids[:1]))  # characters the targets spell
    return evaluate_ids(run.model, ids, split, characters=characters, block_size=run.config.training.block_size)


def sample(run: Run | str | os.PathLike[str], prompt: str = "", tokens: int = 500, **options) -> str:
    """Generate ``tokens`` new tokens continuing ``prompt``; returns the new text.

    ``options``: ``temperature``, ``top_k``, ``top_p``, ``seed`` and ``stop`` (strings
    that end the sample before them), as for ``generation.generate_text``.
    """
    run = _as_run(run)
    return "".join(generate_text(run.model, run.tokenizer, prompt, tokens, **options))

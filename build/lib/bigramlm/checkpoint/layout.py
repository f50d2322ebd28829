"""The files of a run directory, by name.

A run needs nothing but its folder: ``eval``, ``sample``, ``assist``, ``serve``,
``learn`` and ``--resume`` read everything from here.
"""

from bigramlm.config import CONFIG  # the typed RunConfig: model, training, data, tokenizer fingerprint

WEIGHTS = "model.safetensors"  # the weights to use (final, or best-val when training keeps it)
TOKENIZER = "tokenizer.json"
#: Model, optimizer and RNG state of the last checkpoint step, in one file so that a
#: kill can never pair the weights of one step with the optimizer state of another.
RESUME = "resume.safetensors"
METRICS = "metrics.jsonl"
EVAL = "eval.json"
LOSS_PLOT = "loss.png"

__all__ = ["CONFIG", "EVAL", "LOSS_PLOT", "METRICS", "RESUME", "TOKENIZER", "WEIGHTS"]

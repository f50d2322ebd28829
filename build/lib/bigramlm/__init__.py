"""bigramlm: the character-level bigram language model of "Let's build GPT", as real software.

The public API mirrors the CLI (``bigramlm.api`` has a five-line tour)::

    import bigramlm as bl
    data = bl.load_data("tinyshakespeare")
    bl.train(data, "runs/nb", config=bl.TrainConfig(steps=300, learning_rate=5e-2, batch_size=256))
    run = bl.load_run("runs/nb")
    print(bl.evaluate_run(run).loss, bl.sample(run, "ROMEO:", 200, seed=0))

The names below load on first use: ``import bigramlm`` (and so ``bigramlm --help``)
does not pay for importing torch, which takes 1.7 s on quiet cores and 11-15 s on busy ones.
"""

from __future__ import annotations

from bigramlm._lazy import lazy_exports

__version__ = "0.1.0"

#: Public name -> the module that defines it.
_PUBLIC = {
    "BigramLMError": "bigramlm.errors",
    "CharTokenizer": "bigramlm.tokenization",
    "EvalResult": "bigramlm.evaluation",
    "Run": "bigramlm.checkpoint",
    "RunConfig": "bigramlm.config",
    "TextData": "bigramlm.data",
    "TrainConfig": "bigramlm.config",
    "TrainResult": "bigramlm.training",
    "evaluate_run": "bigramlm.api",
    "load_data": "bigramlm.data",
    "load_run": "bigramlm.checkpoint",
    "sample": "bigramlm.api",
    "train": "bigramlm.training",
}


__getattr__, __dir__ = lazy_exports(__name__, _PUBLIC)

__all__ = sorted(_PUBLIC)

"""bigramlm: the character-level bigram language model of "Let's build GPT", as real software.

The public API mirrors the CLI; see ``bigramlm.api`` for a five-line tour.
"""

__version__ = "0.1.0"

from .api import evaluate_run, sample  # noqa: E402
from .checkpoint import Run, load_run  # noqa: E402
from .datasets import TextData, load_data  # noqa: E402
from .errors import BigramLMError  # noqa: E402
from .evaluation import EvalResult  # noqa: E402
from .tokenization import CharTokenizer  # noqa: E402
from .training import TrainConfig, TrainResult, train  # noqa: E402

__all__ = [
    "BigramLMError",
    "CharTokenizer",
    "EvalResult",
    "Run",
    "TextData",
    "TrainConfig",
    "TrainResult",
    "evaluate_run",
    "load_data",
    "load_run",
    "sample",
    "train",
]

"""The settings of one suggest request, defined once: their defaults, bounds and help.

``SuggestSettings`` is what ``Assistant.suggest`` takes and what every answer records. The
desk's request model (``serve.schemas.SuggestRequest``) and the CLI's generation flags
(``cli.support``) are built from its fields and their ``Bounds``, so the library, the API
and the commands take the same values and say the same about them. Torch-free: the CLI
checks its flags with ``SuggestSettings.check`` before it loads a run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import TypeVar

from bigramlm.errors import BigramLMError

T = TypeVar("T")

#: Suggestions, and drafts, a request may ask for. Eight: the desk shows three, and the
#: shared decode's batch of 192 rows then holds 24 requests of 8 drafts (``assistant.ROWS_PER_BATCH``).
MAX_N = 8
#: Tokens a reply may run to: the recipe's replies end well within it (the brand's longest
#: Bitext reply is under 400 tokens, the default).
MAX_REPLY_TOKENS = 1000
#: torch.Generator takes 64-bit seeds; a negative or larger one overflows in torch.
MAX_SEED = 2**63 - 1
#: How a reply is shown: ``as_is``, or ``short`` (``support.length``).
AS_IS, SHORT = "as_is", "short"
LENGTHS = (AS_IS, SHORT)
#: ``eval --task support``'s seed: its figures are reproducible by default.
EVAL_SEED = 1337
#: Similar resolved cases a suggestion shows (``assist --similar``).
SIMILAR_CASES = 3
#: ``learn``'s defaults (``support.learning``), here so that ``learn --help`` shows them without torch.
LEARN_STEPS = 200
LEARN_TIME_LIMIT = 40.0


@dataclass(frozen=True)
class Bounds:
    """One setting's help text, range (``ge``/``gt``/``le``) or choices, and CLI flag."""

    help: str
    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    choices: tuple[str, ...] | None = None
    #: The flag of the commands that take it (``assist``, ``eval --task support``).
    flag: str | None = None

    def describe(self) -> str:
        """The range in words, for ``--help`` and errors."""
        if self.choices:
            return "one of " + ", ".join(self.choices)
        low = f"{_number(self.ge)} <= " if self.ge is not None else f"{_number(self.gt)} < " if self.gt is not None else ""
        return f"{low}x <= {_number(self.le)}" if self.le is not None else f"{low}x"


def _number(x: float | None) -> str:
    """A bound as people write it: 1000000, 0.95."""
    return str(int(x)) if x is not None and float(x).is_integer() else f"{x}"


def _setting(default: T, help: str, ge: float | None = None, gt: float | None = None, le: float | None = None,
             choices: tuple[str, ...] | None = None, flag: str | None = None) -> T:
    """A field of ``SuggestSettings`` with its ``Bounds`` (read back with ``bounds``)."""
    return field(default=default, metadata={"bounds": Bounds(help, ge, gt, le, choices, flag)})


@dataclass(frozen=True)
class SuggestSettings:
    """How the drafts of one suggest request are written and shown."""

    n: int = _setting(3, "suggestions shown: the model's drafts and resolved replies, ranked together", ge=1, le=MAX_N,
                      flag="--n")
    #: Left to the assistant (None): ``n`` drafts, and on a desk whose shared decode is busy
    #: with other requests only the greedy one (``Assistant.settle``). Whole test split of a
    #: 400 s recipe GPT: top suggestion shown chrF micro / macro 58.37 / 54.37 with 1 draft
    #: against 58.44 / 54.43 with 3, in 0.39x the decode time; eight agents on one desk waited
    #: p50 1.24 s, against 2.44 s with every request's 3 drafts (benchmarks/desk_latency.py, 2 cores).
    drafts: int | None = _setting(None, "model drafts written per message: the greedy one, then samples "
                                        "(default n; a busy desk writes only the greedy one)", ge=1, le=MAX_N,
                                  flag="--drafts")
    max_new_tokens: int = _setting(400, "length limit of a reply in tokens", ge=1, le=MAX_REPLY_TOKENS, flag="--max-tokens")
    temperature: float = _setting(0.8, "sampling temperature", ge=0.0, le=5.0, flag="--temperature")
    top_k: int | None = _setting(None, "sample from the k likeliest tokens only", ge=1, le=1_000_000, flag="--top-k")
    top_p: float | None = _setting(0.95, "nucleus mass", gt=0.0, le=1.0, flag="--top-p")
    seed: int | None = _setting(None, "random seed for reproducible suggestions", ge=0, le=MAX_SEED)
    length: str | None = _setting(None, "as_is, or short: each reply's leading sentences and its closing line "
                                         "(default: the brand profile's)", choices=LENGTHS, flag="--length")

    @property
    def draft_count(self) -> int:
        """The drafts written: ``drafts``, or ``n`` where it was left to the assistant."""
        return self.n if self.drafts is None else self.drafts

    def check(self) -> "SuggestSettings":
        """Itself, when every setting is of its type and in its bounds; a library error naming the first that is not."""
        for f in fields(self):
            check_setting(f.name, getattr(self, f.name))
        return self


def bounds(name: str) -> Bounds:
    """The bounds of the setting ``name``."""
    found = SETTING_BOUNDS.get(name)
    if found is None:
        raise BigramLMError(f"no suggest setting is called {name!r}", param="name")
    return found


def check_setting(name: str, value: object) -> None:
    """A one-line library error naming ``name`` when ``value`` is not a value of the setting."""
    b = bounds(name)
    if value is None:
        if name not in OPTIONAL:
            raise BigramLMError(f"{name} must be given", param=name)
        return
    if b.choices is not None:
        if value not in b.choices:
            raise BigramLMError(f"{name} must be {b.describe()} (got {value!r})", param=name)
        return
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not number or (name in INTEGERS and not isinstance(value, int)):
        raise BigramLMError(f"{name} must be a number (got {value!r})", param=name)
    assert isinstance(value, (int, float))
    if not (math.isfinite(value) and (b.ge is None or value >= b.ge) and (b.gt is None or value > b.gt)
            and (b.le is None or value <= b.le)):
        raise BigramLMError(f"{name} must be {b.describe()} (got {value})", param=name)


SETTING_BOUNDS: dict[str, Bounds] = {f.name: f.metadata["bounds"] for f in fields(SuggestSettings)}
DEFAULTS: dict[str, object] = {f.name: f.default for f in fields(SuggestSettings)}
#: The settings that are whole numbers (the dataclass's annotations are strings here).
INTEGERS = frozenset(f.name for f in fields(SuggestSettings) if str(f.type).startswith("int"))
#: The settings None is a value of (top_k, top_p: no such filter; seed: a random one; length: the brand's).
OPTIONAL = frozenset(f.name for f in fields(SuggestSettings) if "None" in str(f.type))

__all__ = ["AS_IS", "LENGTHS", "MAX_N", "MAX_REPLY_TOKENS", "MAX_SEED", "SHORT", "DEFAULTS", "INTEGERS", "LEARN_STEPS", "LEARN_TIME_LIMIT", "EVAL_SEED", "SIMILAR_CASES", "Bounds", "SuggestSettings", "bounds",
           "check_setting"]

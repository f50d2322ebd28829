"""What every command shares: the ``error:`` contract, strict JSON output, shared flags.

Nothing here imports torch at module level: building the parser must stay instant
(``import torch`` takes 1.7 s on quiet cores and 11-15 s on busy ones), so commands
import the library inside their functions.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from typing import TYPE_CHECKING, Any, Callable

from bigramlm.errors import BigramLMError

if TYPE_CHECKING:
    from pathlib import Path

#: Exit status of every bad input, argparse's and the library's alike.
EXIT_USAGE = 2

#: ``--threads`` above this is a typo, not a machine (TrainConfig uses the same bound).
MAX_THREADS = 1024


def strict_json(obj: Any) -> str:
    """``obj`` as strict JSON: NaN and infinities (a diverged loss, an overflowed
    perplexity) become null, which every JSON parser reads; ``NaN`` is not JSON."""
    return json.dumps(_finite(obj), ensure_ascii=False, allow_nan=False)


def _finite(obj: Any) -> Any:
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {key: _finite(value) for key, value in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(value) for value in obj]
    return obj


def print_json(obj: Any) -> None:
    print(strict_json(obj))


def stderr_log(args: argparse.Namespace) -> Callable[[str], None] | None:
    """Progress lines go to stderr, and not at all under ``--json``."""
    if getattr(args, "json", False):
        return None
    return lambda message: print(message, file=sys.stderr)


def add_json_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print one JSON object")


def add_store_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument("--store", default=None, metavar="URL",
                   help="the case store: a postgresql://USER@HOST/DATABASE URL that several desks share, or a SQLite "
                        "file (default: $BIGRAMLM_STORE, else cases.sqlite in the run directory; a URL with a password "
                        "belongs in the variable, since a flag is visible to every user in ps)")


def first_line(path: "Path", flag: str, what: str) -> str:
    """The first line of ``path``, stripped: a secret (a token, a store URL with its password)
    read from a file, since a flag's value is visible to every user in ``ps``."""
    from bigramlm.data.sources import read_text_file

    lines = read_text_file(path).splitlines()
    value = lines[0].strip() if lines else ""
    if not value:
        raise BigramLMError(f"{flag} {path} holds no {what} on its first line")
    return value


def thread_count(value: str) -> int:
    """argparse type of ``--threads``: an integer in 1..MAX_THREADS."""
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {value!r}") from None
    if not 1 <= number <= MAX_THREADS:
        raise argparse.ArgumentTypeError(f"must be in 1..{MAX_THREADS} (got {number})")
    return number


def add_threads_flag(p: argparse.ArgumentParser | argparse._ArgumentGroup,
                     default_help: str = "the library's policy") -> None:
    p.add_argument("--threads", type=thread_count, default=None, metavar="N",
                   help=f"intra-op CPU threads (default: {default_help})")


def add_speculate_flag(p: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    p.add_argument("--no-speculate", dest="speculate", action="store_false",
                   help="decode one token per pass instead of verifying drafts taken from the similar cases' replies "
                        "(greedy replies are the same either way; only slower)")


def apply_threads(threads: int | None, model: Any = None) -> None:
    """``--threads N``, or without it the library's policy for ``model`` (1 thread for a
    tiny model, else the cores the machine's load leaves idle: ``training.threads``).

    Called once the model is loaded, the one place a command sets its threads.
    """
    if model is not None:
        from bigramlm.training.threads import configure_threads

        configure_threads(model, threads)
    elif threads is not None:
        import torch  # here, not at the top: --help must not wait for torch

        torch.set_num_threads(threads)


def require(condition: bool, message: str, param: str) -> None:
    """A check of a flag the library does not validate (yet): one ``error:`` line."""
    if not condition:
        raise BigramLMError(message, param=param)

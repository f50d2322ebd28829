"""Secrets (API tokens, webhook secrets) from a file or the environment, never the command line.

A command line is seen by every user of the machine (``ps``) and kept in shell histories;
so a connector reads each secret from the environment variable that names it, or from a
``KEY=value`` file (``--secrets FILE``, one per line, ``#`` comments). A missing secret is
an error that names the variable, never a value; ``Secret`` prints as ``***``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from bigramlm.errors import BigramLMError


@dataclass(frozen=True)
class Secret:
    value: str

    def __repr__(self) -> str:
        return "Secret(***)"

    __str__ = __repr__


def read_secret_file(path: str | os.PathLike[str]) -> dict[str, str]:
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as failure:
        raise BigramLMError(f"cannot read the secrets file {path}: {failure.strerror}", param="secrets") from None
    out = {}
    for number, line in enumerate(lines, start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep or not key.strip():
            raise BigramLMError(f"secrets file {path}: line {number} is not KEY=value", param="secrets")
        out[key.strip()] = value.strip().strip('"').strip("'")
    return out


def secret(name: str, file_values: Mapping[str, str] | None = None, environ: Mapping[str, str] | None = None,
           required: bool = True) -> Secret | None:
    """The secret ``name``: from the environment, else the secrets file; a one-line error naming it when missing."""
    env = os.environ if environ is None else environ
    value = env.get(name) or (file_values or {}).get(name)
    if value:
        return Secret(value)
    if required:
        raise BigramLMError(f"the secret {name} is not set: put it in the environment or in the --secrets file "
                            "(never on the command line)", param="secrets")
    return None


__all__ = ["Secret", "read_secret_file", "secret"]

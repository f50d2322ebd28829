"""Brand profiles: the brand's values for the dataset's ``{{Placeholder}}`` slots.

A profile is TOML::

    [brand]
    name = "Acme"

    [placeholders]
    "Customer Support Phone Number" = "+1 555 0100"
    "Website URL" = "https://acme.example"
    "Order Number" = ""            # left empty: stays visible for the agent to fill

``fill`` substitutes the filled values. A well-formed placeholder with no value stays in
the text as ``{{Name}}`` and is listed as unfilled. Anything the model garbled, such as an
unbalanced ``{{`` or a placeholder name that never occurs in the data, is reported as
mangled; it is left in the text exactly as generated, so the agent sees it and is told.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from bigramlm.data.formats import PLACEHOLDER, count_placeholders  # noqa: F401 (count_placeholders: re-exported)
from bigramlm.errors import BigramLMError

_BRACES = re.compile(r"\{+|\}+")


@dataclass
class FillResult:
    text: str
    unfilled: list[str] = field(default_factory=list)
    mangled: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class BrandProfile:
    values: dict[str, str] = field(default_factory=dict)
    name: str | None = None
    #: Placeholder names known from the training data; a name outside it is mangled.
    known: set[str] | None = None

    @classmethod
    def load(cls, path: str | Path, known: Iterable[str] | None = None) -> "BrandProfile":
        path = Path(path)
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise BigramLMError(f"no such brand profile: {path}") from None
        except IsADirectoryError:
            raise BigramLMError(f"brand profile {path} is a directory") from None
        except UnicodeDecodeError:
            raise BigramLMError(f"brand profile {path} is not UTF-8 text") from None
        except tomllib.TOMLDecodeError as exc:
            raise BigramLMError(f"brand profile {path} is not valid TOML: {exc}") from None
        table = data.get("placeholders", {})
        if not isinstance(table, dict):
            raise BigramLMError(f"brand profile {path}: [placeholders] must be a table of names to text")
        values: dict[str, str] = {}
        for key, value in table.items():
            if not isinstance(value, (str, int, float)):
                raise BigramLMError(f"brand profile {path}: placeholder {key!r} must be text")
            value = str(value)
            if value.strip():
                values[_bare(key)] = value
        brand = data.get("brand", {})
        name = brand.get("name") if isinstance(brand, dict) else None
        return cls(values=values, name=name or None, known=set(known) if known is not None else None)

    def fill(self, text: str) -> FillResult:
        return fill_placeholders(text, self.values, self.known)


def _bare(key: str) -> str:
    """Accept ``Order Number`` and ``{{Order Number}}`` alike as profile keys."""
    key = key.strip()
    if key.startswith("{{") and key.endswith("}}"):
        key = key[2:-2].strip()
    return key


def fill_placeholders(text: str, values: dict[str, str], known: set[str] | None = None) -> FillResult:
    """Substitute ``values`` into ``text``; list unfilled and mangled placeholders."""
    unfilled: list[str] = []
    mangled: list[dict[str, Any]] = []
    pieces: list[str] = []
    last = 0
    for match in PLACEHOLDER.finditer(text):
        between = text[last : match.start()]
        _stray_braces(between, last, mangled)
        pieces.append(between)
        name = match.group(1)
        key = name.strip()
        if known is not None and key not in known and key not in values:
            mangled.append({"text": match.group(0), "position": match.start(), "reason": "unknown placeholder name"})
            pieces.append(match.group(0))
        elif key in values:
            pieces.append(values[key])
        else:
            if key not in unfilled:
                unfilled.append(key)
            pieces.append(match.group(0))
        last = match.end()
    tail = text[last:]
    _stray_braces(tail, last, mangled)
    pieces.append(tail)
    return FillResult("".join(pieces), unfilled, mangled)


def _stray_braces(segment: str, offset: int, mangled: list[dict[str, Any]]) -> None:
    """Braces outside well-formed placeholders: a half-written or broken slot.

    Brace runs close to each other belong to one broken slot and are reported once,
    with a little of the text around them so the agent can find it.
    """
    runs = [(m.start(), m.end()) for m in _BRACES.finditer(segment)]
    clusters: list[list[int]] = []
    for start, end in runs:
        if clusters and start - clusters[-1][1] <= 12:
            clusters[-1][1] = end
        else:
            clusters.append([start, end])
    for start, end in clusters:
        lo, hi = max(0, start - 12), min(len(segment), end + 24)
        mangled.append({"text": segment[lo:hi], "position": offset + start, "reason": "unbalanced braces"})


def _toml_string(value: str) -> str:
    # JSON string escapes are valid TOML basic-string escapes, except that TOML has no
    # surrogate pairs; ensure_ascii=False keeps every non-ASCII character literal.
    return json.dumps(value, ensure_ascii=False)


def brand_template(counts: Counter, source: str) -> str:
    """A profile template listing every placeholder found, most frequent first."""
    lines = [
        "# Brand profile for `bigramlm assist --brand` and `bigramlm serve --brand`.",
        f"# Every placeholder found in the responses of {source}, with how often it occurs.",
        "# Fill in the values you want substituted; an empty value stays visible as {{Name}}",
        "# in suggestions and is listed as unfilled, so the agent fills it by hand.",
        "",
        "[brand]",
        'name = ""',
        "",
        "[placeholders]",
    ]
    for name, count in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
        lines.append(f"# {count} occurrence{'s' if count != 1 else ''}")
        lines.append(f"{_toml_string(name)} = \"\"")
    return "\n".join(lines) + "\n"

"""Brand profiles: the brand's values for the dataset's ``{{Placeholder}}`` slots.

A profile is TOML::

    [brand]
    name = "Acme"
    # What the desk offers when no intent fits the message (out of scope), in place of an answer.
    holding_reply = "Thanks for writing to Acme: a member of our team will get back to you shortly."
    # How long the suggested replies are: "as_is" (the default) or "short" (support.length).
    reply_length = "short"

    [placeholders]
    "Customer Support Phone Number" = "+1 555 0100"
    "Website URL" = "https://acme.example"
    "Order Number" = ""            # left empty: stays visible for the agent to fill

Teams can also write the rules their agents would otherwise apply by hand, as macros
(``support.edits``)::

    [[rules]]
    kind = "append"                  # append, prepend, replace, remove or forbid
    text = "Warm regards, the Acme Care Team."
    intents = ["get_refund"]         # left out: every intent

    [[rules]]
    kind = "replace"
    old = "within 14 days"
    new = "within 30 days"

``fill`` substitutes the filled values. A well-formed placeholder with no value stays in
the text as ``{{Name}}`` and is listed as unfilled. Anything the model garbled, such as an
unbalanced ``{{`` or a placeholder name that never occurs in the data, is reported as
mangled; it is left in the text exactly as generated, so the agent sees it and is told.
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from bigramlm.data.formats import PLACEHOLDER, count_placeholders  # noqa: F401 (count_placeholders: re-exported)
from bigramlm.errors import BigramLMError
from bigramlm.support.edits import APPEND, EVERY_INTENT, FORBID, KINDS, PREPEND, REMOVE, REPLACE, Edit, Rule
from bigramlm.support.length import check_length

_BRACES = re.compile(r"\{+|\}+")


@dataclass
class FillResult:
    text: str
    unfilled: list[str] = field(default_factory=list)
    mangled: list[dict[str, Any]] = field(default_factory=list)
    #: Placeholders filled with what the customer's message said (``support.message_values``).
    from_message: dict[str, str] = field(default_factory=dict)


@dataclass
class BrandProfile:
    values: dict[str, str] = field(default_factory=dict)
    name: str | None = None
    #: Placeholder names known from the training data; a name outside it is mangled.
    known: set[str] | None = None
    #: The team's own edit rules (``[[rules]]``).
    rules: list[Rule] = field(default_factory=list)
    #: The reply offered when no intent fits a message (``[brand] holding_reply``).
    holding_reply: str | None = None
    #: How long suggested replies are unless a request says (``[brand] reply_length``, ``support.length``).
    reply_length: str | None = None

    @classmethod
    def load(cls, path: str | os.PathLike[str], known: Iterable[str] | None = None) -> "BrandProfile":
        from bigramlm.data.sources import check_input_file

        path = Path(path)
        if not path.exists():
            raise BigramLMError(f"no such brand profile: {path}")
        check_input_file(path, "brand profile")  # a regular file of bounded size: never a FIFO or /dev/zero
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except UnicodeDecodeError:
            raise BigramLMError(f"brand profile {path} is not UTF-8 text") from None
        except tomllib.TOMLDecodeError as exc:
            raise BigramLMError(f"brand profile {path} is not valid TOML: {exc}") from None
        except RecursionError:
            raise BigramLMError(f"brand profile {path} nests its tables too deep to be a brand profile") from None
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
        holding = brand.get("holding_reply") if isinstance(brand, dict) else None
        if holding is not None and not isinstance(holding, str):
            raise BigramLMError(f"brand profile {path}: [brand] holding_reply must be text")
        rules = _rules(data.get("rules", []), path)
        return cls(values=values, name=name or None, known=set(known) if known is not None else None, rules=rules,
                   holding_reply=holding.strip() or None if holding else None, reply_length=_reply_length(brand, path))

    def fill(self, text: str, from_message: dict[str, str] | None = None) -> FillResult:
        """The brand's values in ``text``; then, for the placeholders the brand does not
        fill, the values the customer's message stated (``from_message``), recorded as such."""
        result = fill_placeholders(text, self.values, self.known)
        taken = {k: v for k, v in (from_message or {}).items() if k in result.unfilled}
        if not taken:
            return result
        again = fill_placeholders(result.text, taken)
        return FillResult(again.text, [k for k in result.unfilled if k not in taken], result.mangled, taken)


def _reply_length(brand: Any, path: Path) -> str | None:
    length = brand.get("reply_length") if isinstance(brand, dict) else None
    try:
        return check_length(length, param="reply_length")
    except BigramLMError as refused:
        raise BigramLMError(f"brand profile {path}: [brand] {refused}") from None


def _rules(table: Any, path: Path) -> list[Rule]:
    """The ``[[rules]]`` of a profile, each checked: a one-line error names the rule."""
    if not isinstance(table, list):
        raise BigramLMError(f"brand profile {path}: rules must be an array of tables ([[rules]])")
    rules = []
    for number, entry in enumerate(table, start=1):
        where = f"brand profile {path}: rule {number}"
        if not isinstance(entry, dict) or entry.get("kind") not in KINDS:
            raise BigramLMError(f"{where} needs a kind: one of {', '.join(KINDS)}")
        kind = entry["kind"]
        fields: dict[str, Any] = {"old": entry.get("old", entry.get("text", "") if kind in (REMOVE, FORBID) else ""),
                                  "new": entry.get("new", entry.get("text", "") if kind in (APPEND, PREPEND) else "")}
        needed = {APPEND: ["new"], PREPEND: ["new"], REPLACE: ["old", "new"]}.get(kind, ["old"])
        if not all(isinstance(v, str) for v in fields.values()) or not all(fields[k].strip() for k in needed):
            raise BigramLMError(f"{where} ({kind}) needs its text" + (" (old and new)" if kind == REPLACE else ""))
        intents = entry.get("intents", [EVERY_INTENT])
        if not isinstance(intents, list) or not intents or not all(isinstance(i, str) and i for i in intents):
            raise BigramLMError(f"{where}: intents must be a non-empty list of intent names")
        separator = entry.get("separator", "\n\n")  # a sign-off or a greeting: a paragraph of its own
        if not isinstance(separator, str) or separator.strip():
            raise BigramLMError(f"{where}: separator must be whitespace")
        edit = Edit(kind, fields["old"].strip(), fields["new"].strip(), separator,
                    removed=fields["old"].strip() if kind == REMOVE else "")
        rules += [Rule(edit, scope, 0, origin="brand profile") for scope in intents]
    return rules


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
    # surrogate pairs; ensure_ascii=False keeps every non-ASCII character literal. JSON
    # leaves DEL and the C1 controls raw, which TOML refuses: those are escaped too.
    return re.sub(r"[\x7f-\x9f]", lambda m: f"\\u{ord(m.group(0)):04X}", json.dumps(value, ensure_ascii=False))


#: The slots ``brand init`` says to fill first: on the Bitext sample the top 20 of 143 cover
#: most of the occurrences (``coverage`` prints how many).
TOP_SLOTS = 20


def by_frequency(counts: Counter) -> list[tuple[str, int]]:
    """The placeholders most frequent first (ties by name, so the template is stable)."""
    return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))


def coverage(counts: Counter, top: int = TOP_SLOTS) -> str:
    """How many of the placeholder occurrences the ``top`` most frequent cover, in one line."""
    total = sum(counts.values())
    covered = sum(count for _, count in by_frequency(counts)[:top])
    share = f" ({100 * covered / total:.1f}%)" if total else ""
    return f"top {min(top, len(counts))} of {len(counts)} slots cover {covered:,} of {total:,} occurrences{share}"


def brand_template(counts: Counter, source: str) -> str:
    """A profile template listing every placeholder found, most frequent first, numbered,
    with how much of the data the first ``TOP_SLOTS`` cover: those are worth filling first."""
    lines = [
        "# Brand profile for `bigramlm assist --brand` and `bigramlm serve --brand`.",
        f"# Every placeholder found in the responses of {source}, most frequent first.",
        f"# {coverage(counts)}: fill those first.",
        "# Fill in the values you want substituted; an empty value stays visible as {{Name}}",
        "# in suggestions and is listed as unfilled, so the agent fills it by hand.",
        "",
        "[brand]",
        'name = ""',
        '# What the desk offers when no intent fits a message, in place of an answer.',
        'holding_reply = ""',
        '# "as_is", or "short": each reply\'s leading sentences and its closing line.',
        'reply_length = "as_is"',
        "",
        "[placeholders]",
    ]
    for rank, (name, count) in enumerate(by_frequency(counts), start=1):
        lines.append(f"# {rank}. {count} occurrence{'s' if count != 1 else ''}")
        lines.append(f"{_toml_string(name)} = \"\"")
    return "\n".join(lines) + "\n"

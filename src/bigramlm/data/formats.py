"""How a row becomes training text, and where generation stops.

Each usable row becomes exactly the notebook's block::

    ### Instruction:\\n{instruction}\\n\\n### Response:\\n{response}\\n\\n

A run that predicts intent trains on the *labelled* block, which adds the intent and
the category as labelled lines between the instruction and the response::

    ### Instruction:\\n{instruction}\\n\\n### Intent: {intent}\\n### Category: {category}\\n\\n### Response:\\n{response}\\n\\n

(``### Category`` is left out when the data has no category column). The format's
name and both templates are written into the run's ``config.json`` (its ``format`` under ``data``).

Responses carry ``{{Placeholder}}`` slots (``{{Order Number}}``); ``count_placeholders``
finds them, for the brand template and the assistant's list of known names.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any, Iterable

from bigramlm.data.cases import Case

FORMAT_NAME = "bitext-instruction-v1"
BLOCK_TEMPLATE = "### Instruction:\n{instruction}\n\n### Response:\n{response}\n\n"
LABELLED_TEMPLATE = (
    "### Instruction:\n{instruction}\n\n### Intent: {intent}\n### Category: {category}\n\n### Response:\n{response}\n\n"
)
INSTRUCTION_HEADER = "### Instruction:\n"
RESPONSE_HEADER = "### Response:\n"
#: Where generation stops: the start of the next block (or any next header).
STOP_STRINGS = ("\n\n### ", "### Instruction")
#: A well-formed placeholder: two braces, a name without braces or newlines, two braces.
PLACEHOLDER = re.compile(r"\{\{([^{}\n]{1,80})\}\}")
#: A header marker at the start of a generated reply: a run of ``#`` ending in blanks, a
#: line end or the text's end, or a whole header line (``### Intent: cancel_order``).
#: ``#123`` is no marker: an order number may open a reply.
_LEADING_MARKER = re.compile(r"\A#+(?:[ \t]*(?:Instruction|Response|Intent|Category)\b[^\n]*|[ \t]+|(?=\n)|\Z)")


def label_lines(intent: str | None, category: str | None = None) -> str:
    """The labelled lines of a block (empty when there is no intent)."""
    if not intent:
        return ""
    text = f"### Intent: {intent}\n"
    if category:
        text += f"### Category: {category}\n"
    return text + "\n"


def prompt_text(instruction: str, intent: str | None = None, category: str | None = None, labels: bool = False) -> str:
    """Everything of a block before the response: what generation continues from."""
    head = f"{INSTRUCTION_HEADER}{instruction}\n\n"
    if labels:
        head += label_lines(intent, category)
    return head + RESPONSE_HEADER


def format_block(instruction: str, response: str, intent: str | None = None, category: str | None = None,
                 labels: bool = False) -> str:
    """One row as text; with ``labels=False`` exactly the notebook's block."""
    if not labels:
        return f"### Instruction:\n{instruction}\n\n### Response:\n{response}\n\n"
    return prompt_text(instruction, intent, category, labels) + f"{response}\n\n"


def format_rows(rows: Iterable[Case], labels: bool = False) -> str:
    return "".join(format_block(r.message, r.reply, r.intent, r.category, labels) for r in rows)


def format_spec(labels: bool) -> dict[str, Any]:
    return {
        "name": FORMAT_NAME,
        "labels": labels,
        "template": LABELLED_TEMPLATE if labels else BLOCK_TEMPLATE,
        "notebook_template": BLOCK_TEMPLATE,
        "label_lines": "### Intent: {intent}\n### Category: {category}\n\n",
        "stop": list(STOP_STRINGS),
        "strip": "both fields str.strip(); rows with an empty instruction or response are skipped",
    }


def count_placeholders(texts: Iterable[str]) -> Counter:
    """How often each ``{{Name}}`` occurs in ``texts`` (names stripped)."""
    counts: Counter = Counter()
    for text in texts:
        counts.update(m.group(1).strip() for m in PLACEHOLDER.finditer(text))
    return counts


def strip_leading_markers(reply: str) -> str:
    """A generated reply without the header markers it starts with, stripped.

    A bigram does not always stop cleanly: after ``### Response:\\n`` it may write a
    header again, or a stray ``### `` before the reply proper (``### e st...``).
    """
    text = reply.strip()
    while True:
        rest = _LEADING_MARKER.sub("", text, count=1).strip()
        if rest == text:
            return text
        text = rest

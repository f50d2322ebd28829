"""How a row becomes training text, and where generation stops.

Each usable row becomes exactly the notebook's block::

    ### Instruction:\\n{instruction}\\n\\n### Response:\\n{response}\\n\\n

A run that predicts intent trains on the *labelled* block, which adds the intent and
the category as labelled lines between the instruction and the response::

    ### Instruction:\\n{instruction}\\n\\n### Intent: {intent}\\n### Category: {category}\\n\\n### Response:\\n{response}\\n\\n

(``### Category`` is left out when the data has no category column). The format's
name and both templates are written into the run's ``config.json`` (``data.format``).
"""

from __future__ import annotations

from typing import Any, Iterable

from bigramlm.data.table import Row

FORMAT_NAME = "bitext-instruction-v1"
BLOCK_TEMPLATE = "### Instruction:\n{instruction}\n\n### Response:\n{response}\n\n"
LABELLED_TEMPLATE = (
    "### Instruction:\n{instruction}\n\n### Intent: {intent}\n### Category: {category}\n\n### Response:\n{response}\n\n"
)
INSTRUCTION_HEADER = "### Instruction:\n"
RESPONSE_HEADER = "### Response:\n"
#: Where generation stops: the start of the next block (or any next header).
STOP_STRINGS = ("\n\n### ", "### Instruction")


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


def format_block(instruction: str, response: str, intent: str | None = None, category: str | None = None, labels: bool = False) -> str:
    """One row as text; with ``labels=False`` exactly the notebook's block."""
    if not labels:
        return f"### Instruction:\n{instruction}\n\n### Response:\n{response}\n\n"
    return prompt_text(instruction, intent, category, labels=True) + f"{response}\n\n"


def format_rows(rows: Iterable[Row], labels: bool = False) -> str:
    return "".join(format_block(r.instruction, r.response, r.intent, r.category, labels) for r in rows)


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

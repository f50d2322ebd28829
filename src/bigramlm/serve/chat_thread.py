"""An OpenAI chat request read as a support conversation and a task.

Two shapes come in. A plain chat: ``user`` messages are the customer's turns, ``assistant``
messages the agent's. A helpdesk's own prompt: Chatwoot's reply-suggestion task sends the
thread inside one message as "Message History:" with ``User:``, ``Support Agent:`` and
``Bot:`` lines, and its label task a transcript with ``Customer:`` / ``Agent:`` lines and
the account's labels. The system message says which task it is (``chat_task``): a reply
(answered with the top suggestion), labels (answered with the intent), or something this
assistant does not do (summaries, rewriting, translation), refused with OpenAI's 400
naming the task rather than answered with a reply nobody asked for.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Sequence

from bigramlm.data.conversation import AGENT, CUSTOMER, Conversation, Turn, conversation, parse_transcript
from bigramlm.serve.schemas import message_text

REPLY, LABEL = "reply_suggestion", "label_suggestion"
#: Tasks a helpdesk's AI buttons ask for that this assistant does not do, by the words their
#: system prompts use (Chatwoot: summarize, rephrase, fix spelling and grammar, shorten,
#: expand, make friendly / formal, simplify; Zammad: summary, translation).
REFUSED = {"summarize": r"summar", "rewrite": r"rephrase|rewrite|spelling|grammar|shorten|expand|friendl|formal|simplif|tone",
           "translate": r"translat"}
_LABEL = re.compile(r"\blabels?\b", re.IGNORECASE)
_HISTORY = re.compile(r"^(?:message history|messages|conversation|transcript)\s*:?\s*$", re.IGNORECASE | re.MULTILINE)
_LABEL_LIST = re.compile(r"^labels?\s*:\s*(.*)$", re.IGNORECASE | re.MULTILINE)


@dataclass(frozen=True)
class ChatTask:
    """What a chat request asks: its task, its conversation, and the labels offered (label task)."""

    task: str
    conversation: Conversation
    labels: list[str] = field(default_factory=list)
    #: Messages that are neither the task nor a turn (tool messages).
    ignored: int = 0


def chat_task(messages: Sequence[Any]) -> ChatTask:
    """Read ``messages`` (the request's, with ``role`` and ``content``) as a task and a conversation."""
    system = "\n".join(message_text(m.content) for m in messages if m.role in ("system", "developer"))
    turns: list[Turn] = []
    labels: list[str] = []
    ignored = 0
    for m in messages:
        text = message_text(m.content)
        if m.role == "user" and (_HISTORY.search(text) or len(parse_transcript(text)) > 1):
            turns += parse_transcript(_HISTORY.split(text, 1)[-1])
            labels += _labels(text)
        elif m.role in ("user", "assistant"):
            turns.append(Turn(CUSTOMER if m.role == "user" else AGENT, text.strip()))
        elif m.role not in ("system", "developer"):
            ignored += 1
    labels += _labels(system)
    return ChatTask(task_of(system, bool(labels)), conversation("chat", "openai", [t for t in turns if t.text]), labels, ignored)


def task_of(system: str, has_labels: bool) -> str:
    """The task a system prompt asks for. Summaries and translations first (their prompts
    may speak of replies too), then a prompt that asks to suggest a reply (it may ask for a
    friendly tone), then rewriting; a prompt that says none of these asks for a reply."""
    if has_labels or _LABEL.search(system):
        return LABEL
    for task in ("summarize", "translate"):
        if re.search(REFUSED[task], system, re.IGNORECASE):
            return task
    if re.search(r"\bsuggest", system, re.IGNORECASE) or re.search(REFUSED["rewrite"], system, re.IGNORECASE) is None:
        return REPLY
    return "rewrite"


def _labels(text: str) -> list[str]:
    found = _LABEL_LIST.search(text)
    return [x.strip() for x in re.split(r"[,\n]", found.group(1)) if x.strip()] if found else []


def label_answer(intent: str | None, labels: Sequence[str]) -> str:
    """The label task's answer: the offered label that names the intent (``cancel_order``,
    ``cancel-order``, ``Cancel Order`` alike), else the intent itself; empty where none fits."""
    if intent is None:
        return ""
    key = re.sub(r"[^a-z0-9]", "", intent.lower())
    for label in labels:
        if re.sub(r"[^a-z0-9]", "", label.lower()) == key:
            return label
    return intent


__all__ = ["ChatTask", "LABEL", "REPLY", "chat_task", "label_answer"]

"""What a customer's message plainly says, for the placeholders of a reply.

"I want to cancel order 5521" should get a reply that says 5521, not ``{{Order Number}}``.
Only values the message states next to the word that names them are taken (an order,
invoice or tracking number after "order", "invoice", "tracking", an amount written with
its currency, an email address), and only when the message states one of them: two order
numbers leave the placeholder for the agent. The desk marks what was filled this way.
"""

from __future__ import annotations

import re

#: An identifier: letters, digits and dashes, with at least one digit (so "order status" is no number).
_ID = r"(?=[A-Za-z0-9-]*\d)([A-Za-z0-9][A-Za-z0-9-]{2,29})"
_NUMBER_WORDS = r"\s*(?:number|no\.?|num|id|code|#)?\s*[:#]?\s*"

#: Placeholder name -> the pattern whose first group is its value.
PATTERNS: dict[str, re.Pattern[str]] = {
    "Order Number": re.compile(r"\border" + _NUMBER_WORDS + _ID + r"\b", re.IGNORECASE),
    "Invoice Number": re.compile(r"\binvoice" + _NUMBER_WORDS + _ID + r"\b", re.IGNORECASE),
    "Tracking Number": re.compile(r"\btracking" + _NUMBER_WORDS + _ID + r"\b", re.IGNORECASE),
    "Refund Amount": re.compile(r"((?:[$€£]\s?\d+(?:[.,]\d{1,2})?)|(?:\d+(?:[.,]\d{1,2})?\s?(?:USD|EUR|GBP|dollars|euros|pounds)\b))",
                                re.IGNORECASE),
    "Email Address": re.compile(r"\b([A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,})\b"),
}
#: A value is taken only from a message that speaks of it: an amount is a refund's where the message asks for one.
CONTEXT: dict[str, re.Pattern[str]] = {"Refund Amount": re.compile(r"\brefund", re.IGNORECASE)}
#: Placeholders that name the same value.
ALIASES = {"Email Address": ("Email", "Customer Email"), "Refund Amount": ("Amount",)}


def message_values(message: str) -> dict[str, str]:
    """Placeholder name -> the value the message states for it, where it states exactly one."""
    values: dict[str, str] = {}
    for name, pattern in PATTERNS.items():
        if name in CONTEXT and not CONTEXT[name].search(message):
            continue
        found = {m.group(1).strip() for m in pattern.finditer(message)}
        if len(found) == 1:
            value = found.pop()
            for key in (name, *ALIASES.get(name, ())):
                values[key] = value
    return values


__all__ = ["PATTERNS", "message_values"]

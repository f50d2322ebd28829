"""Where a text sends a customer: the links, email addresses and phone numbers it holds.

A team edit rule that adds one the run's replies never hold waits for an agent to enable it
(``edits``): a line like "confirm your card at evil.example/pay" is the one edit a single
client should never get into every reply by itself.

The patterns are broad on purpose: a false find costs an agent one click (enable), a
missed one puts a stranger's link in front of customers. So a bare domain counts as a link
(``evil.example/pay``, ``www.x.example``), full stops that browsers read as a domain's dots
count as dots (before a Latin top-level domain), and any 7 digits or more, spaced or not, count as a phone number. (The
strict email pattern of ``message_values`` is for filling a placeholder, where a false
find would put a wrong value in a reply.) Every pattern starts only where a word starts
and consumes without backtracking, so a long text costs linear time.
"""

from __future__ import annotations

import re
import unicodedata

_TEXT = r"[^\s<>\"']"
_PATTERN = re.compile(
    r"(?P<email>(?<![\w.+-])[\w.+-]++@[\w-]++(?:\.[\w-]++)+)"
    rf"|(?P<url>(?<![\w+.-])[a-z][a-z0-9+.-]*+:/{{1,3}}{_TEXT}++)"
    # A domain, begun only where a dotted run of words begins: its dots are full stops (a
    # fullwidth one is one after NFKC); the ideographic one, which browsers also take for a
    # dot, only before a Latin top-level domain, so that a Chinese or Japanese sentence is
    # not a domain. A dot counts only before another label, so "evil.example." is found.
    rf"|(?P<domain>(?<![\w-])(?<![\w-][.\u3002])(?:[\w-]++[.\u3002](?=[\w-]))++"
    rf"(?:(?<=\.)[^\W\d_]{{2,}}+|[a-z]{{2,}}+|xn--[a-z0-9-]++)(?![\w-])(?:[/?#]{_TEXT}*+)?)"
    r"|(?P<phone>(?<![\w+])\+?\(?\d(?:[ \t().-]{0,2}+\d)++)",
    re.IGNORECASE,
)
#: Fewer digits are an order number, a year or an amount, not a phone number.
PHONE_DIGITS = 7
_TRAILING = ".,;:!?)]}'\"\u3002"


def contacts(text: str) -> set[str]:
    """The links, email addresses and phone numbers in ``text``, each in one spelling
    (lower case, without trailing punctuation; a phone number as ``tel:`` and its digits)."""
    found = set()
    for match in _PATTERN.finditer(unicodedata.normalize("NFKC", text)):
        value = match.group(0).rstrip(_TRAILING).lower()
        if match.lastgroup == "phone":
            digits = re.sub(r"\D", "", value)
            if len(digits) < PHONE_DIGITS:
                continue
            value = "tel:" + digits
        found.add(value)
    return found


__all__ = ["PHONE_DIGITS", "contacts"]

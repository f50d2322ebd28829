"""Team edits: when agents keep making the same edit before they send a suggestion, the
assistant makes it itself, at once, with no ``learn``.

An **edit** is what turned a suggestion into the reply an agent sent, word by word
(``difflib``): a sentence appended or prepended, a phrase replaced, a phrase removed.
The store keeps every shown suggestion and every accepted reply, so the edits of the
recent accepts of an intent are always at hand (``edits_between``).

A **rule** is an edit that agents made, that at least ``MIN_EDITS`` accepted replies of an
intent carry, and most of its recent accepts (``team_rules``): it applies to that intent's
new suggestions, and to no other intent's. A reply *carries* an edit when it has the
edit's result (the sign-off at its end, the new phrase and not the old one), so an accept
of a rule's own output, or of a resolved reply that already had the new wording, counts
for the rule, and an agent who undoes it counts against it.

What one client can make is bounded, since a rule reaches what customers read:

- Rules are learned only from the intents the run knows (``KnownToRun``): an accept may
  name any intent, and three made-up ones once made a rule for every intent.
- An edit made for ``MIN_INTENTS`` intents or more applies to every intent only when at
  least ``MIN_AGENTS`` named agents made it themselves (the suggestion they saw did not
  carry it yet: accepting a rule's output is no second opinion). On a desk without named
  agents every accept is anonymous, one person or anyone holding the shared token, so no
  rule there ever applies beyond the intents it was made for: a single user still gets a
  rule for each intent of their own accepts.
- A rule that adds a link, an email address or a phone number that none of the run's
  replies hold (``contacts``) is made disabled, with the reason (``Rule.review``), and
  waits for an agent to enable it.
- A learned rule no agent has switched yet is listed as ``unreviewed``, and marked new on the desk.

Teams can write rules themselves, as they keep macros (``[[rules]]`` in the brand
profile): ``append``, ``prepend``, ``replace`` (``old`` by ``new``) and ``forbid`` (a
suggestion holding ``text`` is not shown). Agents can disable any rule and enable it
again (``bigramlm rules``, the desk); the store keeps those choices.
"""

from __future__ import annotations

import difflib
import hashlib
import re
from collections import defaultdict
from dataclasses import dataclass, replace
from typing import Iterable, Mapping, Protocol, Sequence

from bigramlm.support.contacts import contacts

APPEND, PREPEND, REPLACE, REMOVE, FORBID = "append", "prepend", "replace", "remove", "forbid"
KINDS = (APPEND, PREPEND, REPLACE, REMOVE, FORBID)
#: The least number of an intent's accepted replies that must carry the same edit.
MIN_EDITS = 3
#: How many of an intent's latest accepts count as "recent": most of them must carry the edit.
RECENT = 10
#: How many of an intent's latest accepts are looked at for the edits agents made.
HISTORY = 50
#: A rule made for this many intents applies to every intent (with ``MIN_AGENTS``).
MIN_INTENTS = 3
#: ... when this many named agents made its edit themselves: more than one person.
MIN_AGENTS = 2
#: A replaced or removed span shorter than this many words keeps a word of context on each
#: side, so that "14" -> "30" becomes "within 14 days" -> "within 30 days", not every "14".
SHORT_SPAN = 3
#: The scope of a rule for every intent.
EVERY_INTENT = "*"

#: Words and punctuation apart, each with the whitespace after it: "conditions." and
#: "conditions," then differ in their punctuation only, not in their word.
_TOKEN = re.compile(r"\w+(?:'\w+)*\s*|[^\w\s]+\s*|\s+")


@dataclass(frozen=True)
class Edit:
    """One change from a suggestion to the reply sent. ``old`` is replaced by ``new``
    (both empty where they do not apply); ``separator`` is the whitespace an appended or
    prepended text was joined with."""

    kind: str
    old: str = ""
    new: str = ""
    separator: str = " "
    #: For a removal, the words removed (``old`` holds them with their context).
    removed: str = ""

    def describe(self) -> str:
        if self.kind == APPEND:
            return f"adds {self.new!r}"
        if self.kind == PREPEND:
            return f"starts with {self.new!r}"
        if self.kind == REPLACE:
            return f"replaces {self.old!r} with {self.new!r}"
        if self.kind == REMOVE:
            return f"removes {(self.removed or self.old)!r}"
        return f"never suggests {self.old!r}"


@dataclass(frozen=True)
class Rule:
    """An edit the assistant makes itself, for one intent (or ``EVERY_INTENT``)."""

    edit: Edit
    scope: str
    #: How many recent accepts made it (0 for a rule the team wrote).
    support: int
    origin: str = "team edits"  # or "brand profile"
    enabled: bool = True
    #: The named agents who made the edit themselves (a rule for every intent needs ``MIN_AGENTS``).
    agents: frozenset[str] = frozenset()
    #: Why the rule waits for an agent to enable it (a link the run's replies never hold), or None.
    review: str | None = None
    #: Learned, and no agent has switched it yet (the desk marks it new).
    unreviewed: bool = False

    @property
    def id(self) -> str:
        e = self.edit
        key = "\x1f".join([self.origin, self.scope, e.kind, e.old, e.new])
        return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:12]

    def applies_to(self, intent: str | None) -> bool:
        return self.enabled and (self.scope == EVERY_INTENT or self.scope == intent)

    def describe(self) -> str:
        where = "every intent" if self.scope == EVERY_INTENT else self.scope
        source = f"in {self.support} accepted replies" if self.support else f"from the {self.origin}"
        return f"team edit: {self.edit.describe()}, {source} ({where})"

    def to_dict(self) -> dict[str, object]:
        e = self.edit
        return {"id": self.id, "kind": e.kind, "old": e.old, "new": e.new, "scope": self.scope, "support": self.support,
                "origin": self.origin, "enabled": self.enabled, "description": self.describe(),
                "agents": sorted(self.agents), "review": self.review, "unreviewed": self.unreviewed}


@dataclass(frozen=True)
class KnownToRun:
    """What learned rules are checked against: the intents the run knows, and the links,
    email addresses and phone numbers its replies hold."""

    intents: frozenset[str] = frozenset()
    contacts: frozenset[str] = frozenset()

    @classmethod
    def of(cls, intents: Iterable[str], replies: Iterable[str]) -> "KnownToRun":
        return cls(frozenset(intents), frozenset(c for reply in replies for c in contacts(reply)))

    def review(self, edit: Edit) -> str | None:
        """Why a rule making ``edit`` must wait for an agent, or None."""
        added = contacts(edit.new) - contacts(edit.old) - self.contacts
        if not added:
            return None
        return (f"adds {', '.join(sorted(added))}, which no reply of the run holds: "
                "it waits for an agent to enable it")


class AcceptedReply(Protocol):
    """An accepted suggestion (``support.store.AcceptedReply``, or a test's own)."""

    @property
    def intent(self) -> str: ...
    @property
    def agent(self) -> str | None: ...
    #: The suggestion before any team edit rule was made on it.
    @property
    def shown(self) -> str: ...
    #: The suggestion as the agent saw it.
    @property
    def displayed(self) -> str: ...
    @property
    def sent(self) -> str: ...


@dataclass(frozen=True)
class Accept:
    """An accepted reply and the edits that turned its suggestion into it (worked out once)."""

    reply: AcceptedReply
    edits: tuple[Edit, ...]

    @classmethod
    def of(cls, reply: AcceptedReply) -> "Accept":
        return cls(reply, tuple(edits_between(reply.shown, reply.sent)))


def _tokens(text: str) -> list[str]:
    return _TOKEN.findall(text)


def _trailing_space(text: str) -> str:
    match = re.search(r"\s*$", text)
    assert match is not None  # the pattern matches every string
    return match.group(0)


def edits_between(shown: str, sent: str) -> list[Edit]:
    """The edits that turn ``shown`` into ``sent``, word by word (whitespace is not an edit)."""
    a, b = _tokens(shown), _tokens(sent)
    matcher = difflib.SequenceMatcher(None, [t.strip() for t in a], [t.strip() for t in b], autojunk=False)
    out = []
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op == "equal":
            continue
        old, new = "".join(a[i1:i2]).strip(), "".join(b[j1:j2]).strip()
        if op == "insert" and i1 == len(a):
            gap = _trailing_space("".join(b[:j1])) if j1 else ""
            out.append(Edit(APPEND, "", new, gap or " "))
        elif op == "insert" and i1 == 0:
            gap = _trailing_space("".join(b[j1:j2]))
            out.append(Edit(PREPEND, "", new, gap or " "))
        elif old or new:
            lo, hi = (i1 - 1, i2 + 1) if i2 - i1 < SHORT_SPAN else (i1, i2)
            lo, hi = max(lo, 0), min(hi, len(a))
            context_old = "".join(a[lo:hi]).strip()
            context_new = ("".join(a[lo:i1]) + "".join(b[j1:j2]) + "".join(a[i2:hi])).strip()
            out.append(Edit(REPLACE, context_old, context_new) if new else Edit(REMOVE, context_old, context_new, removed=old))
    return [e for e in out if (e.new or e.old) and _meaningful(e)]


def _meaningful(edit: Edit) -> bool:
    """An edit of words, not of punctuation or spacing alone."""
    return re.findall(r"\w+", edit.old) != re.findall(r"\w+", edit.new)


def carries(edit: Edit, shown: str, sent: str) -> bool | None:
    """Whether ``sent`` has the edit's result; None when the edit does not concern it (a
    phrase to replace or remove that the suggestion did not hold)."""
    if edit.kind == APPEND:
        return sent.rstrip().endswith(edit.new)
    if edit.kind == PREPEND:
        return sent.lstrip().startswith(edit.new)
    if edit.old not in shown and edit.new not in sent:
        return None
    return edit.old not in sent and (edit.kind == REMOVE or edit.new in sent)


def team_rules(replies: Sequence[AcceptedReply], known: KnownToRun, min_edits: int = MIN_EDITS,
               recent: int = RECENT) -> list[Rule]:
    """Rules from accepted replies, oldest first (those of intents the run does not know left out)."""
    by_intent: dict[str, list[Accept]] = defaultdict(list)
    for reply in replies:
        if reply.intent in known.intents:
            by_intent[reply.intent].append(Accept.of(reply))
    return every_intent({intent: intent_rules(intent, history, known, min_edits, recent)
                         for intent, history in by_intent.items()})


def intent_rules(intent: str, history: Sequence[Accept], known: KnownToRun, min_edits: int = MIN_EDITS,
                 recent: int = RECENT) -> list[Rule]:
    """The rules of one intent, from its accepts, oldest first."""
    rules = []
    for edit in dict.fromkeys(e for accept in history for e in accept.edits):
        carried = [carries(edit, a.reply.shown, a.reply.sent) for a in history]
        lately = [v for v in carried[-recent:] if v is not None]
        count = sum(bool(v) for v in carried)
        if count >= min_edits and 2 * sum(lately) > len(lately):
            # Who made the edit: an agent whose suggestion carried it already only accepted it.
            agents = frozenset(a.reply.agent for a, v in zip(history, carried)
                               if v and a.reply.agent and not carries(edit, a.reply.shown, a.reply.displayed))
            rules.append(Rule(edit, intent, count, agents=agents, review=known.review(edit)))
    return rules


def every_intent(by_intent: Mapping[str, Sequence[Rule]]) -> list[Rule]:
    """The intents' rules, an edit of ``MIN_INTENTS`` intents or more that ``MIN_AGENTS``
    named agents made becoming one rule for every intent."""
    by_edit: dict[Edit, list[Rule]] = defaultdict(list)
    for rules in by_intent.values():
        for rule in rules:
            by_edit[rule.edit].append(rule)
    out: list[Rule] = []
    for edit, rules in by_edit.items():
        agents = frozenset(a for r in rules for a in r.agents)
        if len(rules) >= MIN_INTENTS and len(agents) >= MIN_AGENTS:
            out.append(replace(rules[0], scope=EVERY_INTENT, support=sum(r.support for r in rules), agents=agents))
        else:
            out.extend(rules)
    return sorted(out, key=lambda r: (-r.support, r.scope, r.edit.kind, r.edit.new, r.edit.old))


def apply(text: str, rules: Iterable[Rule], intent: str | None) -> tuple[str, list[Rule], bool]:
    """``text`` with every rule for ``intent`` that applies made; the rules made; and False
    when a ``forbid`` rule keeps the text from being shown at all."""
    made: list[Rule] = []
    for rule in rules:
        if not rule.applies_to(intent):
            continue
        e, before = rule.edit, text
        if e.kind == FORBID and e.old.lower() in text.lower():
            return text, made + [rule], False
        if e.kind == APPEND and not text.rstrip().endswith(e.new):
            text = text.rstrip() + e.separator + e.new
        elif e.kind == PREPEND and not text.lstrip().startswith(e.new):
            text = e.new + e.separator + text.lstrip()
        elif e.kind in (REPLACE, REMOVE) and e.old and e.old in text:
            text = re.sub(r"[ \t]{2,}", " ", text.replace(e.old, e.new))
        if text != before:
            made.append(rule)
    return text, made, True

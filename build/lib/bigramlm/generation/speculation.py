"""Draft tokens for speculative decoding, looked up in text the continuation is likely to repeat.

A support reply repeats much of what the assistant already holds: the replies of the
similar resolved cases, the customer's message, and its own earlier words. ``Drafter``
finds the longest recent n-gram of a row (``max_match`` tokens down to ``min_match``) in
those texts and proposes the tokens that followed it there (prompt-lookup decoding,
extended to a store of past outputs as REST does). The engine (``generation.engine``)
verifies a whole draft in one forward pass and keeps the tokens the model itself would
have chosen, so a draft changes how fast a row decodes, never what it says.

The draft is a point mass, so the accept/reject rule of speculative sampling (accept a
draft token ``d`` with probability ``min(1, p(d) / q(d)) = p(d)``, else draw from ``p``
without ``d``) is the same as drawing from ``p`` and keeping the draft while the draw
equals it: every token still follows the model's (filtered) distribution.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

from bigramlm.errors import BigramLMError


@dataclass(frozen=True)
class Speculation:
    """How drafts are made: at most ``draft_tokens`` per pass, from a match of
    ``max_match`` down to ``min_match`` tokens."""

    #: At most 4 tokens, from a match of 2 or more: in one comparison on the recipe's GPT
    #: (10 desk messages x 2 seeds at n = 3) this was the fastest; drafts of 6, 8 or 12, or
    #: from single-token matches, kept fewer of their tokens and ran slower.
    #: ``benchmarks/speculation.py`` measures the default against the plain decoder.
    draft_tokens: int = 4
    max_match: int = 4
    min_match: int = 2

    def __post_init__(self) -> None:
        for name in ("draft_tokens", "max_match", "min_match"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise BigramLMError(f"{name} must be an integer of at least 1 (got {value!r})", param=name)
        if self.min_match > self.max_match:
            raise BigramLMError(f"min_match {self.min_match} must not exceed max_match {self.max_match}",
                                param=("min_match", "max_match"))


@dataclass
class DecodeStats:
    """What a decode did, filled in as it runs: forward passes after the prompts', tokens
    produced, draft tokens proposed and accepted, and the same for the greedy rows alone."""

    passes: int = 0
    tokens: int = 0
    drafted: int = 0
    accepted: int = 0
    #: Per greedy row: tokens produced and the passes it took part in.
    greedy_tokens: int = 0
    greedy_passes: int = 0
    #: Passes that verified a draft (the others decoded one token per row).
    draft_passes: int = 0
    #: Requests whose rows shared these passes (``generation.batcher``); the counts are theirs together.
    requests: int = 1

    @property
    def acceptance(self) -> float | None:
        """Share of the proposed draft tokens the model kept."""
        return self.accepted / self.drafted if self.drafted else None

    @property
    def greedy_tokens_per_pass(self) -> float | None:
        return self.greedy_tokens / self.greedy_passes if self.greedy_passes else None

    def as_dict(self) -> dict[str, float | int | None]:
        return {"passes": self.passes, "draft_passes": self.draft_passes, "tokens": self.tokens, "requests": self.requests,
                "drafted": self.drafted, "accepted": self.accepted,
                "acceptance": None if self.acceptance is None else round(self.acceptance, 4),
                "greedy_tokens_per_pass": None if self.greedy_tokens_per_pass is None else round(self.greedy_tokens_per_pass, 3)}


@dataclass
class _Index:
    """Where each n-gram of some texts ends: n-gram -> (text, position after it), first seen kept."""

    grams: dict[tuple[int, ...], tuple[int, int]] = field(default_factory=dict)

    def add(self, text_id: int, tokens: Sequence[int], sizes: range, upto: int, start: int = 0) -> None:
        """Index the n-grams that end at positions ``start..upto - 1`` (each followed by a token)."""
        for end in range(max(start, 1), upto):
            for n in sizes:
                if end >= n:
                    self.grams.setdefault(tuple(tokens[end - n : end]), (text_id, end))


class _RowDrafts:
    """One row's texts: its own tokens (prompt and output, growing) and its sources."""

    def __init__(self, settings: Speculation, own: list[int], sources: Sequence[Sequence[int]], shared: _Index):
        self.settings, self.own, self.sources, self.shared = settings, own, sources, shared
        self.own_index = _Index()
        self.indexed = 0
        #: How many tokens the next draft may have (``Drafter.feedback``).
        self.length = settings.draft_tokens
        self.sizes = range(settings.min_match, settings.max_match + 1)

    def catch_up(self) -> None:
        """Index the row's own n-grams that have a token after them."""
        self.own_index.add(0, self.own, self.sizes, len(self.own), start=self.indexed)
        self.indexed = len(self.own)

    def propose(self, limit: int, siblings: Sequence["_RowDrafts"]) -> list[int]:
        """Up to ``limit`` tokens that followed the row's longest recent n-gram elsewhere."""
        own = self.own
        self.catch_up()
        for n in range(min(self.settings.max_match, len(own)), self.settings.min_match - 1, -1):
            key = tuple(own[-n:])
            # The resolved replies first (what a reply is likely to say), then the row itself,
            # then the other candidates of the same message (the greedy one runs ahead).
            hit = self.shared.grams.get(key)
            if hit is not None:
                return list(self.sources[hit[0] - 1][hit[1] : hit[1] + limit])
            for drafts in (self, *siblings):
                found = drafts.own_index.grams.get(key)
                if found is not None:  # indexed only where a token follows
                    return drafts.own[found[1] : found[1] + limit]
        return []


class Drafter:
    """Drafts for every row of a batch; rows that share one list of sources share its index."""

    def __init__(self, settings: Speculation, contexts: Sequence[Sequence[int]],
                 sources: Sequence[Sequence[Sequence[int]]]):
        self.settings = settings
        self.sizes = range(settings.min_match, settings.max_match + 1)
        #: id(sources) -> (the sources, kept alive so the id is not reused; their index; their rows).
        self.groups: dict[int, tuple[Sequence[Sequence[int]], _Index, list[_RowDrafts]]] = {}
        self.rows: list[_RowDrafts] = []
        #: Rows that share their sources (one message's candidates) also draft from each other.
        self.siblings: list[list[_RowDrafts]] = []
        self.add(contexts, sources)

    def add(self, contexts: Sequence[Sequence[int]], sources: Sequence[Sequence[Sequence[int]]]) -> None:
        """Rows that join the batch, after the others."""
        for context, row_sources in zip(contexts, sources):
            group = self.groups.get(id(row_sources))
            if group is None:
                shared = _Index()
                for text_id, text in enumerate(row_sources, start=1):
                    shared.add(text_id, list(text), self.sizes, len(text))
                group = self.groups[id(row_sources)] = (row_sources, shared, [])
            row = _RowDrafts(self.settings, list(context), row_sources, group[1])
            self.rows.append(row)
            group[2].append(row)
            self.siblings.append(group[2])

    def push(self, row: int, token: int) -> None:
        self.rows[row].own.append(token)

    def propose(self, row: int, limit: int) -> list[int]:
        if limit <= 0:
            return []
        drafts = self.rows[row]
        siblings = [other for other in self.siblings[row] if other is not drafts]
        for other in siblings:
            other.catch_up()
        return drafts.propose(min(limit, drafts.length), siblings)

    def feedback(self, row: int, offered: int, kept: int) -> None:
        """A row's drafts grow by two while it keeps whole drafts and shrink by one when it
        does not, between 1 and ``draft_tokens``: a pass costs more the more positions it
        runs (2.6 ms for one, 4.1 ms for five, 5.0 ms for nine on the recipe's GPT, 3 rows)."""
        drafts = self.rows[row]
        drafts.length = min(self.settings.draft_tokens, drafts.length + 2) if kept == offered else max(1, drafts.length - 1)

"""The row split of an instruction table: seeded, stratified by intent, grouped by message.

Rows are split, never characters: the Bitext CSV is sorted by intent, so a contiguous
character split would put whole intents only in validation. Within each intent the
distinct instructions are shuffled with a seeded generator and cut 80/10/10 into
train/val/test; every copy of one instruction goes to the same part, so no test
message is ever seen in training. Each part gets at least one instruction of an intent
that has three or more.

``exclude_intents`` then takes chosen intents out of train and val (never out of test),
so that a run can be trained without an intent and evaluated on it later.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from bigramlm.data.cases import Case
from bigramlm.errors import BigramLMError

SPLIT_FRACTIONS = (0.8, 0.1, 0.1)
SPLIT_SEED = 1337
PARTS = ("train", "val", "test")


def _part_sizes(n: int, fractions: Sequence[float]) -> tuple[int, int, int]:
    """Sizes of train/val/test for ``n`` units; val and test get one each when n >= 3."""
    n_val = int(round(n * fractions[1]))
    n_test = int(round(n * fractions[2]))
    if n >= 3:
        n_val, n_test = max(1, n_val), max(1, n_test)
    elif n == 2:
        n_val, n_test = 0, 1
    else:
        n_val, n_test = 0, 0
    return n - n_val - n_test, n_val, n_test


def stratified_split(rows: Sequence[Case], fractions: Sequence[float] = SPLIT_FRACTIONS, seed: int = SPLIT_SEED) -> dict[str, list[Case]]:
    """Seeded split of rows into train/val/test, stratified by intent, grouped by instruction.

    The unit shuffled is a distinct instruction text (its stratum is the intent of its
    first row), so duplicates of a message can never sit on both sides. Strata are
    visited in sorted order and each draws a permutation from one seeded generator:
    the split depends only on the rows, the fractions and the seed. Each part keeps
    the rows' original order.
    """
    if len(fractions) != 3 or any(f < 0 for f in fractions) or abs(sum(fractions) - 1.0) > 1e-9:
        raise BigramLMError(f"split fractions must be three non-negative numbers summing to 1 (got {list(fractions)})")
    units: dict[str, list[int]] = {}
    stratum_units: dict[str, list[str]] = {}
    for pos, row in enumerate(rows):
        if row.message not in units:
            units[row.message] = []
            stratum_units.setdefault(row.intent or "", []).append(row.message)
        units[row.message].append(pos)
    rng = np.random.default_rng(seed)
    assignment = np.zeros(len(rows), dtype=np.int8)
    for stratum in sorted(stratum_units):
        members = stratum_units[stratum]
        order = rng.permutation(len(members))
        n_train, n_val, _ = _part_sizes(len(members), fractions)
        for rank, unit_pos in enumerate(order):
            part = 0 if rank < n_train else (1 if rank < n_train + n_val else 2)
            assignment[units[members[unit_pos]]] = part
    return {name: [r for r, a in zip(rows, assignment) if a == k] for k, name in enumerate(PARTS)}


def exclude_intents(
    parts: dict[str, list[Case]], intents: Sequence[str], known: Sequence[str | None]
) -> tuple[dict[str, list[Case]], dict[str, list[Case]]]:
    """Take the rows of ``intents`` out of the train and val parts of a finished split.

    Returns the parts without them (the test part whole, so that an evaluation can
    measure an intent the model never saw) and the rows taken out, by part, with the
    excluded intents' rows of the test part under "test". Excluding after splitting
    leaves every other row in the part it had without the option. ``known``: the
    intents the table has; a name outside them is an error naming ``exclude_intents``.
    """
    wanted = list(dict.fromkeys(intents))
    have = {i for i in known if i}
    unknown = [name for name in wanted if name not in have]
    if unknown:
        shown = ", ".join(sorted(have)[:12]) + (", ..." if len(have) > 12 else "")
        raise BigramLMError(
            f"exclude_intents names intent(s) the data does not have: {', '.join(unknown)} "
            f"(it has: {shown or 'no intent column'})", param="exclude_intents")
    drop = set(wanted)
    if have <= drop:
        raise BigramLMError(f"exclude_intents names every intent the data has ({len(have)}): nothing would be left "
                            "to train on", param="exclude_intents")
    kept = {name: [r for r in rows if name == "test" or r.intent not in drop] for name, rows in parts.items()}
    removed = {name: [r for r in rows if r.intent in drop] for name, rows in parts.items()}
    return kept, removed

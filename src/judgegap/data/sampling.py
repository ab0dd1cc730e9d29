"""Deterministic, stratified sampling of items.

Sampling is a pure function of (items, n, seed), so a recorded config re-creates the
same item set on any machine. Strata (answerable / question type) are filled in
proportion to their size, with largest-remainder rounding.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import TypeVar

T = TypeVar("T")


def stratified_sample(
    items: Sequence[T], n: int | None, seed: int, key: Callable[[T], str] | None = None
) -> list[T]:
    """Return ``n`` items drawn without replacement, proportionally per stratum.

    With ``n`` None or >= len(items) all items are returned in their original order.
    The result keeps the original relative order of the chosen items.
    """
    if n is None or n >= len(items):
        return list(items)
    if n <= 0:
        return []
    rng = random.Random(seed)
    if key is None:
        idx = sorted(rng.sample(range(len(items)), n))
        return [items[i] for i in idx]
    groups: dict[str, list[int]] = defaultdict(list)
    for i, it in enumerate(items):
        groups[key(it)].append(i)
    names = sorted(groups)
    total = len(items)
    quotas = {g: n * len(groups[g]) / total for g in names}
    alloc = {g: int(quotas[g]) for g in names}
    remaining = n - sum(alloc.values())
    by_remainder = sorted(names, key=lambda g: (-(quotas[g] - alloc[g]), g))
    for g in by_remainder[:remaining]:
        alloc[g] += 1
    chosen: list[int] = []
    for g in names:
        chosen.extend(rng.sample(groups[g], alloc[g]))
    return [items[i] for i in sorted(chosen)]

"""The planner's memo tables: bounded LRUs on ``Cluster.memo``, shared by the cluster's copies.

A long-running operator sees many specs and capacities; every table the planner keeps across
calls is an ``_Lru`` of a fixed size (the ``…_KEPT`` constants), so the memo stays bounded.
The values are pure functions of their keys: an evicted entry is recomputed, never wrong.
Architectures get a short id (``_arch_id``) so that the other tables' keys stay small.
"""

from __future__ import annotations

import contextlib
import gc
import itertools
from collections import OrderedDict
from collections.abc import Hashable, Iterator
from typing import Any

from .calibration import (
    fingerprint,
)


class _Lru:
    """A dict that keeps at most ``size`` entries, dropping the least recently used.

    Every table the planner keeps across calls (on ``Cluster.memo``) is one of these, so a
    long-running operator's memo stays bounded however many specs and capacities it sees. The
    values are pure functions of their keys: an evicted entry is recomputed, never wrong."""

    __slots__ = ("size", "_entries")

    def __init__(self, size: int) -> None:
        self.size = size
        self._entries: OrderedDict[Hashable, Any] = OrderedDict()

    def get(self, key: Hashable) -> Any:
        found = self._entries.get(key)
        if found is not None:
            self._entries.move_to_end(key)
        return found

    def put(self, key: Hashable, value: Any) -> Any:
        self._entries[key] = value
        self._entries.move_to_end(key)
        if len(self._entries) > self.size:
            self._entries.popitem(last=False)
        return value

    def __len__(self) -> int:
        return len(self._entries)


PARAMETER_MODELS_KEPT = 64
"""Architectures sized from ``parameters`` (and ``activeParameters``) kept in the memo."""


ARCHITECTURES_KEPT = 256
"""Architectures given a short id for the other tables' keys (ids are never reused)."""


ESTIMATES_KEPT = 8192
"""Memory estimates, and speed estimates, kept (each table): a shape needs a few hundred."""


SHAPES_KEPT = 64
"""Shapes (sizes × context × concurrency × prompt) kept, with every candidate's estimates."""


STATICS_KEPT = 8192
"""Rankings kept, one per (sizes, requirements, current placement): each is rows of ints and a
few built nearest misses (tens of KiB); ``bench/plan_scale.py`` draws ~9,600 distinct specs."""


JUDGED_KEPT = 256
"""Verdicts kept per shape, one per distinct ``Requirements.group_rules``."""


ALTERNATIVES_PER_RANKING = 256
"""Alternatives a ranking keeps for its next deployments (``explain._alternatives``):
MoreExpensive by (candidate, the chosen one's cost), NoCapacity by (candidate, its text: the
same while the pool stays as full); the table starts afresh past this size."""


ALTERNATIVES_KEPT = 4096
"""Alternatives kept for reuse: the same fields, the same (frozen) object, in every plan that
lists it (a 10,000-deployment plan lists ~200,000, of ~15,000 distinct values)."""


def _table(memo: dict, name: str, size: int) -> _Lru:
    table = memo.get(name)
    if table is None:
        table = memo[name] = _Lru(size)
    return table


def _arch_id(memo: dict, arch: Any) -> int:
    ids = _table(memo, "arch", ARCHITECTURES_KEPT)
    found = ids.get(arch)
    if found is None:
        found = ids.put(arch, next(memo.setdefault("arch_serial", itertools.count())))
    return found


def _fingerprint(memo: dict, arch: Any) -> str:
    """``calibration.fingerprint``, memoised like the architecture ids."""
    prints = _table(memo, "fingerprint", ARCHITECTURES_KEPT)
    found = prints.get(arch)
    if found is None:
        found = prints.put(arch, fingerprint(arch))
    return found


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """Python's cyclic garbage collector paused for one planning call (restored after, also on
    error). The planner builds no reference cycles (a 10,000-deployment batch: its full
    collections find nothing, ``gc.get_stats``), but a growing heap of plans and memo tables
    sets off ~11 full collections that each walk all of it: ~10 % of that batch's time.
    Reference counting frees everything as before; cycles made elsewhere meanwhile wait for
    the next collection after the call."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()

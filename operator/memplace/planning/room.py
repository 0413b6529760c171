"""Step 5, choose: the first ranked candidate whose pool has room now, and the ones without.

Capacity changes with every placement, so this is the only per-deployment step that reads
``PoolCapacity``: per pool of the ranking, each room key (pool, GPUs, bytes per GPU, replicas)
is asked once and the answer kept on the pool (``PoolCapacity.answers``) until its room
changes. The result is ``choose.Full``: what ``choose.cheapest`` returns, per pool.
"""

from __future__ import annotations

from typing import Any

from .choose import (
    Full,
    Ranking,
    has_room,
    no_room,
)
from .inventory import Cluster

_WHY = "why"
"""``PoolCapacity.answers`` holds, per room key, whether it has room now and, under
(``_WHY``, key), the NoCapacity rejection: emptied whenever the pool's room changes."""


def _room_answers(
    ranking: Ranking, cluster: Cluster, full_pools: frozenset[str]
) -> tuple[int | None, Full]:
    """``choose.cheapest``, pool by pool: the first feasible candidate with room, and the ones
    without (``choose.Full``: per pool its keys without room and its first index with room).
    Each has-room answer is kept on the pool's ``answers`` (shared by every ranking, until the
    pool's room changes); a NoCapacity rejection is built only when a plan shows it."""
    by_room = ranking.by_room
    chosen: int | None = None
    full_keys: dict[str, set[tuple]] = {}
    first_free: dict[str, int | None] = {}
    count = 0
    for pool, keys in ranking.room_by_pool.items():
        if pool in full_pools:  # this deployment's pods stayed unschedulable there
            full_keys[pool] = set(keys)
            first_free[pool] = None
            count += sum(len(by_room[key]) for key in keys)
            continue
        capacity = cluster.capacity(pool)
        answers = capacity.answers
        first: int | None = None
        lacking = None
        for key in keys:  # in rank order of their first candidates (``by_room``'s order)
            ok = answers.get(key)
            if ok is None:
                _, gpus, resident, replicas = key
                ok = answers[key] = has_room(capacity, gpus, resident, replicas)
            if ok:
                if first is None:
                    first = by_room[key][0]
            else:
                if lacking is None:
                    lacking = full_keys[pool] = set()
                lacking.add(key)
                count += len(by_room[key])
        first_free[pool] = first
        if first is not None and (chosen is None or first < chosen):
            chosen = first

    def why(key: tuple, i: int) -> Any:
        pool, gpus, resident, replicas = key
        capacity = cluster.capacity(pool)
        cpu_only = ranking.ranked.candidate_at(i).pool.cpu_only
        if pool in full_pools:
            return no_room(pool, cpu_only, gpus, resident, replicas, capacity, full_pools)
        answers = capacity.answers
        wkey = (_WHY, key)
        found = answers.get(wkey)
        if found is None:
            found = answers[wkey] = no_room(pool, cpu_only, gpus, resident, replicas, capacity)
        return found

    return chosen, Full(ranking, full_keys, first_free, count, why)

"""Step 5, choose: the first ranked candidate whose pool has room now, and the ones without.

Capacity changes with every placement, so this is the only per-deployment step that reads
``PoolCapacity``: per pool of the ranking, each room key (pool, GPUs, bytes per GPU, replicas)
is asked once and the answer kept on the pool (``PoolCapacity.answers``) until its room
changes. Where the answer cannot depend on the bytes (whole GPUs, each of which holds the
replica: ``PoolCapacity.replicas_possible`` then counts GPUs), it is kept by (GPUs, replicas)
alone, so every ranking shares it. The result is ``choose.Full``: what ``choose.cheapest``
returns, per pool.
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


def _asked(keys: tuple[tuple, ...], capacity: Any) -> tuple[tuple, ...]:
    """The key each room key's answer is kept under in ``capacity.answers``: (GPUs, replicas)
    where whole GPUs are counted, whatever the bytes (not a shared GPU, and no more bytes than
    the pool's smallest usable GPU: ``PoolCapacity.replicas_possible``'s counting path), else
    the room key itself."""
    smallest = capacity.min_usable
    return tuple(
        key if (capacity.sharing and key[1] == 1) or key[2] > smallest else (key[1], key[3])
        for key in keys
    )


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
    entries = ranking.room_memo.get(("room",))
    if entries is None:  # per pool: its keys, its first candidate, its candidates, and below
        entries = ranking.room_memo[("room",)] = [
            [pool, keys, by_room[keys[0]][0], sum(len(by_room[k]) for k in keys), None, None]
            for pool, keys in ranking.room_by_pool.items()
        ]
    capacity_of = cluster.capacity
    for entry in entries:
        pool, keys, first_of_pool, in_pool, asked, usable = entry
        if pool in full_pools:  # this deployment's pods stayed unschedulable there
            full_keys[pool] = set(keys)
            first_free[pool] = None
            count += in_pool
            continue
        capacity = capacity_of(pool)
        if usable is not capacity.usable:  # another cluster's pool of that name
            asked = entry[4] = _asked(keys, capacity)
            entry[5] = capacity.usable
        answers = capacity.answers
        known = list(map(answers.get, asked))
        if None in known:  # asked first since the pool's room changed
            for n, key in enumerate(keys):
                if known[n] is None:
                    _, gpus, resident, replicas = key
                    ok = has_room(capacity, gpus, resident, replicas)
                    known[n] = answers[asked[n]] = ok
        if all(known):  # the common case: room for every shape of the pool
            first = first_of_pool  # keys come in rank order of their first candidates
        elif not any(known):
            first = None
            full_keys[pool] = set(keys)
            count += in_pool
        else:
            first = None
            lacking = full_keys[pool] = set()
            for key, ok in zip(keys, known, strict=True):
                if ok:
                    if first is None:
                        first = by_room[key][0]
                else:
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

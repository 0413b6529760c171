"""Choosing: the cheapest feasible candidate with room, by a fixed tie-break; and the runners-up.

kube-scheduler breaks score ties at random (``selectHost``); we do not, so that ``memplace plan``
in a pull request shows exactly what the operator will do. The order (``rank_key``):

1. cost per hour (rounded to 1e-6 $, so float noise never decides);
2. fewer GPUs in total (replicas × GPUs per replica);
3. higher precision (more weight bits), then a wider KV cache;
4. tier: gpu, then offload, then cpu (the faster one, at equal cost);
5. the deployment's current placement (stability: an exact tie never moves a running model);
6. pool name, GPUs per replica, variant name (the model itself first).

Small verbs, after Karpenter's ``Offerings``: ``rank`` orders, ``has_room`` says whether a
pool can take the replicas now (and ``no_capacity`` explains when it cannot), ``cheapest`` picks.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .feasibility import Evaluation, Rejection, stage_of

__all__ = [
    "TIER_ORDER",
    "Full",
    "Ranking",
    "alternative_indices",
    "alternatives",
    "candidate_rank_key",
    "candidate_room_key",
    "cheapest",
    "has_room",
    "index",
    "is_current",
    "no_capacity",
    "no_room",
    "rank",
    "rank_key",
    "room_key",
]

TIER_ORDER = {"gpu": 0, "offload": 1, "cpu": 2}
RUNNERS_UP = 3
"""How many of the next-cheapest feasible candidates to list."""


def rank_key(e: Evaluation, current: Any = None) -> tuple:
    """The order of the module docstring, for one evaluated candidate."""
    return candidate_rank_key(e.candidate, e.per_hour, e.replicas, current)


def candidate_rank_key(c: Any, per_hour: float, replicas: int, current: Any = None) -> tuple:
    """The order of the module docstring, from the candidate, its cost and its replicas (what
    the planner ranks on without building an ``Evaluation``)."""
    return (round(per_hour, 6), replicas * max(c.gpus, 1), *rank_tail(c, current))


def rank_tail(c: Any, current: Any = None) -> tuple:
    """``candidate_rank_key`` after cost and GPUs: what breaks a tie, from the candidate alone
    (the planner keeps it per candidate when nothing runs)."""
    return (
        -c.precision.weight_bits,
        -c.kv.bits,
        TIER_ORDER.get(c.tier, 9),
        not is_current(c, current),
        c.pool.name,
        c.gpus,
        c.variant.name or "",
        c.precision.id,
        c.kv.id,
    )


def is_current(c: Any, current: Any) -> bool:
    """Whether candidate ``c`` is the running placement ``current`` (a PlacementStatus)."""
    return current is not None and (
        current.pool == c.pool.name
        and current.precision == c.precision.id
        and (current.kv_cache_dtype or c.kv.id) == c.kv.id
        and current.tier == c.tier
        and current.gpus_per_replica == c.gpus
        and current.variant == c.variant.name
    )


@dataclass
class Ranking:
    """Candidates in rank order, with the indexes the per-deployment decision reads.

    Everything here depends on the spec and the pools, not on free capacity, so one Ranking
    serves every deployment with the same spec (the planner memoises it). ``ranked`` is any
    sequence of Evaluations: ``rank`` keeps the ones it was given; the planner's builds each
    on access from a light row, so that only the candidates shown (the chosen one, the
    alternatives, a pool without room explained) ever become objects. The indexes hold plain
    ints and tuples of them."""

    ranked: Sequence[Evaluation]
    feasible: list[int] = field(default_factory=list)
    """Indices of candidates that passed every check, in rank order."""
    feasible_by_pool: dict[str, tuple[int, ...]] = field(default_factory=dict)
    nearest_by_pool: dict[str, int] = field(default_factory=dict)
    """Per pool without a feasible candidate: the one that got furthest through the checks."""
    by_room: dict[tuple, tuple[int, ...]] = field(default_factory=dict)
    """Feasible indices by ``room_key``, in rank order: each key is asked for room once."""
    room_by_pool: dict[str, tuple[tuple, ...]] = field(default_factory=dict)
    """``by_room``'s keys per pool (the key's first field), in ``by_room`` order: what the
    planner asks pool by pool (``room._room_answers``)."""
    key_of: list[tuple | None] = field(default_factory=list)
    """Per ranked index, its ``room_key``; None for an infeasible candidate."""
    room_memo: dict = field(default_factory=dict, repr=False, compare=False)
    """What the planner keeps for this ranking's next deployments (``explain._alternatives``)."""


def room_key(e: Evaluation) -> tuple:
    """Everything ``no_capacity`` reads from a candidate: the same key, the same answer."""
    return candidate_room_key(e.candidate, e.resident_bytes_per_gpu, e.replicas)


def candidate_room_key(c: Any, resident_bytes_per_gpu: int, replicas: int) -> tuple:
    """``room_key`` from the candidate, what it holds per GPU and its replicas."""
    return (c.pool.name, c.gpus, resident_bytes_per_gpu, replicas)


def index(
    ranked: Sequence[Evaluation],
    rows: Iterable[tuple[str, tuple | None]],
    nearest: dict[str, int],
) -> Ranking:
    """The Ranking of ``ranked`` (already in rank order), given per candidate its pool and its
    ``room_key`` (None: infeasible), and per pool its nearest miss (kept for pools with no
    feasible candidate)."""
    feasible: list[int] = []
    by_pool: dict[str, list[int]] = {}
    by_room: dict[tuple, list[int]] = {}
    key_of: list[tuple | None] = []
    canonical: dict[tuple, tuple] = {}  # one tuple per distinct key, however many rows share it
    for i, (pool, key) in enumerate(rows):
        if key is not None:
            key = canonical.setdefault(key, key)
            feasible.append(i)
            by_pool.setdefault(pool, []).append(i)
            by_room.setdefault(key, []).append(i)
        key_of.append(key)
    rooms = {key: tuple(indices) for key, indices in by_room.items()}
    room_by_pool: dict[str, list[tuple]] = {}
    for key in rooms:
        room_by_pool.setdefault(key[0], []).append(key)
    return Ranking(
        ranked,
        feasible,
        {pool: tuple(indices) for pool, indices in by_pool.items()},
        {pool: i for pool, i in sorted(nearest.items()) if pool not in by_pool},
        rooms,
        {pool: tuple(keys) for pool, keys in room_by_pool.items()},
        key_of,
    )


def rank(evaluations: Iterable[Evaluation], current: Any = None) -> Ranking:
    """Cheapest first, ties broken as the module says; sets each ``sort_key``."""
    ranked = list(evaluations)
    for e in ranked:
        e.sort_key = rank_key(e, current)
    ranked.sort(key=lambda e: e.sort_key)
    nearest: dict[str, tuple[tuple, int]] = {}
    for i, e in enumerate(ranked):
        if e.rejections:
            pool, key = e.candidate.pool.name, _closeness(e)
            if pool not in nearest or key < nearest[pool][0]:
                nearest[pool] = (key, i)
    return index(
        ranked,
        ((e.candidate.pool.name, None if e.rejections else room_key(e)) for e in ranked),
        {pool: i for pool, (_, i) in nearest.items()},
    )


def has_room(capacity: Any, gpus: int, bytes_per_gpu: int, replicas: int) -> bool:
    """Whether ``capacity`` (the pool's ``PoolCapacity``) can take the replicas now."""
    return replicas == 0 or capacity.replicas_possible(gpus, bytes_per_gpu, replicas) >= replicas


def no_capacity(
    e: Evaluation, capacity: Any, full_pools: frozenset[str] = frozenset()
) -> Rejection | None:
    """Whether ``capacity`` (the pool's ``PoolCapacity``) lacks room for the replicas."""
    c = e.candidate
    return no_room(
        c.pool.name,
        c.pool.cpu_only,
        c.gpus,
        e.resident_bytes_per_gpu,
        e.replicas,
        capacity,
        full_pools,
    )


def no_room(
    pool: str,
    cpu_only: bool,
    gpus: int,
    bytes_per_gpu: int,
    replicas: int,
    capacity: Any,
    full_pools: frozenset[str] = frozenset(),
) -> Rejection | None:
    """``no_capacity`` from what it reads of a candidate (its ``room_key`` and whether its pool
    is CPU-only): what a planner asks without building the Evaluation."""
    if pool in full_pools:
        return Rejection(
            "NoCapacity",
            f"pool {pool} is full for this deployment: its pods stayed unschedulable",
            resolvable=True,
        )
    if has_room(capacity, gpus, bytes_per_gpu, replicas):
        return None
    fits = capacity.replicas_possible(gpus, bytes_per_gpu, replicas)
    if cpu_only:
        free = f"{capacity.free_whole_gpus} of {capacity.total_gpus} nodes free"
        need = f"{replicas} nodes"
    else:
        free = f"{capacity.free_whole_gpus} of {capacity.total_gpus} GPUs free"
        need = f"{replicas} × {gpus} GPU"
    return Rejection(
        "NoCapacity",
        f"needs {need}, room for {fits} in {pool} ({free})",
        resolvable=True,
    )


class Full(Mapping[int, Rejection]):
    """The feasible candidates of a ranking that lack room, by index, and why (NoCapacity),
    answered per pool: ``full_keys`` holds per pool its room keys without room, ``first_free``
    per pool its first index with room (None: none), ``why(key, i)`` the rejection of a key
    (``i`` its first index), built only when asked. What ``cheapest`` returns as a dict, for a
    planner that keeps its answers per pool (``room``)."""

    __slots__ = ("_ranking", "_full_keys", "_first_free", "_count", "_why")

    def __init__(
        self,
        ranking: Ranking,
        full_keys: Mapping[str, frozenset[tuple] | set[tuple]],
        first_free: Mapping[str, int | None],
        count: int,
        why: Callable[[tuple, int], Rejection],
    ) -> None:
        self._ranking, self._full_keys, self._first_free = ranking, full_keys, first_free
        self._count, self._why = count, why

    def __contains__(self, i: object) -> bool:
        try:
            key = self._ranking.key_of[i]  # type: ignore[index]
        except (IndexError, TypeError):
            return False
        return key is not None and i >= 0 and key in self._full_keys.get(key[0], ())  # type: ignore[operator]

    def __getitem__(self, i: int) -> Rejection:
        if i not in self:
            raise KeyError(i)
        key = self._ranking.key_of[i]
        return self._why(key, self._ranking.by_room[key][0])

    def __len__(self) -> int:
        return self._count

    def __iter__(self) -> Iterator[int]:
        for keys in self._full_keys.values():
            for key in keys:
                yield from self._ranking.by_room[key]

    def first_free(self, pool: str, indices: Sequence[int]) -> int | None:
        """The first of ``indices`` (the pool's feasible ones) with room, or None."""
        return self._first_free.get(pool)


def _first_free(full: Mapping[int, Rejection], pool: str, indices: Sequence[int]) -> int | None:
    if isinstance(full, Full):
        return full.first_free(pool, indices)
    return next((i for i in indices if i not in full), None)


def cheapest(
    ranking: Ranking, room: Callable[[tuple, int], Rejection | None]
) -> tuple[int | None, dict[int, Rejection]]:
    """The index of the first feasible candidate with room, and the NoCapacity rejection of
    each feasible one that lacked it. Every feasible candidate is asked (none skipped), so the
    message can say how many were full; in bulk, once per ``room_key``: ``room(key, i)`` with
    ``i`` the first candidate that has that key."""
    chosen = None
    full: dict[int, Rejection] = {}
    for key, indices in ranking.by_room.items():
        why = room(key, indices[0])
        if why is not None:
            full.update(dict.fromkeys(indices, why))
        elif chosen is None or indices[0] < chosen:
            chosen = indices[0]
    return chosen, full


def _closeness(e: Evaluation) -> tuple:
    """The nearest miss sorts first: furthest through the stages, then closest to passing the
    one it failed (``Rejection.excess``), then fewest rejections, then rank order."""
    first = primary(e)
    if first is None:
        return (-99, 0.0, 0, e.sort_key)
    return (-stage_of(first), first.excess, len(e.rejections), e.sort_key)


def primary(e: Evaluation) -> Rejection | None:
    """The rejection people see: the earliest stage's."""
    return min(e.rejections, key=stage_of) if e.rejections else None


def _candidate_at(ranked: Sequence[Evaluation], i: int) -> Any:
    at = getattr(ranked, "candidate_at", None)
    return at(i) if at is not None else ranked[i].candidate


def _per_hour_at(ranked: Sequence[Evaluation], i: int) -> float:
    at = getattr(ranked, "per_hour_at", None)
    return at(i) if at is not None else ranked[i].per_hour


def alternatives(
    ranking: Ranking, chosen: int | None, full: Mapping[int, Rejection]
) -> list[tuple[Evaluation, Rejection]]:
    """The next few feasible candidates and the best one per other pool, one reason each.

    Per pool, "best" is its cheapest feasible candidate with room, else its cheapest feasible
    one (NoCapacity), else the one that got furthest through the checks (the near miss worth
    explaining). In rank order; a feasible loser's reason is MoreExpensive."""
    return [(ranking.ranked[i], why) for i, why in alternative_indices(ranking, chosen, full)]


def alternative_indices(
    ranking: Ranking, chosen: int | None, full: Mapping[int, Rejection]
) -> list[tuple[int, Rejection]]:
    """``alternatives`` as ranking indices: what a planner whose ranking builds candidates on
    access reads without building the ones it has shown before (``explain``)."""
    ranked = ranking.ranked
    winner_cost = None if chosen is None else _per_hour_at(ranked, chosen)

    def reason(i: int) -> Rejection:
        if i in full:
            return full[i]
        if not ranking.key_of or ranking.key_of[i] is None:  # infeasible: its own reason
            rejections = ranked[i].rejections
            if rejections:
                return min(rejections, key=stage_of)
        assert winner_cost is not None
        cost = _per_hour_at(ranked, i)
        more = cost - winner_cost
        if more < 5e-7:
            return Rejection("MoreExpensive", f"${cost:.2f}/h, same cost; lost the tie-break")
        return Rejection(
            "MoreExpensive", f"${cost:.2f}/h, ${more:.2f}/h more than the chosen placement"
        )

    def kind(i: int) -> tuple:
        c = _candidate_at(ranked, i)
        return (c.pool.name, c.precision.id, c.tier, c.variant.name)

    picked: dict[int, Rejection] = {}
    seen = set() if chosen is None else {kind(chosen)}
    feasible = ranking.feasible
    # candidates ranked before the chosen one are never runners-up: start after it
    start = 0 if chosen is None else bisect.bisect_right(feasible, chosen)
    for i in feasible[start:]:
        if len(picked) >= RUNNERS_UP:
            break
        if i == chosen or i in full:
            continue
        k = kind(i)
        if k not in seen:  # differing only in GPUs or KV dtype: not news
            seen.add(k)
            picked[i] = reason(i)
    chosen_pool = None if chosen is None else _candidate_at(ranked, chosen).pool.name
    for pool, indices in ranking.feasible_by_pool.items():
        if pool == chosen_pool:
            continue
        best = _first_free(full, pool, indices)
        if best is None:
            best = indices[0]
        if best not in picked:
            picked[best] = reason(best)
    for pool, i in ranking.nearest_by_pool.items():
        if pool != chosen_pool and i not in picked:
            picked[i] = reason(i)
    return [(i, picked[i]) for i in sorted(picked)]

"""Batch placement: many deployments against finite capacity, decided together.

``plan_cluster`` (greedy) lets each deployment in (namespace, name) order take its cheapest
option, even when that leaves a later one with nothing. ``plan_batch`` with the ``optimal``
strategy asks ``solve`` for one option per deployment over the planner's own feasible
candidates (the checks and their explanations are untouched: the solver only chooses among
what ``plan`` ranked), then builds every plan with ``decide._decide`` given that choice:

1. release every deployment of the batch (each is being replanned);
2. per deployment, its options: the first (cheapest) ranked candidate of each room key
   (pool, GPUs per replica, bytes per GPU, replicas), i.e. every distinct way it can take room,
   cheapest first; pools it found full (``full_pools``) left out;
3. ``solve``: most placed by priority, then least cost, moves only as the threshold allows;
4. pack the choices onto nodes (largest replicas first) with the pools' own ``PoolCapacity``;
5. decide each deployment, highest priority first, with its own room released and its choice
   preferred (one the packing refused, or the solver left out, takes the cheapest room left:
   the greedy repair);
6. every ``NoCapacity`` names who holds the pool, at what priority.

When the solver has nothing in time the plans are ``plan_cluster``'s, and each says so in its
message. Same input, same output: the solver runs one worker with a fixed seed.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from memplace.api import Alternative

from .choose import is_current
from .decide import _decide, _released, plan_cluster
from .inventory import Cluster, PoolCapacity
from .memo import collector_paused
from .plan_types import DeploymentRequest, Plan
from .ranking import _static
from .sizing import _Invalid
from .solve import OPTIONS_KEPT, Item, Option, Room, Solution, solve

__all__ = ["STRATEGIES", "BatchResult", "name_holders", "plan_batch"]

STRATEGIES = ("optimal", "greedy")
CONSOLIDATION_THRESHOLD = 0.10
"""A running placement moves to a cheaper one only when that saves more than this share of its
cost (or when the move is needed to place something): the default of
``--consolidation-threshold``, after Karpenter's consolidation, which replaces a node only for
a cheaper one (karpenter.sh docs, "Disruption": consolidation)."""
TIME_LIMIT_S = 1.0
"""The solver's time limit per batch; past it, the best solution found so far is used (it
starts from the first-fit plan, so that is never worse than greedy on the solver's model)."""
HOLDERS_SHOWN = 3
"""How many holders a NoCapacity reason names before "+N more"."""


@dataclasses.dataclass
class BatchResult:
    plans: list[Plan]
    solution: Solution | None
    """None for the greedy strategy."""
    fallback: bool = False
    """The solver found nothing in time: the plans are greedy."""


def _options(
    ranking: Any, request: DeploymentRequest, cluster: Cluster, limit: int | None = None
) -> list[Option]:
    """The deployment's options, cheapest first, less the dominated ones (``_undominated``):
    the first ranked candidate of each room key; at most ``limit`` (the rest not built)."""
    ranked = ranking.ranked

    def every() -> Iterator[Option]:
        # ``by_room`` is in rank order of each key's first candidate: cheapest first
        for key, indices in ranking.by_room.items():
            pool, gpus, resident, replicas = key
            if pool in request.full_pools or replicas <= 0:
                continue
            i = indices[0]
            cost = ranked.per_hour_at(i)
            shared = cluster.capacity(pool).sharing and gpus == 1
            yield Option(i, pool, max(gpus, 1), resident, replicas, cost, shared)

    return list(itertools.islice(_kept(every()), limit))


def _undominated(options: list[Option]) -> list[Option]:
    """``options`` (cheapest first) less each one that another kept option of the same pool
    beats: no dearer, the same GPUs per replica, no more replicas and (where GPUs are shared
    by bytes) no more bytes per GPU: it could only use more room for no gain."""
    return list(_kept(options))


def _kept(options: Iterable[Option]) -> Iterator[Option]:
    """``_undominated``, one option at a time (whether one is kept depends only on those
    before it, so the first N kept are the same however many follow)."""
    # per (pool, slots, shared): the kept options' (replicas, bytes per GPU) → least cost
    front: dict[tuple[str, int, bool], dict[tuple[int, int], float]] = {}
    for o in options:
        rivals = front.setdefault((o.pool, o.slots, o.shared), {})
        if any(
            cost <= o.cost + 1e-9
            and replicas <= o.replicas
            and (not o.shared or resident <= o.resident)
            for (replicas, resident), cost in rivals.items()
        ):
            continue
        shape = (o.replicas, o.resident if o.shared else 0)
        if o.cost < rivals.get(shape, float("inf")):
            rivals[shape] = o.cost
        yield o


def _room(capacity: PoolCapacity) -> Room:
    free = sum(b for node in capacity.free for b in node) if capacity.sharing else 0
    gpu_bytes = max((b for node in capacity.usable for b in node), default=0)
    return Room(tuple(capacity.whole_count), free, gpu_bytes)


def _current_option(
    options: Sequence[Option], ranking: Any, request: DeploymentRequest
) -> int | None:
    if request.current is None:
        return None

    ranked = ranking.ranked
    for j, o in enumerate(options):
        if is_current(ranked.candidate_at(o.key), request.current):
            return j
    return None


class _Holders:
    """Who holds each pool, as the NoCapacity reasons name them: per pool its holders by
    priority, highest first. The named text, and the amended Alternative, are built once per
    distinct value (a 10,000-deployment batch amends ~200,000 alternatives, of a few thousand
    distinct ones)."""

    def __init__(
        self,
        held: Mapping[str, list[tuple[str, str]]],
        priority: Mapping[tuple[str, str], int],
    ) -> None:
        self.held, self.priority = held, priority
        self.members = {pool: set(owners) for pool, owners in held.items()}
        self._text: dict[tuple, str] = {}
        self._amended: dict[tuple[int, str], tuple[Alternative, Alternative]] = {}

    def text(self, pool: str, me: tuple[str, str]) -> str:
        """The holders of ``pool`` named for ``me`` ("" for none besides ``me``)."""
        owners = self.held.get(pool, ())
        top = owners[: HOLDERS_SHOWN + 1]
        mine = me in top  # the text leaves ``me`` out: it is ``me``'s own
        key = (pool, me if mine else None, me in self.members.get(pool, ()))
        found = self._text.get(key)
        if found is None:
            shown = [o for o in top if o != me][:HOLDERS_SHOWN]
            found = ""
            if shown:
                named = [
                    f"{ns}/{name} (priority {self.priority[(ns, name)]})"
                    if (ns, name) in self.priority
                    else f"{ns}/{name} (outside this plan)"
                    for ns, name in shown
                ]
                more = len(owners) - len(shown) - key[2]
                found = ", ".join(named) + (f" +{more} more" if more > 0 else "")
            self._text[key] = found
        return found

    def amend(self, plan: Plan) -> Plan:
        """``plan`` with each NoCapacity alternative naming who holds that pool."""
        changed = False
        alts: list[Alternative] = []
        me = (plan.namespace, plan.name)
        for a in plan.alternatives:
            if a.code == "NoCapacity":
                held_by = self.text(a.pool or "", me)
                if held_by:
                    key = (id(a), held_by)
                    found = self._amended.get(key)
                    if found is None:  # keeps ``a``, so that its id() is not reused
                        update = {"reason": f"{a.reason}; held by {held_by}"}
                        found = self._amended[key] = (a, a.model_copy(update=update))
                    a = found[1]
                    changed = True
            alts.append(a)
        return dataclasses.replace(plan, alternatives=tuple(alts)) if changed else plan


def name_holders(plan: Plan, cluster: Cluster, priority: Mapping[tuple[str, str], int]) -> Plan:
    """``plan`` (one deployment planned alone, as the operator plans each change) with each
    NoCapacity alternative naming who holds that pool in ``cluster``, highest priority first,
    as a batch names them; ``priority``: every known deployment's ``spec.priority`` (one not
    in it is named "outside this plan")."""
    named = {a.pool for a in plan.alternatives if a.code == "NoCapacity" and a.pool}
    if not named:
        return plan
    pools = [pool for pool in named if cluster.pool(pool) is not None]
    return _Holders(_held(cluster, pools, priority), priority).amend(plan)


def _held(
    cluster: Cluster, pools: Iterable[str], priority: Mapping[tuple[str, str], int]
) -> dict[str, list[tuple[str, str]]]:
    """Per pool, who holds room in it, highest priority first (then by name)."""
    return {
        pool: sorted(cluster.capacity(pool).owners, key=lambda o: (-priority.get(o, 0), o))
        for pool in pools
    }


def plan_batch(
    requests: Iterable[DeploymentRequest],
    cluster: Cluster,
    *,
    strategy: str = "optimal",
    threshold: float = CONSOLIDATION_THRESHOLD,
    time_limit_s: float = TIME_LIMIT_S,
    solver: str = "highs",
) -> BatchResult:
    """Plans for every request, in (namespace, name) order, by ``strategy``."""

    ordered = sorted(requests, key=lambda r: (r.namespace, r.name))
    if strategy == "greedy":
        return BatchResult(plan_cluster(ordered, cluster), None)
    if strategy != "optimal":
        raise ValueError(f"unknown strategy {strategy!r}; choose from {', '.join(STRATEGIES)}")
    with collector_paused():
        return _optimal(ordered, cluster, threshold, time_limit_s, solver)


def _optimal(
    ordered: list[DeploymentRequest],
    cluster: Cluster,
    threshold: float,
    time_limit_s: float,
    solver: str,
) -> BatchResult:
    """``plan_batch``'s optimal strategy, the steps of the module docstring."""

    state = cluster.mutable_copy()
    owners = {request.owner for request in ordered}
    unique = len(owners) == len(ordered)
    for pool in state.pools:  # every deployment of the batch is being replanned
        capacity = state.capacity(pool.name)
        for owner in [o for o in capacity.owners if o in owners]:
            capacity.release(owner)
    items: list[Item] = []
    statics: list[Any] = []  # per request, for its decision below (None: Invalid)
    shared_options: dict[int, tuple[Option, ...]] = {}
    rankings: list[Any] = []
    for request in ordered:
        try:
            static = _static(request, state)
        except _Invalid:
            statics.append(None)
            items.append(Item((), request.spec.priority))
            continue
        statics.append(static)
        ranking = static.ranking
        # deployments with the same spec share the ranking, and so their options (the same
        # tuple: ``solve`` takes them as one item of that many)
        shared = request.current is None and not request.full_pools
        found = shared_options.get(id(ranking)) if shared else None
        if found is not None:
            items.append(Item(found, request.spec.priority))
            continue
        # without a running placement only the cheapest OPTIONS_KEPT are ever used
        limit = OPTIONS_KEPT if request.current is None else None
        options = _options(ranking, request, state, limit)
        current = _current_option(options, ranking, request)
        if len(options) > OPTIONS_KEPT:  # the cheapest, and the running placement
            kept = options[:OPTIONS_KEPT]
            if current is not None and current >= OPTIONS_KEPT:
                kept.append(options[current])
                current = len(kept) - 1
            options = kept
        if shared:
            shared_options[id(ranking)] = tuple(options)
            rankings.append(ranking)  # keeps the id() unique while the table lives
        items.append(Item(tuple(options), request.spec.priority, current))
    rooms = {pool.name: _room(state.capacity(pool.name)) for pool in state.pools}
    solution = solve(items, rooms, threshold=threshold, time_limit_s=time_limit_s, solver=solver)
    if solution.status == "none":
        plans = plan_cluster(ordered, cluster)
        note = f" (greedy: the solver found no plan in {time_limit_s:g} s)"
        return BatchResult(
            [dataclasses.replace(p, message=p.message + note) for p in plans], solution, True
        )

    # pack the choices, largest replicas first, so that the big ones find whole nodes
    picked = {i: items[i].options[j] for i, j in enumerate(solution.chosen) if j is not None}
    for i in sorted(picked, key=lambda i: (-picked[i].slots, -picked[i].resident, i)):
        o = picked[i]
        gpus = 0 if state.pool(o.pool).cpu_only else o.slots
        placed = state.capacity(o.pool).place(gpus, o.resident, o.replicas, owner=ordered[i].owner)
        if placed is None:
            del picked[i]  # the packing refused it: the greedy repair below decides it
    priority = {r.owner: r.spec.priority for r in ordered}
    plans: dict[int, Plan] = {}
    for i in sorted(range(len(ordered)), key=lambda i: (-ordered[i].spec.priority, i)):
        request = ordered[i]
        if not unique:  # the same deployment twice: whatever it holds now
            _released(state, request.owner, in_place=True)
        elif i in picked:  # all it holds: the packing's room, in its pool
            state.capacity(picked[i].pool).release(request.owner)
        choice = picked[i].key if i in picked else None
        plans[i] = _decide(request, state, consume=True, choice=choice, static=statics[i])
    holders = _Holders(_held(state, [pool.name for pool in state.pools], priority), priority)
    out = [holders.amend(plans[i]) for i in range(len(ordered))]
    return BatchResult(out, solution)

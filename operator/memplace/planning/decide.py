"""The decide step: one deployment's plan from the steps before, and the greedy order of many.

``_decide`` runs sizing → grouping → evaluation → ranking (memoised: ``ranking._static``),
then ``room`` (who has room now), then ``explain``, and takes the room it chose. The batch
planner (``batch``) calls it with the solver's choice; ``plan_cluster`` calls it in
(namespace, name) order, each deployment consuming the room it takes.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from memplace.api import (
    Alternative,
    CostStatus,
    PlacementStatus,
)

from . import lora
from .choose import (
    Ranking,
    is_current,
)
from .cost import cost_per_million_tokens
from .explain import (
    _alternatives,
    _calibration_status,
    _estimate_status,
    _passed_over,
    _round,
    _unschedulable_message,
    _what,
)
from .inventory import Cluster
from .memo import collector_paused
from .memory import usable_gpu_bytes
from .plan_types import DeploymentRequest, Plan
from .ranking import _Static, _static
from .room import _room_answers
from .sizing import _Invalid


def _decide(
    request: DeploymentRequest,
    cluster: Cluster,
    consume: bool,
    choice: int | None = None,
    static: _Static | None = None,
) -> Plan:
    """The plan for ``request``: its cheapest feasible candidate with room, or ``choice`` (a
    ranking index the batch solver picked, ``batch``) when that has room; a cheaper one with
    room that the choice passed over is listed first among the alternatives, with why. A base
    with LoRA adapters is decided with them (``lora``), without a batch choice. ``static``:
    ``ranking._static(request, …)`` when the caller has it already (the batch does)."""
    if request.lora is None and lora.has_adapters(request):
        return lora.decide(request, lambda r: _decide(r, cluster, consume), _separately(cluster))
    try:
        if static is None:
            static = _static(request, cluster)
    except _Invalid as error:
        return Plan(request.namespace, request.name, "Invalid", message=str(error))
    ranking = static.ranking
    chosen, full = _room_answers(ranking, cluster, request.full_pools)
    if choice is None and request.target is not None:
        choice = _target_index(ranking, request.target)
    passed_over = None
    if choice is not None and choice not in full and choice != chosen:
        passed_over, chosen = chosen, choice
    alts = _alternatives(ranking, chosen, full, cluster.memo)
    if passed_over is not None:
        alts.insert(
            0,
            _passed_over(
                ranking.ranked[passed_over], ranking.ranked[chosen], request, cluster.memo
            ),
        )
    allowed = static.requirements.pools
    alts += [
        Alternative(pool=x.name, reason=x.reason, code=x.code)
        for x in cluster.excluded
        if not allowed or x.name in allowed
    ]
    alts += static.variant_problems
    # rules that only restate the spec come last: the options worth reading come first
    alts.sort(key=lambda a: a.code == "PoolNotAllowed")
    steps = list(static.steps)
    steps[-1] = (steps[-1][0], len(ranking.feasible) - len(full))

    if chosen is None:
        message = _unschedulable_message(steps)
        return Plan(
            request.namespace,
            request.name,
            "Unschedulable",
            cost=CostStatus(naive_per_hour=_round(static.naive_per_hour, 4))
            if static.naive_per_hour is not None
            else None,
            alternatives=tuple(alts),
            message=message,
            funnel=tuple(steps),
            resolvable=bool(ranking.feasible),
        )

    e = ranking.ranked[chosen]
    c = e.candidate
    capacity = cluster.capacity(c.pool.name)
    if not consume:
        capacity = capacity.copy()
    held = request.current  # a re-plan keeps the nodes it holds where they still fit
    prefer = (held.nodes or ()) if held is not None and held.pool == c.pool.name else ()
    nodes = capacity.place(
        c.gpus, e.resident_bytes_per_gpu, e.replicas, owner=request.owner, prefer=prefer
    )
    r = static.requirements
    tokens = r.demand_tokens_per_second or (
        e.replicas * e.speed.output_tokens_per_second_per_replica
    )
    placement = PlacementStatus(
        pool=c.pool.name,
        gpu_model=c.pool.gpu_name,
        precision=c.precision.id,
        kv_cache_dtype=c.kv.id,
        tier=c.tier,
        variant=c.variant.name,
        gpus_per_replica=c.gpus,
        replicas=e.replicas,
        nodes=nodes or None,
        offload_bytes_per_replica=(e.offload_bytes_per_gpu or 0) * c.gpus
        if c.tier == "offload"
        else None,
        gpu_memory_source=c.pool.gpu_memory_source if c.gpus else None,
        usable_gpu_memory_bytes=usable_gpu_bytes(c.pool.gpu_memory_bytes) if c.gpus else None,
    )
    # what the chosen candidate says of itself is the same for every deployment of the spec
    # (kept on the ranking, unless profiles or LoRA slots, which are the request's, apply)
    kept = request.calibration is None and request.lora is None
    said = ranking.room_memo.get(("placed", chosen)) if kept else None
    if said is None:
        cost = CostStatus(
            per_hour=round(e.per_hour, 4),
            per_million_output_tokens=_round(cost_per_million_tokens(e.per_hour, tokens), 4),
            naive_per_hour=_round(static.naive_per_hour, 4),
        )
        estimate = _estimate_status(
            e, _calibration_status(e, r.engine, request.calibration, cluster.memo), request.lora
        )
        said = (estimate, cost, f"{_what(e)}, ${e.per_hour:.2f}/h")
        if kept:
            ranking.room_memo[("placed", chosen)] = said
    estimate, cost, message = said
    return Plan(
        request.namespace,
        request.name,
        "Placed",
        placement=placement,
        estimate=estimate,
        cost=cost,
        alternatives=tuple(alts),
        message=message,
        funnel=tuple(steps),
    )


def _separately(cluster: Cluster) -> Any:
    """Plans that take no room: what one deployment per fine-tune would cost (``lora``), each
    priced as if the base's own room were free (it has just taken it; a batch may have given
    the rest away), so that the comparison does not depend on how full the cluster is."""
    return lambda request: _decide(
        request, _released(cluster, request.owner, in_place=False), consume=False
    )


def _target_index(ranking: Ranking, target: PlacementStatus) -> int | None:
    """The ranking index of the feasible candidate that is ``target``, replicas included."""
    ranked = ranking.ranked
    for i in ranking.feasible:
        c, replicas = ranked.candidate_at(i), ranked.rows[i][1]
        if replicas == target.replicas and is_current(c, target):
            return i
    return None


def _released(cluster: Cluster, owner: tuple[str, str], in_place: bool) -> Cluster:
    """The cluster without ``owner``'s own reservations (it is being replanned)."""
    for pool in cluster.pools:
        capacity = cluster.capacity(pool.name)
        if owner in capacity.owners:
            if in_place:
                capacity.release(owner)
            else:
                capacity = capacity.copy()
                capacity.release(owner)
                cluster = cluster.with_capacity(pool.name, capacity)
    return cluster


def plan_deployment(request: DeploymentRequest, cluster: Cluster) -> Plan:
    """Decide one deployment against the cluster as it is (the cluster is not changed)."""
    return _decide(request, _released(cluster, request.owner, in_place=False), consume=False)


def plan_cluster(requests: Iterable[DeploymentRequest], cluster: Cluster) -> list[Plan]:
    """Decide many deployments in (namespace, name) order, each consuming the room it takes."""
    with collector_paused():
        state = cluster.mutable_copy()
        plans = []
        for request in sorted(requests, key=lambda r: (r.namespace, r.name)):
            _released(state, request.owner, in_place=True)
            plans.append(_decide(request, state, consume=True))
        return plans

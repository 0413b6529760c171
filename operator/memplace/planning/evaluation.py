"""Step 3, filter: every check on every candidate of a shape, for one deployment's requirements.

Like kube-scheduler's filter plugins, nothing short-circuits: the survivors of each stage are
counted (the funnel), and per pool without a feasible candidate its nearest miss is explained
with numbers (``feasibility``'s check functions). The fast path asks ``feasibility``'s
predicates once per group and per candidate only what differs (replicas, fit, speed).
"""

from __future__ import annotations

import math

from .feasibility import (
    STAGES,
    Evaluation,
    Requirements,
    check_all,
    meets_slo,
    slo_excess,
)
from .grouping import _Base, _Group, _Shape


def _evaluate(
    b: _Base, r: Requirements, replicas: int, for_demand: int, check: bool = True
) -> Evaluation:
    e = Evaluation(
        b.candidate,
        b.memory,
        b.speed,
        b.loss,
        b.offload,
        b.resident,
        b.host_bytes,
        replicas,
        for_demand,
        b.per_replica,
        b.per_replica * replicas,
    )
    if check:
        e.rejections = check_all(e, r)
    return e


_Row = tuple[int, int, int]
"""A ranked candidate, light: (``_Base.index``, replicas, replicas for the demand)."""


def _evaluate_all(
    shape: _Shape, r: Requirements
) -> tuple[list[_Row], dict[int, Evaluation], list[tuple[str, int]], float | None]:
    """Every check on every candidate (the rules as ``feasibility``'s predicates, asked once per
    group for what a group shares; the check functions then explain the few candidates people
    see): the feasible candidates, as rows; per pool without one, its nearest miss, evaluated
    and explained (by ``_Base.index``, in pool order); the survivors of each stage; the naive
    plan's cost.

    Nearest miss: the candidate that got furthest through the stages; among those, the one
    closest to passing the stage it failed (needed ÷ available memory for DoesNotFit, estimate
    ÷ SLO for TooSlow), then the fewest failed stages, the cheapest, the static order. Groups
    failing an earlier stage than a candidate the pool already has are counted in bulk."""
    demand, floor, ceiling = r.demand_tokens_per_second, r.min_replicas, r.max_replicas
    disk = 1 if r.offload_to_disk else 0
    stages = len(STAGES)
    firsts = [0] * (stages + 1)
    kept: list[_Row] = []
    nearest: dict[str, tuple[tuple, _Base, int, int]] = {}
    naive: list[float | None] = [None, None]  # cheapest plain bf16 that fits: fast, any

    def members(g: _Group, group_first: int, passed: int) -> None:
        plain = g.plain and group_first > 1  # allowed and supported
        for b in g.members:
            if demand > 0:
                for_demand = math.ceil(demand / b.tps - 1e-9) if b.tps > 0 else 10**9
            else:
                for_demand = 0
            replicas = for_demand if for_demand > floor else floor
            if ceiling is not None and replicas > ceiling:
                replicas = ceiling
            fits = b.fits[disk]
            fast = meets_slo(b.ttft, b.tpot, for_demand, r)
            first = group_first if group_first < 3 else 3 if not fits else 4 if not fast else stages
            firsts[first] += 1
            per_hour = b.per_replica * replicas
            if plain and fits:
                if fast and (naive[0] is None or per_hour < naive[0]):
                    naive[0] = per_hour
                if naive[1] is None or per_hour < naive[1]:
                    naive[1] = per_hour
            if first == stages:
                kept.append((b.index, replicas, for_demand))
                nearest[g.pool] = ((-stages,), b, replicas, for_demand)
                continue
            best = nearest.get(g.pool)
            if best is not None and -first > best[0][0]:
                continue
            if first == 3:
                miss = b.excess[disk]
            elif first == 4:
                miss = slo_excess(b.ttft, b.tpot, for_demand, r)
            else:
                miss = 0.0
            closeness = (-first, miss, 5 - (passed + fits + fast), per_hour, b.order)
            if best is None or closeness < best[0]:
                nearest[g.pool] = (closeness, b, replicas, for_demand)

    judged = shape.judge(r)
    for g in judged.passing:
        members(g, 3, 3)
    for pool, buckets in judged.failing:
        for first, count, groups in buckets:
            best = nearest.get(pool)
            if best is not None and best[0][0] < -first:
                firsts[first] += count  # the pool has a candidate further along
                continue
            for gi, passed in groups:
                members(shape.groups[gi], first, passed)
    misses = {
        b.index: _evaluate(b, r, replicas, for_demand)
        for _, (closeness, b, replicas, for_demand) in sorted(nearest.items())
        if closeness[0] != -stages
    }
    steps = [("candidates", judged.total)]
    steps += [(name, sum(firsts[i + 1 :])) for i, (name, _) in enumerate(STAGES)]
    steps.append(("have free capacity", 0))
    return kept, misses, steps, naive[0] if naive[0] is not None else naive[1]

"""Batched re-plans and consolidation: every deployment placed as a whole, moved a few at a time.

When the operator starts, when capacity changes (PlacementPools, Nodes, NodeMemoryReports:
``capacity_fingerprint``) and, with ``--consolidate-every``, periodically, the resync loop asks
the batch planner (``planning.batch.plan_batch``) for one placement per deployment, with the
running placements as the ones to keep (``--consolidation-threshold``). The answer becomes each
deployment's ``target`` (``State.targets``): its next re-plan takes it when it is feasible and
has room (``DeploymentRequest.target``), through the usual path, so that every move is the
usual no-gap move (``moves``: the new Deployment Ready before the old one goes, one per
``--min-move-interval``).

At startup no running deployment is moved (a restart alone starts no move). Disruption
budget, after Karpenter's (``disruption.budgets``: at most N nodes disrupted at
once): at most ``--disruption-budget`` running deployments get a target other than where they
run per batch; the others keep their place as their target. Moves that place something of
higher priority go first, then the largest savings. Deployments not running yet are not
disruptions: each gets its batch placement. A deployment with a move in flight is left out of
the batch, and its room (old and new) stays held; so is an Invalid one.

``select`` is the pure half (tested alone); ``refresh`` gathers the inputs and applies it.
"""

from __future__ import annotations

import datetime
import time
from collections.abc import Mapping, Sequence
from typing import Any

from memplace.api import PlacementStatus
from memplace.planning import scaling
from memplace.planning.batch import plan_batch
from memplace.planning.plan import DeploymentRequest, Plan

from . import demand_status, indexed, inputs, kube
from .state import Key, State

__all__ = ["due", "refresh", "select"]

_SAME = ("pool", "precision", "kv_cache_dtype", "tier", "variant", "gpus_per_replica", "replicas")


def _same(a: PlacementStatus | None, b: PlacementStatus | None) -> bool:
    if a is None or b is None:
        return a is b
    return all(getattr(a, f) == getattr(b, f) for f in _SAME)


def select(
    plans: Sequence[Plan],
    running: Mapping[Key, tuple[PlacementStatus, float | None]],
    budget: int,
    threshold: float,
) -> tuple[dict[Key, PlacementStatus], list[Key]]:
    """Per deployment its target, and the running ones given a new place (at most ``budget``).

    ``running``: per deployment running now, its placement and cost per hour. A move whose
    saving is within the threshold (or negative) was only chosen to place others: it goes
    first; then the largest savings."""
    targets: dict[Key, PlacementStatus] = {}
    moves: list[tuple[tuple, Key, PlacementStatus]] = []
    for plan in plans:
        key = (plan.namespace, plan.name)
        now = running.get(key)
        if plan.phase != "Placed" or plan.placement is None:
            if now is not None:
                targets[key] = now[0]  # the batch would drop it: it keeps its place
            continue
        if now is None:
            targets[key] = plan.placement
            continue
        if _same(now[0], plan.placement):
            targets[key] = now[0]
            continue
        before = now[1] or 0.0
        after = plan.cost.per_hour if plan.cost is not None and plan.cost.per_hour else 0.0
        saving = before - after
        needed = saving <= threshold * before
        moves.append(((not needed, -saving, key), key, plan.placement))
    moves.sort(key=lambda m: m[0])
    moved = []
    for _, key, placement in moves:
        if len(moved) < budget:
            targets[key] = placement
            moved.append(key)
        else:
            targets[key] = running[key][0]
    return targets, moved


def due(state: State, indexes: Mapping[str, Any], now: float) -> str | None:
    """Why a batch is due now, or None."""
    capacity = indexed.capacity_fingerprint(indexes)
    if state.batch_capacity is None:
        return "startup"
    if capacity != state.batch_capacity:
        return "capacity changed"
    every = state.settings.consolidate_every_seconds
    if every and now - state.batch_time >= every:
        return "consolidation"
    return None


async def refresh(
    state: State, indexes: Mapping[str, Any], settings: Any, logger: Any, why: str
) -> list[Key]:
    """Plan the batch, set the targets, and mark for re-plan the deployments whose target is
    not where they run; the moved ones (``select``)."""
    state.batch_capacity = indexed.capacity_fingerprint(indexes)
    state.batch_time = time.monotonic()
    api = kube.Kube(settings, logger)
    requests: list[DeploymentRequest] = []
    running: dict[Key, tuple[PlacementStatus, float | None]] = {}
    generations: dict[Key, Any] = {}
    demands: dict[Key, float | None] = {}
    in_batch: set[Key] = set()
    unplaced: set[Key] = set()
    for key, store in list((indexes.get("models") or {}).items()):
        body = next(iter(store), None)
        if body is None:
            continue
        status = body.get("status") or {}
        if status.get("move"):
            continue  # its old and new room stay held
        if status.get("phase") == "Invalid":
            continue  # not retried until its spec or inputs change (``reconcile``)
        try:
            spec = inputs.parse_spec(body.get("spec") or {})
            config = await inputs.model_config(spec, key[0], api, state.settings, state.configs)
            variants = await inputs.variant_configs(
                spec, key[0], api, state.settings, state.configs
            )
            checkpoints = await inputs.model_checkpoints(
                spec, config, variants, state.settings, logger
            )
        except (inputs.InvalidSpec, inputs.Waiting):
            continue  # its own reconcile says why
        entry = inputs.placed_entry(inputs._plain(status))
        demands[key] = _planned_demand(spec, status)
        spec = _at_demand(spec, status, entry.placement if entry else None)
        if entry is not None:
            cost = (status.get("cost") or {}).get("perHour")
            running[key] = (entry.placement, float(cost) if cost is not None else None)
        elif status.get("phase") == "Unschedulable":
            unplaced.add(key)
        generations[key] = (body.get("metadata") or {}).get("generation")
        in_batch.add(key)
        requests.append(
            DeploymentRequest(
                key[0],
                key[1],
                spec,
                model_config=config,
                current=entry.placement if entry else None,
                full_pools=state.full_pools.get(key, frozenset()),
                variant_configs=variants,
                calibration=indexed.calibration(indexes),
                checkpoints=checkpoints,
            )
        )
    held = {k: v for k, v in indexed.placed(state, indexes).items() if k not in in_batch}
    cluster = inputs.build_planning_cluster(
        indexed.pools(indexes),
        indexed.values(indexes.get("nodes")),
        indexed.planning_reports(indexes),
        held,
        exclude=("", ""),
        now=datetime.datetime.now(datetime.UTC),
    )
    s = state.settings
    result = plan_batch(requests, cluster, threshold=s.consolidation_threshold)
    # a restart alone never starts a move (``reconcile``'s safety rules): at startup the
    # running deployments keep their place, and only the others take the batch's answer
    budget = 0 if why == "startup" else s.disruption_budget
    targets, moved = select(result.plans, running, budget, s.consolidation_threshold)
    state.targets = {key: ((generations[key], demands[key]), t) for key, t in targets.items()}
    for key, target in targets.items():
        # re-planned this pass, towards its target: a running one the batch moves, or an
        # Unschedulable one the batch places (one without a status yet is its handler's)
        if key in running and not _same(running[key][0], target) or key in unplaced:
            state.fingerprints.pop(key, None)
    solver = result.solution
    logger.info(
        f"Batch re-plan ({why}): {len(requests)} deployments, "
        f"{sum(p.phase == 'Placed' for p in result.plans)} placed, {len(moved)} to move"
        + (f"; solver {solver.status} in {solver.seconds:.2f} s" if solver is not None else "")
        + ("; greedy fallback" if result.fallback else "")
    )
    return moved


def target_for(
    state: State, key: Key, generation: Any, spec: Any = None, status: Any = None
) -> PlacementStatus | None:
    """The batch's target for ``key``, while its spec and, with ``spec.scaling``, the demand it
    sizes for are those the batch planned: a target planned at yesterday's demand would hold a
    deployment whose demand fell where it runs (or, at a different demand, send it to room sized
    for another replica count)."""
    found = state.targets.get(key)
    demand = _planned_demand(spec, status or {}) if spec is not None else None
    if found is None or found[0] != (generation, demand):
        return None
    return found[1]


def _decision(spec: Any, status: Mapping[str, Any]) -> tuple[Any, Any] | None:
    """A ``spec.scaling`` deployment's policy and the demand decision its plans size for now
    (``demand_status.decision_in``, as ``reconcile`` plans it); None without spec.scaling."""
    policy = scaling.Policy.from_spec(spec)
    return None if policy is None else (policy, demand_status.decision_in(status, policy))


def _planned_demand(spec: Any, status: Mapping[str, Any]) -> float | None:
    """The demand a ``spec.scaling`` deployment's plans size for now (None: no spec.scaling)."""
    found = _decision(spec, status)
    return None if found is None else found[1].planned


def _at_demand(spec: Any, status: Mapping[str, Any], current: PlacementStatus | None) -> Any:
    """``spec`` as its re-plans see it: with ``spec.scaling``, sized for the planned demand
    (``scaling.planning_spec``), not the static one."""
    found = _decision(spec, status)
    return spec if found is None else scaling.planning_spec(spec, found[1], found[0], current)

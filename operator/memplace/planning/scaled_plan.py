"""The plan for a scaled deployment: the planner run on the demand ``scaling`` decided.

One place for the chain the operator and ``memplace plan`` share: plan the planned demand
(``scaling.planning_spec``); when that needs more replicas than ``maxReplicas``, or more than
the cluster has room for (:func:`needs_cap`), plan exactly ``maxReplicas`` of the cheapest
feasible placement instead (``scaling.at_max_spec``) and say how many replicas the demand needs
(:func:`settle`; the operator then sets SLOMet=False and posts a Warning). The operator plans
one deployment at a time (:func:`plan_scaled`); ``memplace plan`` plans the whole batch, then
the capped ones again at maxReplicas, with the same three steps. Pure, like the planner.

Hysteresis on moves (``scaling.MOVE_MARGIN``): when the plan would leave the running placement
(``request.current``) but the running one is the cheapest (a tie counts) at the planned demand
less or more the margin, the running placement is kept, planned for the demand (its replicas
follow it) with the spec pinned to it, as long as that still serves the whole demand. The
cheaper choice is listed among the alternatives (``KeptRunning``), saying why it lost. Without
it, a demand swinging a few percent around a threshold of the planner's choice would move the
deployment each time it crosses, held back only by the operator's ``--min-move-interval``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from memplace.api import Alternative, PlacementStatus

from . import scaling
from .plan import DeploymentRequest, Plan, plan_deployment

__all__ = ["ScaledPlan", "needs_cap", "plan_scaled", "settle"]


@dataclass(frozen=True)
class ScaledPlan:
    plan: Plan
    needed: int | None = None
    """Replicas the demand needs when maxReplicas held them below it; None = it did not."""


def needs_cap(plan: Plan, policy: scaling.Policy) -> bool:
    """Whether the plan for the whole demand must give way to one at ``maxReplicas``: it runs
    more replicas than that, or found no room (an Invalid spec stays Invalid)."""
    ceiling = policy.max_replicas
    if ceiling is None or plan.phase == "Invalid":
        return False
    placed = plan.phase == "Placed" and plan.placement is not None
    return not (placed and plan.placement.replicas <= ceiling)


def settle(
    plan: Plan, capped: Plan, policy: scaling.Policy, decision: scaling.Decision
) -> ScaledPlan:
    """The plan that runs, given the plan for the whole demand that :func:`needs_cap` refused
    and ``capped``, the plan of ``scaling.at_max_spec``: ``capped`` with the replicas the
    demand needs, or the first plan when ``capped`` found no place and it did."""
    if capped.phase != "Placed" or capped.estimate is None:
        return ScaledPlan(plan if plan.phase == "Placed" else capped)
    needed = scaling.replicas_needed(
        decision.planned, capped.estimate.output_tokens_per_second_per_replica
    )
    ceiling = policy.max_replicas
    over = needed is not None and ceiling is not None and needed > ceiling
    return ScaledPlan(capped, needed if over else None)


def plan_scaled(
    request: DeploymentRequest, cluster: Any, policy: scaling.Policy, decision: scaling.Decision
) -> ScaledPlan:
    """One deployment's plan for ``decision``'s demand, inside ``maxReplicas``, keeping the
    running placement within the hysteresis margin."""
    chosen = _scaled(request, cluster, policy, decision)
    return _kept(request, cluster, policy, decision, chosen) or chosen


def _scaled(
    request: DeploymentRequest, cluster: Any, policy: scaling.Policy, decision: scaling.Decision
) -> ScaledPlan:
    """The plan for ``decision``'s demand, inside ``maxReplicas``, without hysteresis."""
    spec = scaling.planning_spec(request.spec, decision, policy, request.current)
    plan = plan_deployment(dataclasses.replace(request, spec=spec), cluster)
    if not needs_cap(plan, policy):
        return ScaledPlan(plan)
    at_max = scaling.at_max_spec(request.spec, policy)
    capped = plan_deployment(dataclasses.replace(request, spec=at_max), cluster)
    return settle(plan, capped, policy, decision)


def _kept(
    request: DeploymentRequest,
    cluster: Any,
    policy: scaling.Policy,
    decision: scaling.Decision,
    chosen: ScaledPlan,
) -> ScaledPlan | None:
    """The running placement sized for the demand, when ``chosen`` would move it but the
    demand is within ``MOVE_MARGIN`` of one at which the running one is the cheapest; else
    None. Not for a consolidation (``request.target``: its own threshold decided that move)."""
    current = request.current
    new = chosen.plan.placement
    if current is None or decision.idle or request.target is not None:
        return None
    if chosen.plan.phase != "Placed" or new is None:
        return None
    if new.where() == current.where():
        return None  # no move: a scale in place, or nothing at all
    pinned = dataclasses.replace(request, spec=scaling.pinned_spec(request.spec, current))
    kept = _scaled(pinned, cluster, policy, decision)
    if not _serves(kept, current):
        return None  # it no longer serves the whole demand (room, maxReplicas, SLO): move
    for near in scaling.near(decision):
        mine = _scaled(pinned, cluster, policy, near)
        if _serves(mine, current) and _as_cheap(mine, _scaled(request, cluster, policy, near)):
            break
    else:
        return None  # the demand is past the margin: the move follows it
    assert chosen.plan.cost is not None and kept.plan.cost is not None
    saving = kept.plan.cost.per_hour - chosen.plan.cost.per_hour
    why = (
        f"${chosen.plan.cost.per_hour:.2f}/h (saves ${saving:.2f}/h), but the demand "
        f"{decision.planned:.4g} tok/s is within {scaling.MOVE_MARGIN:.0%} of one at which the "
        "running placement is the cheapest: it stays (hysteresis), so that a demand swinging "
        "around the threshold does not move it back and forth"
    )
    cheaper = Alternative(
        pool=new.pool,
        gpu_model=new.gpu_model,
        precision=new.precision,
        kv_cache_dtype=new.kv_cache_dtype,
        tier=new.tier,
        variant=new.variant,
        gpus_per_replica=new.gpus_per_replica,
        replicas=new.replicas,
        per_hour=chosen.plan.cost.per_hour,
        reason=why,
        code="KeptRunning",
    )
    others = tuple(a for a in chosen.plan.alternatives if not _names(a, current))
    plan = dataclasses.replace(
        kept.plan,
        alternatives=(cheaper, *others),
        message=f"{kept.plan.message} (the running placement, kept: {cheaper.reason})",
    )
    return ScaledPlan(plan, kept.needed)


def _serves(scaled: ScaledPlan, current: PlacementStatus) -> bool:
    """The plan is ``current`` (any replica count) and serves the whole demand."""
    plan = scaled.plan
    return (
        plan.phase == "Placed"
        and plan.placement is not None
        and plan.placement.where() == current.where()
        and scaled.needed is None
    )


def _as_cheap(mine: ScaledPlan, best: ScaledPlan) -> bool:
    """``mine`` costs no more than ``best`` (a tie counts: the planner breaks cost ties on
    precision, and a move for a tie saves nothing)."""
    if mine.plan.cost is None or best.plan.cost is None:
        return False
    return mine.plan.cost.per_hour <= best.plan.cost.per_hour + 1e-9


def _names(alternative: Alternative, placement: PlacementStatus) -> bool:
    """Whether ``alternative`` is ``placement`` (any replica count)."""
    return (
        alternative.pool,
        alternative.precision,
        alternative.kv_cache_dtype,
        alternative.tier,
        alternative.variant,
        alternative.gpus_per_replica,
    ) == (
        placement.pool,
        placement.precision,
        placement.kv_cache_dtype,
        placement.tier,
        placement.variant,
        placement.gpus_per_replica,
    )

"""The plan for a scaled deployment: the planner run on the demand ``scaling`` decided.

One place for the chain the operator and ``memplace plan`` share: plan the planned demand
(``scaling.planning_spec``); when that needs more replicas than ``maxReplicas``, or more than
the cluster has room for (:func:`needs_cap`), plan exactly ``maxReplicas`` of the cheapest
feasible placement instead (``scaling.at_max_spec``) and say how many replicas the demand needs
(:func:`settle`; the operator then sets SLOMet=False and posts a Warning). The operator plans
one deployment at a time (:func:`plan_scaled`); ``memplace plan`` plans the whole batch, then
the capped ones again at maxReplicas, with the same three steps. Pure, like the planner.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

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
    """One deployment's plan for ``decision``'s demand, inside ``maxReplicas``."""
    spec = scaling.planning_spec(request.spec, decision, policy, request.current)
    plan = plan_deployment(dataclasses.replace(request, spec=spec), cluster)
    if not needs_cap(plan, policy):
        return ScaledPlan(plan)
    at_max = scaling.at_max_spec(request.spec, policy)
    capped = plan_deployment(dataclasses.replace(request, spec=at_max), cluster)
    return settle(plan, capped, policy, decision)

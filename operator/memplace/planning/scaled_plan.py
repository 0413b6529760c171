"""The plan for a scaled deployment: the planner run on the demand ``scaling`` decided.

One place for the chain the operator and ``memplace plan``'s tests share: plan the planned
demand (``scaling.planning_spec``); when that needs more replicas than ``maxReplicas``, or more
than the cluster has room for, plan exactly ``maxReplicas`` of the cheapest feasible placement
instead and say how many replicas the demand needs (the shell then sets SLOMet=False and posts
a Warning). Pure, like the planner.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from . import scaling
from .plan import DeploymentRequest, Plan, plan_deployment

__all__ = ["ScaledPlan", "plan_scaled"]


@dataclass(frozen=True)
class ScaledPlan:
    plan: Plan
    needed: int | None = None
    """Replicas the demand needs when maxReplicas held them below it; None = it did not."""


def plan_scaled(
    request: DeploymentRequest, cluster: Any, policy: scaling.Policy, decision: scaling.Decision
) -> ScaledPlan:
    current = request.current
    spec = scaling.planning_spec(request.spec, decision, policy, current)
    plan = plan_deployment(dataclasses.replace(request, spec=spec), cluster)
    ceiling = policy.max_replicas
    if ceiling is None:
        return ScaledPlan(plan)
    if plan.phase == "Placed" and plan.placement is not None and plan.placement.replicas <= ceiling:
        return ScaledPlan(plan)
    if plan.phase == "Invalid":
        return ScaledPlan(plan)
    at_max = scaling.at_max_spec(request.spec, policy)
    capped = plan_deployment(dataclasses.replace(request, spec=at_max), cluster)
    if capped.phase != "Placed" or capped.estimate is None:
        return ScaledPlan(plan if plan.phase == "Placed" else capped)
    needed = scaling.replicas_needed(
        decision.planned, capped.estimate.output_tokens_per_second_per_replica
    )
    return ScaledPlan(capped, needed if needed is not None and needed > ceiling else None)

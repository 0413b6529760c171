"""``status.demand``, ``status.tier`` and ``status.cost.last24h`` of a scaled plan, and the
demand a re-plan sizes for (``spec.scaling``; the loop that measures it is ``demand``).

``reconcile.plan_and_apply`` calls :func:`decision_in` before planning and :func:`status_fields`
after; the measurement loop overrides its ``SLOMet`` verdict with :func:`slo_override`.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any

from memplace.planning import cost_history, scaling
from memplace.planning.scaled_plan import ScaledPlan

from .measurement import Verdict
from .state import Key, State

__all__ = ["decision_in", "slo_override", "status_fields"]

NO_HISTORY = "spec.workload.outputTokensPerSecond (no measured history yet)"


def decision_in(status: Mapping[str, Any], policy: scaling.Policy) -> scaling.Decision:
    """The demand the last decision planned (``status.demand``), or the static floor."""
    held = status.get("demand") or {}
    planned = held.get("plannedTokensPerSecond")
    if not policy.measured or planned is None:
        if policy.measured:
            return scaling.static_decision(policy, NO_HISTORY)
        return scaling.static_decision(policy)
    source = held.get("source") or "measured"
    return scaling.Decision(float(planned), source, held.get("reason") or "", source == "idle")


def status_fields(
    state: State,
    key: Key,
    previous: Mapping[str, Any],
    decision: scaling.Decision,
    scaled: ScaledPlan,
    fields: Mapping[str, Any],
) -> dict[str, Any]:
    """``demand``, ``tier`` and ``cost`` (with ``last24h``) for the plan's status fields."""
    placement = fields.get("placement") or {}
    estimate = fields.get("estimate") or {}
    held = previous.get("demand") or {}
    replicas = int(placement.get("replicas") or 0)
    demand = {
        "source": decision.source,
        "tokensPerSecond": held.get("tokensPerSecond"),
        "window": held.get("window"),
        "plannedTokensPerSecond": round(decision.planned, 3),
        "replicasWanted": scaled.needed if scaled.needed is not None else replicas,
        "reason": decision.reason,
        "coldStartSeconds": scaling.cold_start_seconds(
            estimate.get("weightsBytes"), state.settings.load_bytes_per_second
        ),
        "lastActiveTime": held.get("lastActiveTime"),
    }
    out: dict[str, Any] = {"demand": {k: v for k, v in demand.items() if v is not None}}
    if placement:
        out["tier"] = scaling.temperature(placement.get("tier"), replicas)
    cost = fields.get("cost")
    if cost is not None:
        now = datetime.datetime.now(datetime.UTC).timestamp()
        stretches = state.costs.get(key, ())
        if not stretches and (previous.get("cost") or {}).get("perHour") is not None:
            stretches = cost_history.record((), now, float(previous["cost"]["perHour"]))
        stretches = cost_history.record(stretches, now, float(cost.get("perHour") or 0.0))
        state.costs[key] = stretches
        out["cost"] = {**cost, "last24h": cost_history.last_24h(stretches, now)}
    return out


def slo_override(status: Mapping[str, Any], verdict: Verdict) -> Verdict:
    """SLOMet=False when maxReplicas holds the replicas below what the demand needs."""
    wanted = (status.get("demand") or {}).get("replicasWanted")
    running = (status.get("placement") or {}).get("replicas")
    if wanted is None or running is None or wanted <= running:
        return verdict
    return Verdict(
        "False",
        "MaxReplicasTooLow",
        f"the demand needs {wanted} replicas; spec.scaling.maxReplicas holds it at {running}",
    )



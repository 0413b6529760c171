"""One function per Event reason on a ModelDeployment; ``kubectl describe`` shows them.

Each ``*_message`` function is pure (and unit-tested); each event function posts it through
Kopf, which creates a core/v1 Event whose ``involvedObject`` is the ModelDeployment.

==============  =======  ==================================================================
reason          type     when
==============  =======  ==================================================================
Placed          Normal   the first placement: precision, tier, pool, replicas, GiB per GPU,
                         $/h, and the best rejected alternative with its reason
Replanned       Normal   a running placement changed (spec edit, capacity, a full pool)
Unschedulable   Warning  nothing feasible fits now; reasons per pool; retried on capacity
Invalid         Warning  the spec cannot be planned at all, or the API server refused the
                         rendered Deployment or Service (422); not retried
PlacementKept   Warning  an edit is infeasible or invalid, so the running placement stays
Waiting         Warning  an input the spec names (a ConfigMap, a config source) is not there:
                         Pending, retried; Invalid after --input-timeout (once per input)
ApiError        Warning  the API server refused a write with an error retrying may not fix
                         (a 500 such as a full Service range, a quota 403, a webhook's denial):
                         its words, while the retries go on (once per message)
PoolFull        Warning  pods stayed unschedulable too long; the pool is skipped for now
MoveStarted     Normal   a re-plan moves a serving deployment: the new Deployment starts
                         beside the old one, which keeps serving (``moves``)
MoveCompleted   Normal   the new Deployment is Ready: the Service selects it, the old is gone
MoveAbandoned   Warning  the new Deployment did not become Ready (unschedulable, timed out)
                         or the re-plan returned: it is deleted, the old one serves on
MoveDeferred    Normal   a re-plan would move it inside --min-move-interval: kept until then
SLOAtRisk       Warning  the measured p95 missed the SLO in two consecutive windows (once
                         per streak)
EstimateDrift   Normal   a measured figure differs from the estimate by more than 25 %
                         (once per figure, until it comes back)
Scaled          Normal   the demand (spec.scaling) changed the replicas or the tier: from,
                         to, and the demand that drove it
TooFewReplicas  Warning  the demand needs more replicas than spec.scaling.maxReplicas: how
                         many it needs (once per figure)
==============  =======  ==================================================================
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import kopf

__all__ = [
    "REASONS",
    "estimate_drift",
    "estimate_drift_message",
    "invalid",
    "move_abandoned",
    "move_completed",
    "move_deferred",
    "move_started",
    "placed",
    "placed_message",
    "placement_kept",
    "pool_full",
    "replanned",
    "slo_at_risk",
    "scaled",
    "summary",
    "too_few_replicas",
    "unschedulable",
    "unschedulable_message",
    "waiting",
    "api_error",
]

REASONS = (
    "Placed",
    "Replanned",
    "Unschedulable",
    "Invalid",
    "PlacementKept",
    "Waiting",
    "ApiError",
    "PoolFull",
    "MoveStarted",
    "MoveCompleted",
    "MoveAbandoned",
    "MoveDeferred",
    "SLOAtRisk",
    "EstimateDrift",
    "Scaled",
    "TooFewReplicas",
)
GIB = 1024**3


def summary(
    placement: Mapping[str, Any],
    estimate: Mapping[str, Any] | None = None,
    cost: Mapping[str, Any] | None = None,
) -> str:
    """``int4 gpu on a100-80: 2 x 1 GPU, 14.2 GiB/GPU, $7.40/h``."""
    text = (
        f"{placement.get('precision')} {placement.get('tier')} on {placement.get('pool')}: "
        f"{placement.get('replicas')} x {placement.get('gpusPerReplica')} GPU"
    )
    if placement.get("variant"):
        text += f" ({placement['variant']})"
    per_gpu = (estimate or {}).get("totalBytesPerGpu")
    if per_gpu:
        text += f", {per_gpu / GIB:.1f} GiB/GPU"
    per_hour = (cost or {}).get("perHour")
    if per_hour is not None:
        text += f", ${per_hour:.2f}/h"
    return text


def _alternative(alternative: Mapping[str, Any]) -> str:
    where = " ".join(str(alternative[key]) for key in ("precision", "tier") if alternative.get(key))
    pool = alternative.get("pool")
    head = f"{where} on {pool}" if pool else where or "candidate"
    return f"{head}: {alternative.get('reason')}"


def placed_message(fields: Mapping[str, Any]) -> str:
    """The Placed message: the choice, then the best rejected alternative and why it lost."""
    text = "placed " + summary(
        fields.get("placement") or {}, fields.get("estimate"), fields.get("cost")
    )
    alternatives: Sequence[Mapping[str, Any]] = fields.get("alternatives") or []
    if alternatives:
        text += f"; next best: {_alternative(alternatives[0])}"
    return text


def unschedulable_message(fields: Mapping[str, Any]) -> str:
    """Why nothing fits, one reason per pool (the first rejection seen for each)."""
    per_pool: dict[str, str] = {}
    for alternative in fields.get("alternatives") or []:
        per_pool.setdefault(str(alternative.get("pool") or "-"), str(alternative.get("reason")))
    reasons = "; ".join(f"{pool}: {reason}" for pool, reason in per_pool.items())
    head = fields.get("message") or "no feasible placement"
    return f"{head}" + (f" ({reasons})" if reasons else "")


def placed(body: Any, fields: Mapping[str, Any]) -> None:
    kopf.info(body, reason="Placed", message=placed_message(fields))


def replanned(body: Any, old: Mapping[str, Any], fields: Mapping[str, Any], why: str) -> None:
    new = summary(fields.get("placement") or {}, fields.get("estimate"), fields.get("cost"))
    kopf.info(body, reason="Replanned", message=f"{why}: {summary(old)} -> {new}")


def unschedulable(body: Any, fields: Mapping[str, Any]) -> None:
    kopf.warn(body, reason="Unschedulable", message=unschedulable_message(fields))


def invalid(body: Any, message: str) -> None:
    kopf.warn(body, reason="Invalid", message=message)


def waiting(body: Any, message: str) -> None:
    kopf.warn(body, reason="Waiting", message=message)


def api_error(body: Any, message: str, reason: str = "ApiError") -> None:
    kopf.warn(body, reason=reason, message=message)


def placement_kept(body: Any, running: Mapping[str, Any], why: str) -> None:
    kopf.warn(
        body,
        reason="PlacementKept",
        message=f"{why}; keeping the running placement {summary(running)}",
    )


def pool_full(body: Any, pool: str, stuck: int, after_seconds: float) -> None:
    kopf.warn(
        body,
        reason="PoolFull",
        message=f"{stuck} pod(s) unschedulable on pool {pool} for over "
        f"{after_seconds:.0f}s; trying the next candidate",
    )


def move_started(body: Any, move: Mapping[str, Any]) -> None:
    kopf.info(
        body,
        reason="MoveStarted",
        message=f"{move.get('toDeployment')} starts beside {move.get('fromDeployment')} to run "
        f"{summary(move.get('placement') or {})}; {move.get('fromDeployment')} serves until "
        "it is Ready",
    )


def move_completed(body: Any, move: Mapping[str, Any], progress: str) -> None:
    kopf.info(
        body,
        reason="MoveCompleted",
        message=f"{move.get('toDeployment')} is Ready ({progress}): the Service selects it and "
        f"{move.get('fromDeployment')} is deleted; now {summary(move.get('placement') or {})}",
    )


def move_abandoned(body: Any, move: Mapping[str, Any], why: str) -> None:
    kopf.warn(
        body,
        reason="MoveAbandoned",
        message=f"{why}: {move.get('toDeployment')} is deleted and {move.get('fromDeployment')} "
        "keeps serving",
    )


def move_deferred(body: Any, message: str) -> None:
    kopf.info(body, reason="MoveDeferred", message=message)


def slo_at_risk(body: Any, verdict: str, window: str) -> None:
    kopf.warn(
        body,
        reason="SLOAtRisk",
        message=f"the SLO was missed in two consecutive {window} windows: {verdict}",
    )


def estimate_drift_message(ratios: Mapping[str, float], window: str) -> str:
    """``measured/estimated over 5m: timePerOutputToken 1.62 (62 % slower/larger)``."""
    parts = [
        f"{name} {ratio:.2f} ({abs(ratio - 1) * 100:.0f} % "
        f"{'over' if ratio > 1 else 'under'} the estimate)"
        for name, ratio in sorted(ratios.items())
    ]
    return f"measured/estimated over {window}: " + "; ".join(parts)


def estimate_drift(body: Any, ratios: Mapping[str, float], window: str) -> None:
    kopf.info(body, reason="EstimateDrift", message=estimate_drift_message(ratios, window))


def scaled(body: Any, old: Mapping[str, Any], new: Mapping[str, Any], demand: str) -> None:
    """``2 -> 0 replicas (hot -> cold) on l4: no requests for 600s …``."""
    before, after = old.get("replicas"), new.get("replicas")
    kopf.info(
        body,
        reason="Scaled",
        message=f"{before} -> {after} replicas ({old.get('heat')} -> {new.get('heat')}) on "
        f"{new.get('pool')}: {demand}",
    )


def too_few_replicas(body: Any, needed: int, ceiling: int, demand: str) -> None:
    kopf.warn(
        body,
        reason="TooFewReplicas",
        message=f"the demand needs {needed} replicas, spec.scaling.maxReplicas is {ceiling}: "
        f"running {ceiling}, the SLO is not met ({demand})",
    )


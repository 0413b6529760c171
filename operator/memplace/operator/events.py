"""One function per Event reason on a ModelDeployment; ``kubectl describe`` shows them.

Each ``*_message`` function is pure (and unit-tested); each event function posts it through
Kopf, which creates a core/v1 Event whose ``involvedObject`` is the ModelDeployment.

==============  =======  ==================================================================
reason          type     when
==============  =======  ==================================================================
Placed          Normal   the first placement: precision, tier, pool, replicas, GiB per GPU,
                         $/h, and the best rejected alternative with its reason
Replanned       Normal   a running placement changed (spec edit, capacity, a full pool): before
                         and after, each with its GiB per GPU, $/h, TPOT and TTFT
Unschedulable   Warning  nothing feasible fits now; reasons per pool; retried on capacity
Invalid         Warning  the spec cannot be planned at all, or the API server refused the
                         rendered Deployment or Service (422); not retried
PlacementKept   Warning  an edit is infeasible or invalid, so the running placement stays
                         (a calibrated re-plan that finds nothing better: once per streak,
                         ``muted``)
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

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from contextvars import ContextVar
from typing import Any

import kopf

__all__ = [
    "REASONS",
    "estimate_drift",
    "estimate_drift_message",
    "invalid",
    "latency",
    "move_abandoned",
    "move_completed",
    "move_deferred",
    "move_started",
    "muted",
    "placed",
    "placed_message",
    "placement_kept",
    "pool_full",
    "replanned",
    "replanned_message",
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

_MUTED: ContextVar[frozenset[str]] = ContextVar("memplace_muted_events", default=frozenset())


@contextlib.contextmanager
def muted(*reasons: str) -> Iterator[None]:
    """Post no event of these reasons inside the block (this task only).

    For a caller that knows the event would only repeat what it already said with a new count:
    the measurement loop re-plans a deployment whose calibrated estimate misses the SLO every
    window, and when nothing better exists each re-plan keeps the placement with a message whose
    rejection reasons hold the profile's sample count (``calibrate``). The re-plan still runs
    (a pool added, room freed or a factor that eases is acted on) and still writes status."""
    token = _MUTED.set(_MUTED.get() | frozenset(reasons))
    try:
        yield
    finally:
        _MUTED.reset(token)


def _info(body: Any, reason: str, message: str) -> None:
    if reason not in _MUTED.get():
        kopf.info(body, reason=reason, message=message)


def _warn(body: Any, reason: str, message: str) -> None:
    if reason not in _MUTED.get():
        kopf.warn(body, reason=reason, message=message)


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
    _info(body, "Placed", placed_message(fields))


def latency(estimate: Mapping[str, Any] | None) -> str:
    """``, TPOT 39.5 ms, TTFT 180 ms``: the estimated figures there are ("" for none)."""
    text = ""
    tpot = (estimate or {}).get("timePerOutputTokenMs")
    if tpot is not None:
        text += f", TPOT {tpot:.1f} ms"
    ttft = (estimate or {}).get("timeToFirstTokenMs")
    if ttft is not None:
        text += f", TTFT {ttft:.0f} ms"
    return text


def replanned_message(
    previous: Mapping[str, Any], old: Mapping[str, Any], fields: Mapping[str, Any], why: str
) -> str:
    """``why: before: bf16 gpu on a100: 1 x 1 GPU, 17.9 GiB/GPU, $3.75/h, TPOT 39.5 ms -> after:
    …``: both sides with what was estimated and paid, so the event alone says what the re-plan
    bought. ``previous``: the status the re-plan started from (its ``estimate`` and ``cost`` are
    the running placement's ``old``); ``fields``: the new plan's."""
    before_estimate, before_cost = previous.get("estimate"), previous.get("cost")
    after_estimate = fields.get("estimate")
    before = summary(old, before_estimate, before_cost) + latency(before_estimate)
    after = summary(fields.get("placement") or {}, after_estimate, fields.get("cost"))
    return f"{why}: before: {before} -> after: {after}{latency(after_estimate)}"


def replanned(body: Any, old: Mapping[str, Any], fields: Mapping[str, Any], why: str) -> None:
    """The body is the object as it was planned: its status still holds the running placement
    ``old`` with that placement's estimate and cost (the "before")."""
    previous = (body.get("status") if body is not None else None) or {}
    _info(body, "Replanned", replanned_message(previous, old, fields, why))


def unschedulable(body: Any, fields: Mapping[str, Any]) -> None:
    _warn(body, "Unschedulable", unschedulable_message(fields))


def invalid(body: Any, message: str) -> None:
    _warn(body, "Invalid", message)


def waiting(body: Any, message: str) -> None:
    _warn(body, "Waiting", message)


def api_error(body: Any, message: str, reason: str = "ApiError") -> None:
    _warn(body, reason, message)


def placement_kept(body: Any, running: Mapping[str, Any], why: str) -> None:
    _warn(
        body,
        "PlacementKept",
        f"{why}; keeping the running placement {summary(running)}",
    )


def pool_full(body: Any, pool: str, stuck: int, after_seconds: float) -> None:
    _warn(
        body,
        "PoolFull",
        f"{stuck} pod(s) unschedulable on pool {pool} for over "
        f"{after_seconds:.0f}s; trying the next candidate",
    )


def move_started(body: Any, move: Mapping[str, Any]) -> None:
    _info(
        body,
        "MoveStarted",
        f"{move.get('toDeployment')} starts beside {move.get('fromDeployment')} to run "
        f"{summary(move.get('placement') or {})}; {move.get('fromDeployment')} serves until "
        "it is Ready",
    )


def move_completed(body: Any, move: Mapping[str, Any], progress: str) -> None:
    _info(
        body,
        "MoveCompleted",
        f"{move.get('toDeployment')} is Ready ({progress}): the Service selects it and "
        f"{move.get('fromDeployment')} is deleted; now {summary(move.get('placement') or {})}",
    )


def move_abandoned(body: Any, move: Mapping[str, Any], why: str) -> None:
    _warn(
        body,
        "MoveAbandoned",
        f"{why}: {move.get('toDeployment')} is deleted and {move.get('fromDeployment')} "
        "keeps serving",
    )


def move_deferred(body: Any, message: str) -> None:
    _info(body, "MoveDeferred", message)


def slo_at_risk(body: Any, verdict: str, window: str) -> None:
    _warn(
        body,
        "SLOAtRisk",
        f"the SLO was missed in two consecutive {window} windows: {verdict}",
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
    _info(body, "EstimateDrift", estimate_drift_message(ratios, window))


def scaled(body: Any, old: Mapping[str, Any], new: Mapping[str, Any], demand: str) -> None:
    """``2 -> 0 replicas (hot -> cold) on l4: no requests for 600s …``."""
    before, after = old.get("replicas"), new.get("replicas")
    _info(
        body,
        "Scaled",
        f"{before} -> {after} replicas ({old.get('heat')} -> {new.get('heat')}) on "
        f"{new.get('pool')}: {demand}",
    )


def too_few_replicas(body: Any, needed: int, ceiling: int, demand: str) -> None:
    _warn(
        body,
        "TooFewReplicas",
        f"the demand needs {needed} replicas, spec.scaling.maxReplicas is {ceiling}: "
        f"running {ceiling}, the SLO is not met ({demand})",
    )

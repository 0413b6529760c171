"""What a reconcile writes to ``status``: phase, plan fields and the conditions. Pure.

Conditions follow Kubernetes' ``metav1.Condition``: ``lastTransitionTime`` moves only when the
condition's ``status`` flips, so an unchanged outcome rewrites nothing a human would notice.

- ``Valid``: the spec (and the model config it names) can be planned at all.
- ``Placed``: a placement is chosen and its Deployment exists (also True while an infeasible
  edit keeps the running placement: reason ``PlacementKept``).
- ``Ready``: the Deployment has all its replicas available.

A deployment the operator has seen but could not plan yet (a ConfigMap that does not exist, a
config source that does not answer) is ``Pending``: :func:`pending_patch` says what it waits for
in ``message`` and in the ``Placed`` condition (reason ``Waiting``). A deployment already running
keeps its phase and placement: only the message and the ``Placed`` condition say what the new
generation waits for.

The operator writes this dict as a merge patch to the ``/status`` subresource; ``None`` values
clear fields that no longer apply (an Unschedulable deployment has no placement).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

__all__ = [
    "Outcome",
    "Readiness",
    "pending_patch",
    "readiness",
    "set_condition",
    "status_patch",
]

PLAN_FIELDS = ("placement", "estimate", "cost", "alternatives", "message", "adapters")
Kind = Literal["placed", "unschedulable", "invalid", "kept"]


@dataclass(frozen=True)
class Outcome:
    """What the reconcile decided.

    ``fields`` are the plan's camelCase status fields (``Plan.status_fields()``); for ``kept``
    they are the failed plan's, and the running placement stays in status untouched.
    """

    kind: Kind
    fields: Mapping[str, Any]
    reason: str = ""
    message: str = ""


@dataclass(frozen=True)
class Readiness:
    """The owned Deployment's availability."""

    ready: bool
    reason: str
    message: str


def readiness(deployment: Mapping[str, Any] | None) -> Readiness:
    """Ready when every desired replica of the current Deployment generation is available."""
    if deployment is None:
        return Readiness(False, "NoDeployment", "no Deployment runs this model")
    desired = int(deployment.get("spec", {}).get("replicas", 1) or 0)
    status = deployment.get("status") or {}
    available = int(status.get("availableReplicas") or 0)
    generation = int(deployment.get("metadata", {}).get("generation") or 0)
    observed = int(status.get("observedGeneration") or 0)
    if observed < generation:
        return Readiness(False, "Progressing", "the Deployment is rolling out")
    if available >= desired:
        return Readiness(True, "Available", f"{available}/{desired} replicas available")
    return Readiness(False, "Unavailable", f"{available}/{desired} replicas available")


def set_condition(
    conditions: Sequence[Mapping[str, Any]],
    type_: str,
    status: bool | Literal["True", "False", "Unknown"],
    reason: str,
    message: str,
    *,
    generation: int | None,
    now: datetime,
) -> list[dict[str, Any]]:
    """Conditions with ``type_`` set; its lastTransitionTime kept when the status is unchanged.

    ``status``: a bool, or the condition's own text (``Unknown`` needs it)."""
    text = status if isinstance(status, str) else ("True" if status else "False")
    result: list[dict[str, Any]] = []
    found = False
    for condition in conditions:
        if condition.get("type") != type_:
            result.append(dict(condition))
            continue
        found = True
        changed = condition.get("status") != text
        moved = _timestamp(now) if changed else condition.get("lastTransitionTime")
        moved = moved or _timestamp(now)
        result.append(_condition(type_, text, reason, message, generation, moved))
    if not found:
        result.append(_condition(type_, text, reason, message, generation, _timestamp(now)))
    return result


def status_patch(
    previous: Mapping[str, Any] | None,
    outcome: Outcome,
    ready: Readiness,
    *,
    generation: int | None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The merge patch for ``status``: fields, phase, observedGeneration and conditions."""
    now = now or datetime.now(UTC)
    previous = previous or {}
    conditions: list[dict[str, Any]] = list(previous.get("conditions") or [])
    patch: dict[str, Any] = {"observedGeneration": generation}
    fields = dict(outcome.fields)
    message = fields.get("message") or outcome.message

    def set_(type_: str, status: bool, reason: str, text: str) -> None:
        nonlocal conditions
        conditions = set_condition(
            conditions, type_, status, reason, text, generation=generation, now=now
        )

    if outcome.kind == "placed":
        for name in PLAN_FIELDS:
            patch[name] = fields.get(name)
        patch["phase"] = "Ready" if ready.ready else "Placed"
        set_("Valid", True, "Valid", "the spec can be planned")
        set_("Placed", True, outcome.reason or "Placed", message or "placed")
        set_("Ready", ready.ready, ready.reason, ready.message)
    elif outcome.kind == "kept":
        patch["alternatives"] = fields.get("alternatives")
        patch["message"] = outcome.message
        patch["phase"] = "Ready" if ready.ready else "Placed"
        invalid = fields.get("phase") == "Invalid"
        set_(
            "Valid",
            not invalid,
            "Invalid" if invalid else "Valid",
            fields.get("message") or "" if invalid else "the spec can be planned",
        )
        set_("Placed", True, outcome.reason or "PlacementKept", outcome.message)
        set_("Ready", ready.ready, ready.reason, ready.message)
    else:
        phase = "Invalid" if outcome.kind == "invalid" else "Unschedulable"
        for name in PLAN_FIELDS:
            patch[name] = fields.get(name)
        patch["message"] = message
        patch["phase"] = phase
        if outcome.kind == "invalid":
            set_("Valid", False, outcome.reason or "Invalid", message or "invalid")
        else:
            set_("Valid", True, "Valid", "the spec can be planned")
        set_("Placed", False, phase, message or phase)
        set_("Ready", False, "NotPlaced", "nothing runs: the deployment is not placed")
    patch["conditions"] = conditions
    return patch


def pending_patch(
    previous: Mapping[str, Any] | None,
    waiting_for: str,
    *,
    generation: int | None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The merge patch for a deployment that waits for an input before it can be planned."""
    now = now or datetime.now(UTC)
    previous = previous or {}
    conditions: list[dict[str, Any]] = list(previous.get("conditions") or [])
    running = previous.get("phase") in ("Placed", "Ready") and previous.get("placement")
    if running:
        message = (
            f"generation {generation}: waiting for {waiting_for}; the running placement is kept"
        )
        conditions = set_condition(
            conditions, "Placed", True, "Waiting", message, generation=generation, now=now
        )
        return {"message": message, "conditions": conditions}
    message = f"waiting for {waiting_for}"
    conditions = set_condition(
        conditions, "Placed", False, "Waiting", message, generation=generation, now=now
    )
    conditions = set_condition(
        conditions,
        "Ready",
        False,
        "NotPlaced",
        "nothing runs: the deployment is not placed yet",
        generation=generation,
        now=now,
    )
    return {
        "phase": "Pending",
        "message": message,
        "observedGeneration": generation,
        "conditions": conditions,
    }


def _condition(
    type_: str, status: str, reason: str, message: str, generation: int | None, when: str
) -> dict[str, Any]:
    condition: dict[str, Any] = {
        "type": type_,
        "status": status,
        "reason": reason,
        "message": message[:1024],
        "lastTransitionTime": when,
    }
    if generation is not None:
        condition["observedGeneration"] = generation
    return condition


def _timestamp(now: datetime) -> str:
    return now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

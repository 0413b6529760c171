"""A move: a running placement replaced by another without a gap. Pure: no API calls, no clock.

When a re-plan changes where or how a running deployment runs (pool, precision, KV type, tier,
variant, GPUs, offload: :func:`is_move`), the new Deployment (the *successor*) is created beside
the serving one, the Service switches to it once it is Ready, then the serving one is deleted.
A pure change of the replica count is applied in place, and so is any change to a deployment
whose Deployment has no Ready replica: there is nothing serving to protect. A change of the pod
template alone (image, extra args) with the same placement is a rolling update of the serving
Deployment, whose surge keeps it serving.

::

    re-plan moves it ──> status.move names both Deployments; the successor is created
      │  successor Ready (readyReplicas ≥ replicas, observedGeneration current)
      ├──> the Service selects the successor, the old Deployment is deleted;
      │    status.placement/estimate/cost = move's, move cleared, lastMoveTime set  MoveCompleted
      │  its pods unschedulable past --stuck-after, not Ready within --move-timeout,
      │  or a re-plan back to the running placement
      └──> the successor is deleted, the old one untouched;
           move cleared, lastMoveTime set                                          MoveAbandoned

Crash safety: every state is in the cluster. ``status.move`` says that a move is in flight and
to which Deployment; the Service's selector says which Deployment serves. A restarted operator
finishes a move whose successor is Ready (the switch and the delete are idempotent), abandons one
past its deadline, and deletes an owned Deployment that neither serves nor is the recorded
successor (one created just before a crash and never recorded). A restart never starts a move by
itself: the resume handler keeps the running placement (:func:`decide`, trigger
``RESTART``). One move at a time: a re-plan to a third placement while a move is in flight waits
until it ends.

Rate limit: a move starts only ``--min-move-interval`` after ``status.lastMoveTime``
(:func:`allowed_at`); the first placement is not a move.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import ValidationError

from memplace.api import PlacementStatus

from . import render

__all__ = [
    "RESTART",
    "Decision",
    "Step",
    "allowed_at",
    "completed",
    "started",
    "decide",
    "deferral_over",
    "is_move",
    "next_step",
    "parse_time",
    "progress",
    "ready",
    "serves",
    "timestamp",
]

RESTART = "operator restart"
"""The trigger of the resume handler: a re-plan on start that never moves a running placement."""


def is_move(old: PlacementStatus, new: PlacementStatus) -> bool:
    """Whether going from ``old`` to ``new`` needs a new Deployment (not a pure scale)."""
    return render.placement_id(old) != render.placement_id(new)


def ready(deployment: Mapping[str, Any] | None) -> bool:
    """Every desired replica of the Deployment's current generation is Ready."""
    if deployment is None:
        return False
    status = deployment.get("status") or {}
    generation = int((deployment.get("metadata") or {}).get("generation") or 0)
    if int(status.get("observedGeneration") or 0) < generation:
        return False
    wanted = int((deployment.get("spec") or {}).get("replicas", 1) or 0)
    return int(status.get("readyReplicas") or 0) >= wanted


def serves(deployment: Mapping[str, Any] | None) -> bool:
    """The Deployment has at least one Ready replica: replacing it in place would cut traffic."""
    if deployment is None:
        return False
    return int((deployment.get("status") or {}).get("readyReplicas") or 0) > 0


def progress(deployment: Mapping[str, Any] | None) -> str:
    """``1/2 replicas ready``, or that the Deployment is not there (yet)."""
    if deployment is None:
        return "the Deployment is not there yet"
    wanted = int((deployment.get("spec") or {}).get("replicas", 1) or 0)
    got = int((deployment.get("status") or {}).get("readyReplicas") or 0)
    return f"{got}/{wanted} replicas ready"


def parse_time(text: Any) -> datetime.datetime | None:
    """An RFC 3339 timestamp as an aware datetime; None for anything else."""
    if not isinstance(text, str):
        return None
    try:
        parsed = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


def timestamp(now: datetime.datetime) -> str:
    return now.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def allowed_at(status: Mapping[str, Any], interval_seconds: float) -> datetime.datetime | None:
    """When the next move may start: ``lastMoveTime`` + the interval (None: any time)."""
    last = parse_time(status.get("lastMoveTime"))
    return None if last is None else last + datetime.timedelta(seconds=interval_seconds)


def deferral_over(
    status: Mapping[str, Any], interval_seconds: float, now: datetime.datetime
) -> bool:
    """A re-plan kept the placement for the rate limit (Placed reason ``MoveDeferred``) and the
    interval has passed: time to re-plan rather than wait for the next inventory change."""
    placed = next((c for c in status.get("conditions") or [] if c.get("type") == "Placed"), {})
    if placed.get("reason") != "MoveDeferred":
        return False
    when = allowed_at(status, interval_seconds)
    return when is None or now >= when


Verdict = Literal["apply", "start", "continue", "cancel", "wait", "defer", "keep"]


@dataclass(frozen=True)
class Decision:
    """What a re-plan does to a running deployment.

    - ``apply``: in place (first placement, a pure scale, nothing serving yet);
    - ``start``: create the successor beside the serving Deployment;
    - ``continue``: the move in flight already goes there;
    - ``cancel``: the re-plan returns to the running placement: delete the successor, then
      apply in place;
    - ``wait``: a move to another placement is in flight; this plan waits for it to end;
    - ``defer``: the rate limit holds the running placement until ``message`` says;
    - ``keep``: the operator restarted; the running placement stays.
    """

    verdict: Verdict
    message: str = ""


def decide(
    status: Mapping[str, Any],
    running: PlacementStatus | None,
    new: PlacementStatus,
    serving: Mapping[str, Any] | None,
    *,
    trigger: str,
    now: datetime.datetime,
    interval_seconds: float,
) -> Decision:
    """What to do with plan ``new`` given the status and the serving Deployment."""
    move = status.get("move")
    if move:
        try:
            target = PlacementStatus.model_validate(move.get("placement") or {})
        except ValidationError:
            return Decision("cancel", "the move in flight is unreadable")
        if not is_move(target, new):
            return Decision("continue")
        if serving is not None and serving["metadata"].get("name") == move.get("toDeployment"):
            return Decision(  # switched before a crash: only finishing it is safe
                "wait",
                f"the Service already selects {move.get('toDeployment')}; the move "
                "completes first, then this plan is made",
            )
        if running is not None and not is_move(running, new):
            return Decision("cancel", "the re-plan returned to the running placement")
        return Decision(
            "wait",
            f"a move to {move.get('toDeployment')} is in flight; this plan waits until it ends",
        )
    if running is None or not is_move(running, new):
        return Decision("apply")
    if trigger == RESTART:
        return Decision(
            "keep",
            "the operator restarted: the running placement is kept, and the move is "
            "re-considered on the next change",
        )
    if not serves(serving):
        return Decision("apply")  # no Ready replica: nothing to keep serving
    when = allowed_at(status, interval_seconds)
    if when is not None and now < when:
        return Decision(
            "defer",
            f"a move is allowed from {timestamp(when)} (--min-move-interval after the last "
            f"move at {status.get('lastMoveTime')}); the running placement is kept until then",
        )
    return Decision("start")


@dataclass(frozen=True)
class Step:
    """What the resync loop does with a move in flight: ``complete``, ``abandon`` or ``wait``."""

    action: Literal["complete", "abandon", "wait"]
    reason: str


def next_step(
    move: Mapping[str, Any],
    successor: Mapping[str, Any] | None,
    stuck_pools: list[str],
    *,
    now: datetime.datetime,
    timeout_seconds: float,
) -> Step:
    """Complete once the successor is Ready; abandon when its pods cannot be scheduled or it
    is not Ready in time (an unreadable ``startedAt`` counts as timed out)."""
    if ready(successor):
        return Step("complete", progress(successor))
    if stuck_pools:
        return Step(
            "abandon",
            f"the new pods stay unschedulable on pool {', '.join(sorted(stuck_pools))}",
        )
    started = parse_time(move.get("startedAt"))
    if started is None or (now - started).total_seconds() >= timeout_seconds:
        return Step(
            "abandon",
            f"{move.get('toDeployment')} was not Ready within {timeout_seconds:.0f}s "
            f"({progress(successor)})",
        )
    return Step("wait", progress(successor))


def started(
    fields: Mapping[str, Any],
    from_deployment: str,
    successor: Mapping[str, Any],
    *,
    trigger: str,
    now: datetime.datetime,
) -> dict[str, Any]:
    """``status.move`` for a move to the plan ``fields`` (its placement, estimate, cost)."""
    move = {
        "fromDeployment": from_deployment,
        "toDeployment": successor["metadata"]["name"],
        "placement": fields.get("placement"),
        "estimate": fields.get("estimate"),
        "cost": fields.get("cost"),
        "startedAt": timestamp(now),
        "trigger": trigger,
        "progress": progress(successor),
    }
    return {k: v for k, v in move.items() if v is not None}


def completed(move: Mapping[str, Any], now: datetime.datetime) -> dict[str, Any]:
    """The status fields once the successor serves: its plan becomes the running one."""
    return {
        "placement": move.get("placement"),
        "estimate": move.get("estimate"),
        "cost": move.get("cost"),
        "move": None,
        "lastMoveTime": timestamp(now),
    }

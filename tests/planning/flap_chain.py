"""The operator's decision chain for one scaled deployment, replayed on a simulated clock.

Every measurement window the operator folds the measured demand into ``scaling.step``
(``operator.demand.follow``); when the planned demand changes it re-plans through
``scaled_plan.plan_scaled`` and hands the plan to ``operator.moves.decide``, which applies a
pure scale in place, starts a no-gap move, or defers it for ``--min-move-interval`` after the
last move (``status.lastMoveTime``, set when a move completes). The resync loop completes a move
once its successor is Ready, and re-plans when a deferred move is allowed (``deferral_over``) or
a move ended. :class:`Chain` does the same with the same pure functions and no Kubernetes: the
status is a dict shaped like the real one, the serving Deployment always has a Ready replica
(so every placement change is a move, never an in-place apply), and a successor is Ready
``move_seconds`` after it starts.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from memplace.api import ModelDeploymentSpec, PlacementStatus
from memplace.operator import moves
from memplace.planning import scaling
from memplace.planning.plan import DeploymentRequest
from memplace.planning.scaled_plan import ScaledPlan, plan_scaled

EPOCH = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
SERVING = {"metadata": {"name": "chat"}, "status": {"readyReplicas": 1}}
"""The serving Deployment as ``moves.decide`` reads it: it serves, so a change is a move."""


def when(seconds: float) -> datetime.datetime:
    return EPOCH + datetime.timedelta(seconds=seconds)


def where(placement: PlacementStatus) -> str:
    """Everything but the replica count and the nodes: ``render.placement_id``'s essence, the
    part whose change is a move (``moves.is_move``)."""
    essence = placement.to_wire()
    for key in ("replicas", "nodes"):
        essence.pop(key, None)
    return json.dumps(essence, sort_keys=True)


@dataclass
class Chain:
    spec: ModelDeploymentSpec
    cluster: Any
    interval_seconds: float = 1800.0
    """``--min-move-interval`` (the default, 30 min: ``operator.settings``)."""
    move_seconds: float = 60.0
    """From a move's start until its successor is Ready (the cold start, about 48 s for 15 GB
    at ``scaling.LOAD_BYTES_PER_SECOND``, rounded up)."""
    policy: scaling.Policy = field(init=False)
    history: scaling.History | None = field(init=False, default=None)
    status: dict[str, Any] = field(init=False, default_factory=dict)
    running: PlacementStatus | None = field(init=False, default=None)
    held: tuple[float, bool] | None = field(init=False, default=None)
    """status.demand: (plannedTokensPerSecond rounded as ``demand.follow`` does, idle)."""
    decision: scaling.Decision | None = field(init=False, default=None)
    ready_at: float | None = field(init=False, default=None)
    started: list[float] = field(init=False, default_factory=list)
    """When each move started (a successor was created)."""
    completed: list[tuple[float, str]] = field(init=False, default_factory=list)
    """When each move completed, and where it went (``where``)."""
    trace: list[tuple[float, float, int, str]] = field(init=False, default_factory=list)
    """(time, demand, running replicas, running pool) after each window."""

    def __post_init__(self) -> None:
        policy = scaling.Policy.from_spec(self.spec)
        assert policy is not None and policy.measured
        self.policy = policy

    def plan(self, decision: scaling.Decision) -> ScaledPlan:
        request = DeploymentRequest("ml", "chat", self.spec, current=self.running)
        scaled = plan_scaled(request, self.cluster, self.policy, decision)
        assert scaled.plan.phase == "Placed", scaled.plan.message
        return scaled

    def run(self, demand: Callable[[float], float], seconds: float, window: float = 30.0) -> None:
        """Measure ``demand`` (tokens/s at second t) every ``window`` seconds for ``seconds``:
        each measurement is the mean over the window before it, as a Prometheus ``rate`` is,
        so that a swing faster than the window averages out rather than aliasing."""
        t = 0.0
        while t <= seconds:
            steps = int(window)
            self.tick(t, sum(demand(t - window + i + 0.5) for i in range(steps)) / steps)
            t += window

    def tick(self, t: float, tokens_per_second: float) -> None:
        now = when(t)
        replan = False
        # The resync loop: complete a move whose successor is Ready; a deferral that is over.
        if self.ready_at is not None and t >= self.ready_at:
            move = self.status["move"]
            self.status.update(moves.completed(move, now))
            self.running = PlacementStatus.model_validate(move["placement"])
            self.completed.append((t, where(self.running)))
            self.ready_at, replan = None, True  # what waited for the move is re-planned
        if self.running is not None and moves.deferral_over(
            self.status, self.interval_seconds, now
        ):
            replan = True
        # The measurement loop (``demand.follow``).
        if self.history is None:
            self.history = scaling.start(self.policy, t)
            self.decision = scaling.static_decision(self.policy)
            self._replan(t)
        self.history, decision = scaling.step(
            self.history, self.policy, scaling.Sample(t, tokens_per_second, running=1.0)
        )
        if (round(decision.planned, 3), decision.idle) != self.held:
            self.decision, replan = decision, True
        if replan:
            self._replan(t)
        assert self.running is not None
        self.trace.append((t, tokens_per_second, self.running.replicas, self.running.pool))

    def _replan(self, t: float) -> None:
        assert self.decision is not None
        self.held = (round(self.decision.planned, 3), self.decision.idle)
        plan = self.plan(self.decision).plan
        new = plan.placement
        assert new is not None
        verdict = moves.decide(
            self.status,
            self.running,
            new,
            SERVING if self.running is not None else None,
            trigger=f"demand: {self.decision.reason}",
            now=when(t),
            interval_seconds=self.interval_seconds,
        )
        placed = {"type": "Placed", "reason": "Placed", "message": ""}
        if verdict.verdict == "apply":
            self.running = new
        elif verdict.verdict == "start":
            fields = {"placement": new.to_wire()}
            successor = {"metadata": {"name": "chat-next"}, "status": {}}
            self.status["move"] = moves.started(
                fields, "chat", successor, trigger="demand", now=when(t)
            )
            self.started.append(t)
            self.ready_at = t + self.move_seconds
        elif verdict.verdict == "cancel":
            self.status.update(move=None, lastMoveTime=moves.timestamp(when(t)))
            self.running, self.ready_at = new, None
        elif verdict.verdict == "defer":
            placed = {"type": "Placed", "reason": "MoveDeferred", "message": verdict.message}
        else:
            assert verdict.verdict in ("continue", "wait"), verdict
        self.status["conditions"] = [placed]

"""Demand → the demand a placement is sized for → replicas → tier. Pure: times are given.

``spec.scaling`` says how replicas follow the demand. Each measurement window the shell calls
:func:`step` with what Prometheus measured; it returns the new :class:`History` and a
:class:`Decision`: the demand the planner sizes the placement for (``planned``, already divided
by ``targetUtilization``), where it came from and why. The planner (``plan``) turns that demand
into replicas and picks the cheapest placement that serves it, so that a fall in demand may
make a cheaper tier win and a rise may make it lose: the tier follows the demand through the
same choice that placed it.

Why it never flaps, four guards in a row (the fourth is the shell's):

1. stabilisation windows, as the HPA does: a rise takes effect at the *lowest* demand wanted
   over ``scaleUpStabilizationSeconds`` (default 0: at once), a fall at the *highest* over
   ``scaleDownStabilizationSeconds`` (default 300 s): a demand oscillating faster than the
   scale-down window never lowers the placement;
2. a tolerance band: a change of less than :data:`TOLERANCE` of the planned demand is ignored;
3. hysteresis on moves (:data:`MOVE_MARGIN`, applied by ``scaled_plan``): the planner's choice
   changes at thresholds (a pool fills up, one more replica makes another precision or KV type
   as cheap), and a demand that swings a few percent either side of one, slower than the
   windows above, would otherwise move the deployment back and forth for nothing. The running
   placement is kept, re-sized for the demand, while it still serves it and the demand is
   within ``MOVE_MARGIN`` of one at which it is the cheapest (a tie counts);
4. moves (a new tier or pool) go through ``operator.moves`` and its ``--min-move-interval``.

Idle (``idleAfterSeconds`` without a request: no tokens, nothing running or waiting) plans
demand 0 at ``minReplicas``: 0 replicas (cold) when ``coldStart: allowed``. A missing metric
never scales: the planned demand is kept, with the reason.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from memplace.api import ModelDeploymentSpec, PlacementStatus, ScalingSpec

__all__ = [
    "LOAD_BYTES_PER_SECOND",
    "MOVE_MARGIN",
    "TOLERANCE",
    "Decision",
    "History",
    "Policy",
    "Sample",
    "at_max_spec",
    "cold_start_seconds",
    "near",
    "pinned_spec",
    "planning_spec",
    "replicas_needed",
    "start",
    "static_decision",
    "step",
    "temperature",
]

TOLERANCE = 0.1
"""Changes of less than this share of the planned demand are ignored: the HPA's default
``--horizontal-pod-autoscaler-tolerance`` (0.1; Kubernetes docs, "Horizontal Pod Autoscaling",
"Algorithm details": "the control plane skips any scaling action if the ratio is sufficiently
close to 1.0 (within a configurable tolerance, 0.1 by default)")."""

MOVE_MARGIN = TOLERANCE
"""Hysteresis on moves: the running placement stays while the planned demand is within this
share of a demand at which it is the cheapest, a cost tie included (and it still serves the
demand). The same
share as :data:`TOLERANCE`, the HPA's measure of a change too small to act on: a demand within
10% of a threshold is treated as at the threshold, so that crossing it is not a move. Together
with the tolerance band, a demand swinging up to ``MOVE_MARGIN / (1 + MOVE_MARGIN)`` (9%)
either side of a threshold moves the deployment once, the first time it crosses; wider swings
move it each way, at most once per ``--min-move-interval``. The price: near a threshold the
deployment may run a placement up to that share of demand away from the cheapest one."""

LOAD_BYTES_PER_SECOND = 15.0e9 / 47.99
"""The assumed rate weights load at on a cold start, about 0.31 GB/s: vLLM's default
safetensors loader read Llama-3-8B (about 15 GB in bf16) from an AWS gp3 SSD into an A10G in
47.99 s (NVIDIA, "Reducing Cold Start Latency for LLM Inference with NVIDIA Run:ai Model
Streamer", https://developer.nvidia.com/blog/reducing-cold-start-latency-for-llm-inference-
with-nvidia-runai-model-streamer). A conservative figure: faster storage or a streaming loader
loads several times faster; the image pull and the engine's start-up come on top."""

Source = Literal["static", "measured", "idle", "wake"]


@dataclass(frozen=True)
class Policy:
    """``spec.scaling`` and the static demand, as plain numbers."""

    measured: bool
    static_tokens_per_second: float
    min_replicas: int
    max_replicas: int | None
    target_utilization: float
    scale_up_seconds: float
    scale_down_seconds: float
    idle_after_seconds: float | None
    cold_start: bool

    @classmethod
    def from_spec(cls, spec: ModelDeploymentSpec) -> Policy | None:
        """None when ``spec.scaling`` is unset: the spec is planned as written."""
        s: ScalingSpec | None = spec.scaling
        if s is None:
            return None
        return cls(
            measured=s.demand == "Measured",
            static_tokens_per_second=spec.workload.output_tokens_per_second,
            min_replicas=s.min_replicas,
            max_replicas=s.max_replicas,
            target_utilization=s.target_utilization,
            scale_up_seconds=s.scale_up_stabilization_seconds,
            scale_down_seconds=s.scale_down_stabilization_seconds,
            idle_after_seconds=s.idle_after_seconds,
            cold_start=s.cold_start == "allowed",
        )

    @property
    def static_planned(self) -> float:
        """The static demand with the headroom: the floor while there is no history."""
        return self.static_tokens_per_second / self.target_utilization


@dataclass(frozen=True)
class Sample:
    """One window's measurement; ``tokens_per_second`` None = the metric is missing."""

    at: float
    """Seconds since any fixed epoch (the shell uses Unix time)."""
    tokens_per_second: float | None
    running: float | None = None
    """Requests being generated, all replicas together."""
    waiting: float | None = None
    """Requests queued: scale-up pressure the token rate does not show yet."""
    missing: str = ""
    """Why ``tokens_per_second`` is None."""
    wake: bool = False
    """The wake-up query (or KEDA) saw traffic for a cold model."""


@dataclass(frozen=True)
class History:
    """What the decisions remember: recent wanted demands and the last activity."""

    recommendations: tuple[tuple[float, float], ...]
    """(at, demand wanted ÷ utilisation), oldest first, within the longer window."""
    planned: float
    """The demand the running placement is sized for."""
    last_active: float
    """When requests were last seen (or when the history began)."""
    source: Source = "static"
    idle: bool = False


@dataclass(frozen=True)
class Decision:
    planned: float
    """The demand to size the placement for, tokens/s (headroom included)."""
    source: Source
    reason: str
    idle: bool
    """Plan ``minReplicas`` (0 = cold) rather than at least one replica."""


def static_decision(
    policy: Policy, reason: str = "spec.workload.outputTokensPerSecond"
) -> Decision:
    """The static demand with its headroom: what is planned before anything is measured."""
    return Decision(policy.static_planned, "static", reason, False)


def start(policy: Policy, at: float, planned: float | None = None) -> History:
    """A new history: the static demand is the first recommendation, so that it stays the
    floor until a whole scale-down window of measurements has passed (``planned`` resumes the
    value status held before an operator restart)."""
    floor = policy.static_planned
    return History(((at, floor),), floor if planned is None else planned, at)


def _busy(sample: Sample) -> bool:
    return (
        any(
            (value or 0) > 0 for value in (sample.tokens_per_second, sample.running, sample.waiting)
        )
        or sample.wake
    )


def _wanted(sample: Sample, policy: Policy) -> float:
    """Demand ÷ utilisation, raised by the queue: with ``waiting`` requests behind ``running``
    ones, the offered load is (running + waiting) ÷ running times what is served."""
    served = sample.tokens_per_second or 0.0
    running, waiting = sample.running or 0.0, sample.waiting or 0.0
    if running > 0 and waiting > 0:
        served *= (running + waiting) / running
    return served / policy.target_utilization


def step(history: History, policy: Policy, sample: Sample) -> tuple[History, Decision]:
    """Fold one window into the history; the demand to plan for, and why."""
    now = sample.at
    if sample.tokens_per_second is None and not sample.wake:
        why = sample.missing or "no measurement"
        return history, Decision(
            history.planned,
            history.source,
            f"the demand is not measured ({why}): the replicas are kept",
            history.idle,
        )
    last_active = now if _busy(sample) else history.last_active
    if history.idle and sample.wake:
        planned = max(policy.static_planned, history.planned)
        woken = History(((now, planned),), planned, now, "wake", False)
        return woken, Decision(planned, "wake", "traffic for the cold model: waking it", False)
    if policy.idle_after_seconds is not None and now - last_active >= policy.idle_after_seconds:
        idle = History(((now, 0.0),), 0.0, last_active, "idle", True)
        quiet = now - last_active
        return idle, Decision(
            0.0,
            "idle",
            f"no requests for {quiet:.0f}s (idleAfterSeconds "
            f"{policy.idle_after_seconds:.0f}): {policy.min_replicas} replicas",
            True,
        )
    wanted = _wanted(sample, policy)
    keep = max(policy.scale_up_seconds, policy.scale_down_seconds)
    recent = tuple(r for r in history.recommendations if now - r[0] <= keep) + ((now, wanted),)
    up = min(w for at, w in recent if now - at <= policy.scale_up_seconds)
    down = max(w for at, w in recent if now - at <= policy.scale_down_seconds)
    planned, source = history.planned, history.source
    measured = f"measured {sample.tokens_per_second:g} tok/s"
    if up > planned * (1 + TOLERANCE) or (planned == 0 and up > 0):
        planned, source = up, "measured"
        reason = f"{measured}: up to {planned:.4g} tok/s with headroom"
    elif down < planned * (1 - TOLERANCE):
        planned, source = down, "measured"
        reason = (
            f"{measured}: down to {planned:.4g} tok/s, the highest wanted over "
            f"{policy.scale_down_seconds:.0f}s"
        )
    else:
        reason = (
            f"{measured}: {wanted:.4g} tok/s wanted, within the stabilisation windows and "
            f"the {TOLERANCE:.0%} tolerance of {planned:.4g}"
        )
    new = History(recent, planned, last_active, source, False)
    return new, Decision(planned, source, reason, False)


def planning_spec(
    spec: ModelDeploymentSpec,
    decision: Decision,
    policy: Policy,
    current: PlacementStatus | None = None,
) -> ModelDeploymentSpec:
    """The spec the planner is given: the planned demand and the scaling bounds in place of
    ``spec.workload``'s. No maxReplicas: the cheapest placement for the whole demand is chosen;
    when it needs more than maxReplicas, the shell plans ``at_max_spec`` instead and says how
    many the demand needs (``replicas_needed``). Idle with a
    running placement, the spec is pinned to it: at zero replicas every candidate costs
    nothing, and going cold must keep the plan, not move it."""
    floor = policy.min_replicas if decision.idle else max(policy.min_replicas, 1)
    workload = spec.workload.model_copy(
        update={
            "output_tokens_per_second": decision.planned,
            "min_replicas": floor,
            "max_replicas": None,
        }
    )
    planned = spec.model_copy(update={"workload": workload})
    if decision.idle and current is not None:
        return pinned_spec(planned, current)
    return planned


def pinned_spec(spec: ModelDeploymentSpec, current: PlacementStatus) -> ModelDeploymentSpec:
    """``spec`` allowed only ``current``'s pool, tier, precision and KV type: the planner then
    sizes the running placement (its replicas) rather than choosing another. Its GPUs per
    replica and variant are not pinned: the caller checks that the plan is still ``current``."""
    placement = spec.placement.model_copy(update={"pools": [current.pool], "tiers": [current.tier]})
    quality: dict[str, object] = {"precisions": [current.precision]}
    if current.kv_cache_dtype is not None:
        quality["kv_cache_dtypes"] = [current.kv_cache_dtype]
    return spec.model_copy(
        update={"placement": placement, "quality": spec.quality.model_copy(update=quality)}
    )


def near(decision: Decision) -> tuple[Decision, Decision]:
    """The decision at the planned demand less and more :data:`MOVE_MARGIN`: where the
    hysteresis looks for the running placement."""
    return tuple(  # type: ignore[return-value]
        Decision(decision.planned * factor, decision.source, decision.reason, decision.idle)
        for factor in (1 - MOVE_MARGIN, 1 + MOVE_MARGIN)
    )


def at_max_spec(spec: ModelDeploymentSpec, policy: Policy) -> ModelDeploymentSpec | None:
    """When the demand needs more than maxReplicas (or more than the cluster has room for),
    the spec that runs exactly maxReplicas of the cheapest feasible placement; None without
    a maxReplicas."""
    if policy.max_replicas is None:
        return None
    workload = spec.workload.model_copy(
        update={
            "output_tokens_per_second": 0.0,
            "min_replicas": policy.max_replicas,
            "max_replicas": policy.max_replicas,
        }
    )
    return spec.model_copy(update={"workload": workload})


def replicas_needed(planned: float, per_replica: float | None) -> int | None:
    """Replicas of ``per_replica`` tokens/s that the planned demand needs (headroom included)."""
    if not per_replica or per_replica <= 0:
        return None
    return max(1, math.ceil(planned / per_replica - 1e-9))


def temperature(tier: str | None, replicas: int) -> Literal["hot", "warm", "cold"]:
    """status.tier: cold at zero replicas; hot in GPU memory; warm on offload or CPU."""
    if replicas == 0:
        return "cold"
    return "hot" if tier == "gpu" else "warm"


def cold_start_seconds(weights_bytes: int | None, bytes_per_second: float) -> float | None:
    """Seconds to load the weights from zero replicas, at the assumed bandwidth."""
    if not weights_bytes or bytes_per_second <= 0:
        return None
    return round(weights_bytes / bytes_per_second, 1)

"""The planner's input and output: one ``DeploymentRequest`` in, one ``Plan`` out.

Plain frozen records, so that every step (``sizing`` → ``grouping`` → ``evaluation`` →
``ranking`` → ``room`` → ``explain``, run by ``decide``) reads the same fields and the operator,
``memplace plan`` and the batch planner share them. ``plan`` re-exports both.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from memplace.api import (
    Alternative,
    CostStatus,
    EstimateStatus,
    ModelDeploymentSpec,
    PlacementStatus,
)

from .calibration import (
    Calibration,
)
from .checkpoint import Checkpoint


@dataclass(frozen=True)
class DeploymentRequest:
    """One ModelDeployment to plan, with what the shell resolved for it."""

    namespace: str
    name: str
    spec: ModelDeploymentSpec
    model_config: Mapping[str, Any] | None = None
    """config.json from ``spec.model.configMapRef`` or ``source``, when the shell fetched it."""
    current: PlacementStatus | None = None
    """The running placement: wins exact cost ties, so replanning never moves it for nothing."""
    full_pools: frozenset[str] = frozenset()
    """Pools where this deployment's pods stayed unschedulable: excluded (NoCapacity)."""
    variant_configs: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    """config.json per variant name, for variants sized by configMapRef or source."""
    calibration: Calibration | None = None
    """The PerformanceProfiles' learned factors: a candidate whose profile has enough samples
    is judged and costed on its calibrated estimates (``calibration``)."""
    checkpoints: Mapping[str | None, Checkpoint] = field(default_factory=dict)
    """The published checkpoint (``planning.checkpoint``) per variant name, None for the model
    itself, where the shell could read its safetensors headers: its bytes are the weights at
    its native precision, and its format sets that precision."""
    model_adapters: tuple[Any, ...] = ()
    """``lora.Listed``: the ModelAdapters naming this deployment as their base."""
    lora: Any = None
    """``adapters.LoraSlots`` the plan sizes in (set by ``lora.decide``, not by callers)."""

    target: PlacementStatus | None = None
    """A placement the batch planner chose for this deployment (``batch``; the operator's
    batched re-plans and consolidation): taken when it is still feasible and has room, so that
    one deployment's re-plan keeps to the batch's answer; else the cheapest, as without it."""

    @property
    def owner(self) -> tuple[str, str]:
        return (self.namespace, self.name)


@dataclass(frozen=True)
class Plan:
    """What the planner decided for one deployment: the fields of its ``status``."""

    namespace: str
    name: str
    phase: str
    """``Placed``, ``Unschedulable`` or ``Invalid``."""
    placement: PlacementStatus | None = None
    estimate: EstimateStatus | None = None
    cost: CostStatus | None = None
    alternatives: tuple[Alternative, ...] = ()
    message: str = ""
    funnel: tuple[tuple[str, int], ...] = ()
    """Candidates surviving each stage of checks: what the message summarises."""
    resolvable: bool = False
    """Unschedulable only: whether it may place later without a spec change (capacity)."""
    adapters: tuple[Any, ...] = ()
    """``AdapterStatus`` per LoRA adapter (``lora.decide``); () = the spec has none."""
    lora: Any = None
    """``adapters.LoraSlots`` of the adapters Loaded: what the engine's arguments load."""

    def status_fields(self) -> dict[str, Any]:
        """The status fields this plan sets, camelCase, every key present (null = clear)."""
        return {
            "phase": self.phase,
            "placement": None if self.placement is None else self.placement.to_wire(),
            "estimate": None if self.estimate is None else self.estimate.to_wire(),
            "cost": None if self.cost is None else self.cost.to_wire(),
            "alternatives": [a.to_wire() for a in self.alternatives],
            "message": self.message,
            "adapters": [a.to_wire() for a in self.adapters] if self.adapters else None,
        }

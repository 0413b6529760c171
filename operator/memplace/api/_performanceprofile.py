"""PerformanceProfile: what the running pods taught memplace about one kind of placement.

The planner's estimates are a roofline with published efficiencies; the pods' own metrics say how
far off it is for one (model architecture, GPU model, precision, KV dtype, engine, GPUs per
replica, tier). A profile holds that correction as factors (measured ÷ predicted) for decode
(TPOT), prefill (TTFT) and memory; the planner multiplies its estimates by them once enough
samples agree (``memplace.planning.calibration``). Cluster-scoped: two deployments of the same
architecture on the same hardware share one profile, whatever their namespace or display name.

Model tree::

    PerformanceProfile
    ├── spec: PerformanceProfileSpec          (the key; written once, at create)
    └── status: PerformanceProfileStatus ── decode, prefill, memory: LearnedFactor
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import ConfigDict, Field, NonNegativeInt, PositiveFloat, PositiveInt, model_validator

from ._base import ApiModel
from ._modeldeployment import Engine, KvCacheDtype, Precision
from ._resource import API_VERSION, GROUP, VERSION, NameRule, ObjectMeta, ResourceInfo
from ._status import Timestamp

__all__ = [
    "FINGERPRINT_PATTERN",
    "PERFORMANCE_PROFILE",
    "RECENT_RATIOS_KEPT",
    "CalibratedTier",
    "LearnedFactor",
    "PerformanceProfile",
    "PerformanceProfileSpec",
    "PerformanceProfileStatus",
]

PERFORMANCE_PROFILE = ResourceInfo(
    group=GROUP,
    version=VERSION,
    plural="performanceprofiles",
    kind="PerformanceProfile",
    namespaced=False,
    short_names=("mperf",),
)

FINGERPRINT_PATTERN = r"^[0-9a-f]{12}$"
"""An architecture fingerprint: 12 hex digits of a SHA-256 over the architecture's shape."""

RECENT_RATIOS_KEPT = 15
"""Ratios a factor keeps, newest last: the window its median is taken over. Odd, so the median
is one of them; 15 five-minute windows are an hour and a quarter of serving."""

CalibratedTier = Literal["gpu", "offload"]
"""Tiers a profile can describe. Offload is its own key (PCIe, not HBM, bounds decode there);
the CPU tier has no GPU model to key on and is not calibrated."""


class PerformanceProfileSpec(ApiModel):
    """Which placements the profile describes: the key, written once when it is created."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "self == oldSelf",
                    "message": "spec is the profile's key and cannot change: create another "
                    "PerformanceProfile instead",
                }
            ]
        }
    )

    architecture: str = Field(pattern=FINGERPRINT_PATTERN)
    """The model architecture's fingerprint (12 hex digits): a hash of its shape (layers,
    widths, heads, experts, parameter counts), not of its name, so every deployment of the same
    architecture shares the profile. `status.estimate.calibration.architecture` of a
    ModelDeployment shows its fingerprint."""
    gpu_model: str = Field(min_length=1)
    """The GPU model, as the catalogue names it, e.g. `A100-SXM4-80GB`."""
    precision: Precision
    """The weight precision served."""
    kv_cache_dtype: KvCacheDtype
    """The KV-cache element type."""
    engine: Engine
    """The serving runtime."""
    gpus_per_replica: PositiveInt
    """GPUs per replica (tensor parallelism)."""
    tier: CalibratedTier = "gpu"
    """Where the weights live: gpu (all in GPU memory) or offload (partly in host memory)."""
    model: str | None = None
    """For people: the model the profile was first learned from, e.g. `Qwen/Qwen3-8B`. Not
    part of the key."""


class LearnedFactor(ApiModel):
    """One learned correction: measured ÷ predicted, a robust running estimate.

    `factor` is the median of `recentRatios`, clamped (see `memplace.planning.calibration`);
    the planner uses it once `samples` reaches the minimum."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "!has(self.recentRatios) || size(self.recentRatios) <= self.samples",
                    "message": "recentRatios cannot hold more ratios than samples counts",
                }
            ]
        }
    )

    factor: PositiveFloat
    """The correction the planner multiplies its estimate by (1 = the estimate was right)."""
    samples: NonNegativeInt
    """Valid measurements taken into account since the profile was created."""
    recent_ratios: Annotated[list[PositiveFloat], Field(max_length=RECENT_RATIOS_KEPT)] = Field(
        default_factory=list
    )
    """The latest measured ÷ predicted ratios, oldest first: the window the median is over."""
    last_updated: Timestamp | None = None
    """When the last sample arrived (RFC 3339)."""

    @model_validator(mode="after")
    def _no_more_ratios_than_samples(self) -> LearnedFactor:
        if len(self.recent_ratios) > self.samples:
            raise ValueError("recentRatios cannot hold more ratios than samples counts")
        return self


class PerformanceProfileStatus(ApiModel):
    """The learned factors; written by the operator from the pods' measurements."""

    decode: LearnedFactor | None = None
    """Time per output token: measured ÷ predicted."""
    prefill: LearnedFactor | None = None
    """Time to first token: measured ÷ predicted."""
    memory: LearnedFactor | None = None
    """GPU memory per GPU of a replica: measured ÷ predicted."""


PERFORMANCE_PROFILE_NAME = NameRule(
    pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$",
    max_length=63,
    message="must be a DNS-1123 label (lowercase letters, digits and '-', at most 63 "
    "characters); the operator derives it from the spec (memplace.planning.calibration)",
)


class PerformanceProfile(ApiModel):
    """Learned corrections to memplace's estimates for one kind of placement."""

    api_version: Literal["memplace.io/v1alpha1"] = API_VERSION
    """`memplace.io/v1alpha1`."""
    kind: Literal["PerformanceProfile"] = "PerformanceProfile"
    """`PerformanceProfile`."""
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    """Standard object metadata."""
    spec: PerformanceProfileSpec
    """Which placements the profile describes."""
    status: PerformanceProfileStatus | None = None
    """The learned factors."""

    @model_validator(mode="after")
    def _name_is_a_label(self) -> PerformanceProfile:
        PERFORMANCE_PROFILE_NAME.check(self.metadata.name)
        return self

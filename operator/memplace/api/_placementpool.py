"""PlacementPool: a set of interchangeable nodes, their GPUs and their price.

Model tree::

    PlacementPool
    ├── spec: PlacementPoolSpec ── gpu: PoolGpu, tolerations: [Toleration]
    └── status: PlacementPoolStatus ── conditions: [Condition]
"""

from __future__ import annotations

from typing import Literal

from pydantic import (
    ConfigDict,
    Field,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveInt,
    model_validator,
)

from ._base import ApiModel
from ._resource import API_VERSION, GROUP, VERSION, NameRule, ObjectMeta, ResourceInfo
from ._status import Conditions

__all__ = [
    "PLACEMENT_POOL",
    "PlacementPool",
    "PlacementPoolSpec",
    "PlacementPoolStatus",
    "PoolGpu",
    "Sharing",
    "Toleration",
]

PLACEMENT_POOL = ResourceInfo(
    group=GROUP,
    version=VERSION,
    plural="placementpools",
    kind="PlacementPool",
    namespaced=False,
    short_names=("mpool",),
)

Sharing = Literal["none", "time-slicing", "mps", "mig", "hami"]
"""How the pool's GPUs are shared between pods."""


class PoolGpu(ApiModel):
    """The GPUs each node of the pool carries."""

    model: str | None = Field(default=None, min_length=1)
    """The GPU model, as the catalogue names it, e.g. `A100-SXM4-80GB`."""
    count: PositiveInt | None = None
    """GPUs per node."""


class Toleration(ApiModel):
    """A Kubernetes toleration, added to pods placed in the pool."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "!has(self.operator) || self.operator != 'Exists'"
                    " || !has(self.value) || self.value == ''",
                    "message": "a toleration with operator Exists must not set a value",
                }
            ]
        }
    )

    key: str | None = None
    """The taint key to tolerate; empty with operator Exists = every taint."""
    operator: Literal["Exists", "Equal"] = "Equal"
    """Exists (any value) or Equal (the value below)."""
    value: str | None = None
    """The taint value to match, with operator Equal."""
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None
    """The taint effect to tolerate; empty = all effects."""
    toleration_seconds: int | None = None
    """With effect NoExecute: how long the pod stays bound after the taint appears."""

    @model_validator(mode="after")
    def _exists_has_no_value(self) -> Toleration:
        if self.operator == "Exists" and self.value:
            raise ValueError("a toleration with operator Exists must not set a value")
        return self


class PlacementPoolSpec(ApiModel):
    """Which nodes form the pool, what they carry and what they cost."""

    node_selector: dict[str, str] = Field(min_length=1)
    """Node labels that select the pool's nodes; also set on pods placed here."""
    price_per_node_hour: NonNegativeFloat | None = None
    """Price of one node per hour (USD); unset = the catalogue price of its instance type."""
    instance_type: str | None = None
    """The catalogue instance type for pricing, when nodes lack the
    `node.kubernetes.io/instance-type` label, e.g. `a2-ultragpu-8g`."""
    gpu: PoolGpu | None = None
    """The GPUs per node; unset = from node labels and the agents' reports."""
    tolerations: list[Toleration] = Field(default_factory=list, max_length=64)
    """Tolerations added to pods placed in the pool (at most 64: the bound keeps the CEL rule
    on each toleration well inside the API server's cost budget)."""
    sharing: Sharing = "none"
    """How GPUs are shared between pods: none, time-slicing, mps, mig or hami."""
    spot: bool = False
    """Whether the nodes are spot / preemptible."""


class PlacementPoolStatus(ApiModel):
    """What the operator found in the pool; written only by the operator."""

    observed_generation: NonNegativeInt | None = None
    """The `metadata.generation` this status was computed from."""
    nodes: NonNegativeInt | None = None
    """Nodes the nodeSelector matches."""
    gpus: NonNegativeInt | None = None
    """GPUs across those nodes."""
    price_per_node_hour: NonNegativeFloat | None = None
    """The node price in use (USD per hour), from spec or catalogue."""
    price_source: str | None = None
    """Where the price came from, e.g. `spec` or `catalogue:a2-ultragpu-8g`."""
    conditions: Conditions
    """Ready (nodes found), Priced (a price is known)."""


PLACEMENT_POOL_NAME = NameRule(
    pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$",
    max_length=63,
    message="must be at most 63 characters: it is the value of the memplace.io/pool label "
    "on the pods placed in it",
)


class PlacementPool(ApiModel):
    """A set of interchangeable nodes and their price, for memplace to place models on."""

    api_version: Literal["memplace.io/v1alpha1"] = API_VERSION
    """`memplace.io/v1alpha1`."""
    kind: Literal["PlacementPool"] = "PlacementPool"
    """`PlacementPool`."""
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    """Standard object metadata."""
    spec: PlacementPoolSpec
    """Which nodes, what they carry and what they cost."""
    status: PlacementPoolStatus | None = None
    """What the operator found."""

    @model_validator(mode="after")
    def _name_fits_a_label(self) -> PlacementPool:
        PLACEMENT_POOL_NAME.check(self.metadata.name)
        return self

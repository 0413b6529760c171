"""The parts of a Kubernetes Node the planner reads, parsed from its manifest.

The shell hands the planner Node objects as the API server (or ``kubectl get nodes -o yaml``)
gives them; ``node_from_manifest`` turns one into a ``Node``: name, labels, allocatable GPUs, CPU
and memory, and whether it takes new pods. Everything after this step reads ``Node`` only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .gpu_memory import parse_gfd_memory
from .quantities import parse_quantity

LABEL_INSTANCE_TYPE = "node.kubernetes.io/instance-type"
LABEL_INSTANCE_TYPE_BETA = "beta.kubernetes.io/instance-type"
LABEL_GPU_PRODUCT = "nvidia.com/gpu.product"
LABEL_GPU_COUNT = "nvidia.com/gpu.count"
RESOURCE_GPU = "nvidia.com/gpu"


@dataclass(frozen=True)
class Node:
    """The parts of a Kubernetes Node the planner reads."""

    name: str
    labels: Mapping[str, str] = field(default_factory=dict, hash=False, compare=True)
    gpus: int = 0
    """Allocatable ``nvidia.com/gpu``."""
    vcpus: float = 0.0
    """Allocatable CPU, in cores."""
    memory_bytes: int = 0
    """Allocatable memory."""
    schedulable: bool = True
    """False when cordoned (``spec.unschedulable``) or not Ready."""

    @property
    def instance_type(self) -> str | None:
        return self.labels.get(LABEL_INSTANCE_TYPE) or self.labels.get(LABEL_INSTANCE_TYPE_BETA)

    @property
    def gpu_product(self) -> str | None:
        """GPU Feature Discovery's ``nvidia.com/gpu.product``, e.g. ``NVIDIA-L4``."""
        return self.labels.get(LABEL_GPU_PRODUCT)

    @property
    def gpu_memory_bytes(self) -> int | None:
        """GPU Feature Discovery's ``nvidia.com/gpu.memory`` (MiB) in bytes; None when absent or
        on a MIG node. ValueError when the label is not a positive number."""
        return parse_gfd_memory(self.labels)

    @property
    def gpu_count(self) -> int:
        """Allocatable GPUs, else GFD's ``nvidia.com/gpu.count``."""
        if self.gpus:
            return self.gpus
        try:
            return int(self.labels.get(LABEL_GPU_COUNT, 0))
        except ValueError:
            return 0


def node_from_manifest(manifest: Mapping[str, Any]) -> Node:
    """A Node object (as the API server or ``kubectl get nodes -o yaml`` gives it) → ``Node``.

    Reads ``status.allocatable`` (falling back to ``status.capacity``), the labels, cordoning
    and the Ready condition. Raises ``ValueError`` on a malformed quantity."""
    metadata = manifest.get("metadata") or {}
    status = manifest.get("status") or {}
    spec = manifest.get("spec") or {}
    resources = dict(status.get("capacity") or {})
    resources.update(status.get("allocatable") or {})
    conditions = status.get("conditions") or []
    ready = all(c.get("status") == "True" for c in conditions if c.get("type") == "Ready")
    name = metadata.get("name")
    if not name:
        raise ValueError("a Node without metadata.name")
    return Node(
        name=str(name),
        labels={str(k): str(v) for k, v in (metadata.get("labels") or {}).items()},
        gpus=int(parse_quantity(resources.get(RESOURCE_GPU, 0))),
        vcpus=parse_quantity(resources.get("cpu", 0)),
        memory_bytes=int(parse_quantity(resources.get("memory", 0))),
        schedulable=ready and not spec.get("unschedulable", False),
    )

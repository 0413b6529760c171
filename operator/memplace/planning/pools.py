"""What a pool is to the planner: a set of interchangeable nodes, or why one was left out.

``discovery.build_cluster`` makes these from PlacementPools and node labels
(``pool_sizing.build_pool`` sizes each); the planner reads them and never changes them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ExcludedPool:
    """A pool the planner leaves out, and why (shown with every plan that could have used it)."""

    name: str
    code: str
    """A RejectionCode: ``NoPrice`` or ``Invalid``."""
    reason: str


@dataclass(frozen=True, eq=False)
class Pool:
    """A set of interchangeable nodes: one GPU model (or none), one price, one host shape."""

    name: str
    source: str
    """``PlacementPool`` or the platform it was discovered from (``gke``, ``eks`` …)."""
    node_selector: Mapping[str, str]
    gpu: Any
    """The catalogue ``Gpu``; None for a CPU-only pool."""
    gpus_per_node: int
    instance: Any
    """The catalogue ``InstanceType`` when known: host bandwidth and FLOPs for offload / cpu."""
    price_per_node_hour: float
    price_source: str
    vcpus_per_node: float
    memory_bytes_per_node: int
    sharing: str = "none"
    spot: bool = False
    tolerations: tuple[Any, ...] = ()
    nodes: tuple[str, ...] = ()
    gpu_memory_bytes: int = 0
    """Memory of one GPU: the smallest of the nodes' figures (``gpu_memory``)."""
    gpu_memory_source: str | None = None
    """Where ``gpu_memory_bytes`` came from: ``nvml``, ``gfd-label`` or ``catalogue``."""
    usable_bytes_per_gpu: int = 0
    """The most a replica can use on one GPU of this pool (the largest usable GPU)."""
    host_bytes_per_node: int = 0
    """Host memory usable for offloaded weights or a CPU replica, per node."""
    disk_bytes_per_node: int = 0
    """Local disk usable for offloaded weights, per node (only with offloadToDisk)."""
    measured: bool = False
    """Whether usable memory comes from fresh NodeMemoryReports."""

    @property
    def cpu_only(self) -> bool:
        return self.gpu is None

    @property
    def gpu_name(self) -> str | None:
        return None if self.gpu is None else self.gpu.id

    @property
    def shares_gpus(self) -> bool:
        """Whether several replicas may share one GPU, packed by memory."""
        return self.sharing != "none" and self.gpu is not None

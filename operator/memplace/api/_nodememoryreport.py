"""NodeMemoryReport: what the node agent measured on one node, through NVML and /proc.

One object per node, named after the node; the agent writes `status` every heartbeat and the
operator reads measured free GPU memory from it instead of catalogue capacity.

Model tree::

    NodeMemoryReport
    ├── spec: NodeMemoryReportSpec
    └── status: NodeMemoryReportStatus
        ├── nvml: NvmlStatus
        ├── gpus: [GpuReport] ── migDevices: [MigDeviceReport], processes: [GpuProcess]
        └── host: HostReport
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, NonNegativeInt, PositiveFloat, model_validator

from ._base import ApiModel
from ._resource import API_VERSION, GROUP, VERSION, ObjectMeta, ResourceInfo
from ._status import Timestamp, format_bytes

__all__ = [
    "NODE_MEMORY_REPORT",
    "GpuProcess",
    "GpuReport",
    "HostReport",
    "MigDeviceReport",
    "MigMode",
    "NodeMemoryReport",
    "NodeMemoryReportSpec",
    "NodeMemoryReportStatus",
    "NvmlStatus",
]

NODE_MEMORY_REPORT = ResourceInfo(
    group=GROUP,
    version=VERSION,
    plural="nodememoryreports",
    kind="NodeMemoryReport",
    namespaced=False,
    short_names=("nmr",),
)

MigMode = Literal["enabled", "disabled", "unsupported"]
"""A GPU's current MIG mode."""


class NodeMemoryReportSpec(ApiModel):
    """Which node the report is about."""

    node_name: str = Field(min_length=1)
    """The node's name (also the report's name)."""


class NvmlStatus(ApiModel):
    """Whether NVML could be used on the node, and the driver it found."""

    available: bool
    """Whether NVML initialised; false on nodes without an NVIDIA driver."""
    driver_version: str | None = None
    """The NVIDIA driver version, e.g. `570.133.20`."""
    cuda_driver_version: int | None = None
    """The CUDA version the driver supports, as NVML encodes it (12080 = 12.8)."""
    error: str | None = None
    """Why NVML is unavailable, when it is."""


class MigDeviceReport(ApiModel):
    """One MIG instance of a GPU."""

    index: NonNegativeInt
    """The MIG device's index within its GPU."""
    uuid: str | None = None
    """The MIG device's UUID (`MIG-…`)."""
    memory_total_bytes: NonNegativeInt | None = None
    """Memory of the instance."""
    memory_used_bytes: NonNegativeInt | None = None
    """Memory in use."""
    memory_free_bytes: NonNegativeInt | None = None
    """Memory free."""


class GpuProcess(ApiModel):
    """A process holding GPU memory, and the pod it belongs to when known."""

    pid: NonNegativeInt
    """The process id, in the host's PID namespace."""
    used_memory_bytes: NonNegativeInt | None = None
    """GPU memory the process holds; unset when the driver does not say."""
    pod_uid: str | None = None
    """The UID of the pod the process runs in (from its cgroup)."""
    container_id: str | None = None
    """The container the process runs in (from its cgroup)."""
    pod_namespace: str | None = None
    """The pod's namespace."""
    pod_name: str | None = None
    """The pod's name."""


class GpuReport(ApiModel):
    """One GPU of the node, as NVML reports it."""

    index: NonNegativeInt
    """The GPU's NVML index."""
    uuid: str | None = None
    """The GPU's UUID (`GPU-…`)."""
    name: str | None = None
    """The GPU's product name, e.g. `NVIDIA A100-SXM4-80GB`."""
    memory_total_bytes: NonNegativeInt | None = None
    """Total memory."""
    memory_used_bytes: NonNegativeInt | None = None
    """Memory in use."""
    memory_free_bytes: NonNegativeInt | None = None
    """Memory free."""
    memory_reserved_bytes: NonNegativeInt | None = None
    """Memory the driver reserves (NVML memory info v2), when the driver reports it."""
    compute_capability: str | None = Field(default=None, pattern=r"^[0-9]+\.[0-9]+$")
    """CUDA compute capability, e.g. `9.0`."""
    mig_mode: MigMode | None = None
    """Whether MIG is enabled."""
    healthy: bool = True
    """False when NVML reported an error for this GPU."""
    error: str | None = None
    """What went wrong reading this GPU, when something did."""
    mig_devices: list[MigDeviceReport] = Field(default_factory=list)
    """MIG instances, when MIG is enabled."""
    processes: list[GpuProcess] = Field(default_factory=list)
    """Processes holding memory on this GPU."""


class HostReport(ApiModel):
    """Host memory and the disk used for offloading."""

    mem_total_bytes: NonNegativeInt | None = None
    """Host RAM (MemTotal)."""
    mem_available_bytes: NonNegativeInt | None = None
    """Host RAM available (MemAvailable)."""
    offload_path: str | None = None
    """The local directory where weights may be staged for offloading."""
    offload_total_bytes: NonNegativeInt | None = None
    """Size of the filesystem holding offloadPath."""
    offload_free_bytes: NonNegativeInt | None = None
    """Free space on that filesystem."""


class NodeMemoryReportStatus(ApiModel):
    """What the agent measured; written only by the agent.

    `gpuCount`, `memoryFreeBytes`, `memoryTotalBytes` and `memoryFree` summarise
    `gpus` for `kubectl get`: they are derived, and any value given is replaced.
    """

    observed_at: Timestamp | None = None
    """When the agent measured (RFC 3339)."""
    agent_version: str | None = None
    """The memplace agent's version."""
    heartbeat_seconds: PositiveFloat | None = None
    """How often the agent reports; a report older than a few heartbeats is stale."""
    nvml: NvmlStatus | None = None
    """Whether NVML was usable."""
    gpus: list[GpuReport] = Field(default_factory=list)
    """The node's GPUs."""
    host: HostReport | None = None
    """Host memory and offload disk."""
    gpu_count: NonNegativeInt | None = None
    """GPUs reported (derived from gpus)."""
    memory_free_bytes: NonNegativeInt | None = None
    """Free memory summed over the GPUs (derived from gpus)."""
    memory_total_bytes: NonNegativeInt | None = None
    """Total memory summed over the GPUs (derived from gpus)."""
    memory_free: str | None = None
    """Free of total GPU memory for people, e.g. `71.2Gi/80Gi` (derived from gpus)."""

    @model_validator(mode="after")
    def _summarise(self) -> NodeMemoryReportStatus:
        free = [g.memory_free_bytes for g in self.gpus if g.memory_free_bytes is not None]
        total = [g.memory_total_bytes for g in self.gpus if g.memory_total_bytes is not None]
        free_bytes = sum(free) if free else None
        total_bytes = sum(total) if total else None
        readable = None
        if free_bytes is not None and total_bytes is not None:
            readable = f"{format_bytes(free_bytes)}/{format_bytes(total_bytes)}"
        object.__setattr__(self, "gpu_count", len(self.gpus))
        object.__setattr__(self, "memory_free_bytes", free_bytes)
        object.__setattr__(self, "memory_total_bytes", total_bytes)
        object.__setattr__(self, "memory_free", readable)
        return self


class NodeMemoryReport(ApiModel):
    """GPU and host memory measured on one node by the memplace agent; named after the node."""

    api_version: Literal["memplace.io/v1alpha1"] = API_VERSION
    """`memplace.io/v1alpha1`."""
    kind: Literal["NodeMemoryReport"] = "NodeMemoryReport"
    """`NodeMemoryReport`."""
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    """Standard object metadata."""
    spec: NodeMemoryReportSpec
    """Which node."""
    status: NodeMemoryReportStatus | None = None
    """What the agent measured."""

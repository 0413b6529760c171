"""From a sample to a ``NodeMemoryReport``, and when one is worth writing: pure functions.

``publish_reason(published, current, …)`` compares the current sample with the last one
*published* (not the previous sample: slow drift must add up) and names why to write, or returns
None. Writing on every sample would make every agent a steady writer to the API server; writing
only on change would leave the planner unable to tell a quiet node from a dead agent. So: write
on a change the planner would act on, and at least every heartbeat; the report carries
``heartbeatSeconds`` and the planner treats a report older than three heartbeats as stale.

A change is significant when, on any GPU or MIG instance, used or free memory moved by at least
``min_change_bytes`` or by at least ``min_change_ratio`` of that device's total; or a GPU
appeared, disappeared, was replaced (another UUID) or changed health; or NVML came or went.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any

from memplace import __version__
from memplace.agent.host import HostSample
from memplace.agent.nvml import GpuSample, GpuSampling, NvmlStatus
from memplace.api import NODE_MEMORY_REPORT, NodeMemoryReport, NodeMemoryReportStatus

__all__ = [
    "NodeSample",
    "PublishPolicy",
    "owner_reference",
    "publish_reason",
    "status_wire",
    "to_report",
    "to_status",
]


@dataclasses.dataclass(frozen=True)
class NodeSample:
    """Everything one pass measured on the node."""

    observed_at: datetime
    nvml: NvmlStatus
    gpus: tuple[GpuSample, ...]
    host: HostSample
    error_kinds: tuple[str, ...] = ()

    @classmethod
    def of(cls, observed_at: datetime, sampling: GpuSampling, host: HostSample) -> NodeSample:
        return cls(observed_at, sampling.nvml, sampling.gpus, host, sampling.error_kinds)


@dataclasses.dataclass(frozen=True)
class PublishPolicy:
    """When a sample is worth a write (see the module docstring)."""

    heartbeat_seconds: float = 60.0
    min_change_bytes: int = 256 * 1024**2
    min_change_ratio: float = 0.02


def _moved(before: int | None, after: int | None, total: int | None, policy: PublishPolicy) -> bool:
    if before is None or after is None:
        return before != after
    delta = abs(after - before)
    if delta == 0:
        return False
    if delta >= policy.min_change_bytes:
        return True
    return bool(total) and delta >= policy.min_change_ratio * total


def _gpu_change(before: GpuSample, after: GpuSample, policy: PublishPolicy) -> str | None:
    if before.uuid != after.uuid:
        return f"GpuReplaced: GPU {after.index} is now {after.uuid} (was {before.uuid})"
    if before.healthy != after.healthy:
        state = "healthy" if after.healthy else f"unhealthy: {after.error}"
        return f"HealthChanged: GPU {after.index} {state}"
    total = after.memory_total_bytes
    for field in ("memory_used_bytes", "memory_free_bytes"):
        if _moved(getattr(before, field), getattr(after, field), total, policy):
            return (
                f"MemoryChanged: GPU {after.index} {field.split('_')[1]} "
                f"{getattr(before, field)} -> {getattr(after, field)} bytes"
            )
    migs_before = {mig.uuid: mig for mig in before.mig_devices}
    migs_after = {mig.uuid: mig for mig in after.mig_devices}
    if migs_before.keys() != migs_after.keys():
        return f"MigChanged: GPU {after.index} MIG instances changed"
    for uuid, mig in migs_after.items():
        old = migs_before[uuid]
        total = mig.memory_total_bytes
        if _moved(old.memory_used_bytes, mig.memory_used_bytes, total, policy) or _moved(
            old.memory_free_bytes, mig.memory_free_bytes, total, policy
        ):
            return f"MemoryChanged: GPU {after.index} MIG {uuid}"
    return None


def publish_reason(
    published: NodeSample | None,
    current: NodeSample,
    *,
    published_at: float | None,
    now: float,
    policy: PublishPolicy,
) -> str | None:
    """Why ``current`` should be written (a short ``Reason: detail``), or None to skip it.

    ``published``/``published_at``: the last sample written and when (monotonic seconds).
    """
    if published is None or published_at is None:
        return "FirstReport"
    if published.nvml.available != current.nvml.available:
        state = "available" if current.nvml.available else f"unavailable: {current.nvml.error}"
        return f"NvmlChanged: NVML {state}"
    before = {gpu.index: gpu for gpu in published.gpus}
    after = {gpu.index: gpu for gpu in current.gpus}
    if before.keys() != after.keys():
        return f"GpusChanged: GPUs {sorted(before)} -> {sorted(after)}"
    for index, gpu in after.items():
        change = _gpu_change(before[index], gpu, policy)
        if change:
            return change
    if now - published_at >= policy.heartbeat_seconds:
        return "Heartbeat"
    return None


# -- the wire format -----------------------------------------------------------------------


def _drop_none(data: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in data.items() if value is not None}


def _gpu_wire(gpu: GpuSample) -> dict[str, Any]:
    return _drop_none(
        {
            "index": gpu.index,
            "uuid": gpu.uuid,
            "name": gpu.name,
            "memoryTotalBytes": gpu.memory_total_bytes,
            "memoryUsedBytes": gpu.memory_used_bytes,
            "memoryFreeBytes": gpu.memory_free_bytes,
            "memoryReservedBytes": gpu.memory_reserved_bytes,
            "computeCapability": gpu.compute_capability,
            "migMode": gpu.mig_mode,
            "healthy": gpu.healthy,
            "error": gpu.error,
            "migDevices": [
                {
                    "index": mig.index,
                    "uuid": mig.uuid,
                    "memoryTotalBytes": mig.memory_total_bytes,
                    "memoryUsedBytes": mig.memory_used_bytes,
                    "memoryFreeBytes": mig.memory_free_bytes,
                }
                for mig in gpu.mig_devices
            ],
            "processes": [
                _drop_none(
                    {
                        "pid": process.pid,
                        "usedMemoryBytes": process.used_memory_bytes,
                        "podUid": process.pod_uid,
                        "containerId": process.container_id,
                        "podNamespace": process.pod_namespace,
                        "podName": process.pod_name,
                    }
                )
                for process in gpu.processes
            ],
        }
    )


def status_wire(sample: NodeSample, *, heartbeat_seconds: float) -> dict[str, Any]:
    """The report's status as plain camelCase data (validated by ``to_status``)."""
    host = sample.host
    return {
        "observedAt": sample.observed_at.isoformat(timespec="seconds").replace("+00:00", "Z"),
        "agentVersion": __version__,
        "heartbeatSeconds": heartbeat_seconds,
        "nvml": _drop_none(
            {
                "available": sample.nvml.available,
                "driverVersion": sample.nvml.driver_version,
                "cudaDriverVersion": sample.nvml.cuda_driver_version,
                "error": sample.nvml.error,
            }
        ),
        "gpus": [_gpu_wire(gpu) for gpu in sample.gpus],
        "host": _drop_none(
            {
                "memTotalBytes": host.mem_total_bytes,
                "memAvailableBytes": host.mem_available_bytes,
                "offloadPath": host.offload_path,
                "offloadTotalBytes": host.offload_total_bytes,
                "offloadFreeBytes": host.offload_free_bytes,
            }
        ),
    }


def to_status(sample: NodeSample, *, heartbeat_seconds: float) -> NodeMemoryReportStatus:
    """The sample as the API model's status: validated, so drift from the model fails here."""
    return NodeMemoryReportStatus.model_validate(
        status_wire(sample, heartbeat_seconds=heartbeat_seconds)
    )


def owner_reference(node_name: str, node_uid: str) -> dict[str, Any]:
    """The Node owns its report: deleting the Node lets the garbage collector drop it."""
    return {"apiVersion": "v1", "kind": "Node", "name": node_name, "uid": node_uid}


def to_report(
    node_name: str,
    sample: NodeSample,
    *,
    heartbeat_seconds: float,
    node_uid: str | None = None,
) -> dict[str, Any]:
    """The whole ``NodeMemoryReport`` object as it goes on the wire (and as ``--once`` prints)."""
    metadata: dict[str, Any] = {"name": node_name}
    if node_uid:
        metadata["ownerReferences"] = [owner_reference(node_name, node_uid)]
    report = NodeMemoryReport.model_validate(
        {
            "apiVersion": NODE_MEMORY_REPORT.api_version,
            "kind": NODE_MEMORY_REPORT.kind,
            "metadata": metadata,
            "spec": {"nodeName": node_name},
            "status": status_wire(sample, heartbeat_seconds=heartbeat_seconds),
        }
    )
    return report.to_wire()

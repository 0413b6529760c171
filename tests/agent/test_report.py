"""Report building and the pure publish decision (significant change or heartbeat)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from memplace.agent.host import HostSample
from memplace.agent.nvml import GpuSample, MigDeviceSample, NvmlStatus, PynvmlSampler
from memplace.agent.report import NodeSample, PublishPolicy, publish_reason, to_report, to_status
from memplace.api import NodeMemoryReport

OBSERVED_AT = datetime(2025, 6, 1, 12, 0, 0, tzinfo=UTC)

GiB = 1024**3
MiB = 1024**2
TOTAL = 80 * GiB
POLICY = PublishPolicy(heartbeat_seconds=60, min_change_bytes=256 * MiB, min_change_ratio=0.02)


def gpu(used: int, index: int = 0, **fields) -> GpuSample:
    return GpuSample(
        index=index,
        uuid=f"GPU-{index}",
        name="NVIDIA H100 80GB HBM3",
        memory_total_bytes=TOTAL,
        memory_used_bytes=used,
        memory_free_bytes=TOTAL - used,
        **fields,
    )


def node(*gpus: GpuSample, available: bool = True) -> NodeSample:
    return NodeSample(OBSERVED_AT, NvmlStatus(available=available), tuple(gpus), HostSample())


def reason(before: NodeSample | None, after: NodeSample, elapsed: float = 10.0) -> str | None:
    published_at = None if before is None else 1000.0
    return publish_reason(
        before, after, published_at=published_at, now=1000.0 + elapsed, policy=POLICY
    )


def test_the_first_sample_is_always_published() -> None:
    assert reason(None, node(gpu(0))) == "FirstReport"


def test_nothing_changed_before_the_heartbeat_is_not_published() -> None:
    assert reason(node(gpu(GiB)), node(gpu(GiB)), elapsed=59.9) is None


def test_the_heartbeat_publishes_even_without_change() -> None:
    assert reason(node(gpu(GiB)), node(gpu(GiB)), elapsed=60) == "Heartbeat"


def test_a_move_of_min_change_bytes_is_published() -> None:
    assert reason(node(gpu(GiB)), node(gpu(GiB + 256 * MiB))).startswith("MemoryChanged: GPU 0")


def test_a_move_of_min_change_ratio_is_published_even_below_min_change_bytes() -> None:
    policy = dataclasses.replace(POLICY, min_change_bytes=100 * GiB)
    moved = int(0.02 * TOTAL) + 1
    before, after = node(gpu(GiB)), node(gpu(GiB + moved))
    assert publish_reason(before, after, published_at=0, now=1, policy=policy)


def test_a_gpu_appearing_disappearing_or_being_replaced_is_published() -> None:
    assert reason(node(gpu(0)), node(gpu(0), gpu(0, index=1))).startswith("GpusChanged")
    assert reason(node(gpu(0), gpu(0, index=1)), node(gpu(0))).startswith("GpusChanged")
    swapped = dataclasses.replace(gpu(0), uuid="GPU-new")
    assert reason(node(gpu(0)), node(swapped)).startswith("GpuReplaced")


def test_a_gpu_turning_unhealthy_is_published() -> None:
    lost = GpuSample(index=0, uuid="GPU-0", healthy=False, error="GPU is lost")
    assert reason(node(gpu(0)), node(lost)) == "HealthChanged: GPU 0 unhealthy: GPU is lost"


def test_nvml_coming_or_going_is_published() -> None:
    assert reason(node(available=False), node(gpu(0))).startswith("NvmlChanged")
    assert reason(node(gpu(0)), node(available=False)).startswith("NvmlChanged")


def test_a_mig_instance_s_memory_moving_is_published() -> None:
    def with_mig(used: int) -> NodeSample:
        mig = MigDeviceSample(0, "MIG-0", 10 * GiB, used, 10 * GiB - used)
        return node(gpu(0, mig_mode="enabled", mig_devices=(mig,)))

    assert reason(with_mig(0), with_mig(0)) is None
    assert reason(with_mig(0), with_mig(GiB)).startswith("MemoryChanged: GPU 0 MIG")


@given(
    used=st.integers(0, TOTAL - GiB),
    delta=st.integers(-(256 * MiB - 1), 256 * MiB - 1),
    elapsed=st.floats(0, 59.999),
    total=st.integers(GiB, 200 * GiB),
)
def test_a_change_below_both_thresholds_before_the_heartbeat_never_publishes(
    used: int, delta: int, elapsed: float, total: int
) -> None:
    used = min(used, total)
    after_used = min(max(used + delta, 0), total)
    # Keep the move below the ratio threshold too.
    if abs(after_used - used) >= POLICY.min_change_ratio * total:
        after_used = used

    def sample(u: int) -> NodeSample:
        g = GpuSample(
            index=0,
            uuid="GPU-0",
            memory_total_bytes=total,
            memory_used_bytes=u,
            memory_free_bytes=total - u,
        )
        return node(g)

    assert reason(sample(used), sample(after_used), elapsed=elapsed) is None


def test_to_report_is_a_valid_node_memory_report_owned_by_the_node(nvml_fixture) -> None:
    sampling = PynvmlSampler(nvml_fixture("gpu-lost")).sample()
    sample = NodeSample.of(OBSERVED_AT, sampling, HostSample(mem_total_bytes=GiB))

    wire = to_report("gpu-node-1", sample, heartbeat_seconds=60, node_uid="node-uid-1")

    assert wire["metadata"] == {
        "name": "gpu-node-1",
        "ownerReferences": [
            {"apiVersion": "v1", "kind": "Node", "name": "gpu-node-1", "uid": "node-uid-1"}
        ],
    }
    assert wire["spec"] == {"nodeName": "gpu-node-1"}
    status = wire["status"]
    assert status["observedAt"] == "2025-06-01T12:00:00Z"
    assert status["heartbeatSeconds"] == 60
    assert status["nvml"] == {
        "available": True,
        "driverVersion": "550.54.15",
        "cudaDriverVersion": 12040,
    }
    assert status["gpus"][1]["healthy"] is False
    assert "NVMLError_GpuIsLost" in status["gpus"][1]["error"]
    assert status["host"] == {"memTotalBytes": GiB}
    NodeMemoryReport.model_validate(wire)


def test_to_status_says_why_nvml_is_unavailable(nvml_fixture) -> None:
    sampling = PynvmlSampler(nvml_fixture("no-driver")).sample()
    status = to_status(NodeSample.of(OBSERVED_AT, sampling, HostSample()), heartbeat_seconds=60)
    assert status.nvml.available is False
    assert "NVMLError_LibraryNotFound" in status.nvml.error
    assert status.gpus == []

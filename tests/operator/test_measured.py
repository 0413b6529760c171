"""measured: GPU memory per replica from the agents' process lists; pure."""

from __future__ import annotations

from memplace.api import NodeMemoryReportStatus
from memplace.operator import measured

GIB = 1 << 30


def report(observed_at: str, *gpus: list[tuple[str | None, int | None]]) -> NodeMemoryReportStatus:
    return NodeMemoryReportStatus.model_validate({
        "observedAt": observed_at,
        "heartbeatSeconds": 60,
        "gpus": [
            {"index": index, "processes": [
                {"pid": 100 + n, "podUid": uid, "usedMemoryBytes": used}
                for n, (uid, used) in enumerate(processes)
            ]}
            for index, processes in enumerate(gpus)
        ],
    })


def test_a_tensor_parallel_replica_sums_its_processes_over_its_gpus():
    node = report("2026-01-01T12:00:00Z", [("pod-a", 38 * GIB)], [("pod-a", 37 * GIB)])
    found = measured.per_replica(["pod-a"], [("n1", node)])
    assert found == {"gpuMemoryBytesPerReplica": 75 * GIB, "observedAt": "2026-01-01T12:00:00Z"}


def test_the_largest_replica_is_reported_with_the_newest_contributing_report():
    one = report("2026-01-01T12:00:00Z", [("pod-a", 70 * GIB)])
    two = report("2026-01-01T12:00:30Z", [("pod-b", 20 * GIB)])  # still loading weights
    found = measured.per_replica(["pod-a", "pod-b"], [("n1", one), ("n2", two)])
    assert found["gpuMemoryBytesPerReplica"] == 70 * GIB
    assert found["observedAt"] == "2026-01-01T12:00:30Z"


def test_other_pods_unknown_pods_and_processes_without_a_figure_do_not_count():
    node = report("2026-01-01T12:00:00Z",
                  [("pod-a", 10 * GIB), ("someone-else", 60 * GIB), (None, 5 * GIB),
                   ("pod-a", None)])
    later = report("2026-01-01T13:00:00Z", [("someone-else", GIB)])
    found = measured.per_replica(["pod-a"], [("n1", node), ("n2", later)])
    assert found == {"gpuMemoryBytesPerReplica": 10 * GIB, "observedAt": "2026-01-01T12:00:00Z"}


def test_nothing_measured_is_none():
    node = report("2026-01-01T12:00:00Z", [("someone-else", GIB)])
    assert measured.per_replica(["pod-a"], [("n1", node)]) is None
    assert measured.per_replica([], [("n1", node)]) is None
    assert measured.per_replica(["pod-a"], []) is None


def test_only_a_new_byte_figure_is_a_change_not_a_newer_timestamp():
    old = {"gpuMemoryBytesPerReplica": GIB, "observedAt": "2026-01-01T12:00:00Z"}
    assert not measured.changed(old, {**old, "observedAt": "2026-01-01T12:01:00Z"})
    assert measured.changed(old, {**old, "gpuMemoryBytesPerReplica": 2 * GIB})
    assert measured.changed(old, None)
    assert measured.changed(None, old)
    assert not measured.changed(None, None)

"""The e2e harness's fake GPU nodes, as a real control plane and memplace see them: what is
posted for a Node, its heartbeat, its Lease, and which pods the fake kubelet finishes deleting."""

from __future__ import annotations

import datetime
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "e2e"))
from fakes import (  # noqa: E402
    FAKE_LABEL,
    lease_manifest,
    node_manifest,
    node_status,
    pods_to_finish,
)

from memplace.planning.inventory import node_from_manifest  # noqa: E402

T0 = datetime.datetime(2026, 12, 2, 6, 0, 0, tzinfo=datetime.UTC)
LATER = T0 + datetime.timedelta(seconds=10, microseconds=123456)


def test_memplace_reads_a_fake_node_as_a_schedulable_8_gpu_a100_node():
    node = node_from_manifest(node_manifest("gpu-0", {"memplace.io/e2e-pool": "p"}, T0))
    assert node.schedulable
    assert node.gpus == 8 and node.gpu_count == 8
    assert node.gpu_product == "NVIDIA-A100-SXM4-80GB"
    assert node.gpu_memory_bytes == 81920 * 2**20
    assert node.labels["memplace.io/e2e-pool"] == "p"
    assert node.labels[FAKE_LABEL] == "true"


def test_the_node_is_created_with_its_status_and_the_pool_labels_win():
    manifest = node_manifest("gpu-0", {"kubernetes.io/arch": "arm64"}, T0)
    status = manifest["status"]
    assert status["allocatable"]["nvidia.com/gpu"] == "8"
    assert status["capacity"] == status["allocatable"]
    assert manifest["metadata"]["labels"]["kubernetes.io/arch"] == "arm64"
    assert manifest["metadata"]["labels"]["kubernetes.io/hostname"] == "gpu-0"


def test_a_heartbeat_moves_the_heartbeat_time_but_not_the_transition_time():
    # The node lifecycle controller counts a changed lastHeartbeatTime as a heartbeat; a changed
    # lastTransitionTime would claim the node went Ready again.
    (ready,) = node_status(LATER, T0)["conditions"]
    assert ready["type"] == "Ready" and ready["status"] == "True"
    assert ready["lastHeartbeatTime"] == "2026-12-02T06:00:10Z"
    assert ready["lastTransitionTime"] == "2026-12-02T06:00:00Z"
    (first,) = node_status(T0, T0)["conditions"]
    assert first["lastHeartbeatTime"] != ready["lastHeartbeatTime"]


def test_the_lease_is_the_kubelets_owned_by_its_node_with_a_micro_time():
    lease = lease_manifest("gpu-0", "uid-1", LATER)
    assert lease["apiVersion"] == "coordination.k8s.io/v1" and lease["kind"] == "Lease"
    assert lease["metadata"]["namespace"] == "kube-node-lease"
    assert lease["metadata"]["ownerReferences"] == [
        {"apiVersion": "v1", "kind": "Node", "name": "gpu-0", "uid": "uid-1"}
    ]
    assert lease["spec"]["holderIdentity"] == "gpu-0"
    assert lease["spec"]["renewTime"] == "2026-12-02T06:00:10.123456Z"
    assert lease["spec"]["leaseDurationSeconds"] == 40


def _pod(name: str, node: str | None, deleting: bool, namespace: str = "ns") -> dict:
    metadata = {"name": name, "namespace": namespace, "uid": f"uid-{name}"}
    if deleting:
        metadata["deletionTimestamp"] = "2026-12-02T06:00:00Z"
    return {"metadata": metadata, "spec": {"nodeName": node} if node else {}}


def test_only_terminating_pods_on_the_fake_nodes_are_finished():
    pods = [
        _pod("terminating-here", "fake-0", True),
        _pod("running-here", "fake-0", False),
        _pod("terminating-elsewhere", "real-node", True),  # a real kubelet's job
        _pod("terminating-unbound", None, True),  # the API server deletes these at once
        _pod("terminating-on-the-other", "fake-1", True, namespace="other"),
    ]
    assert pods_to_finish(pods, ["fake-0", "fake-1"]) == [
        ("ns", "terminating-here", "uid-terminating-here"),
        ("other", "terminating-on-the-other", "uid-terminating-on-the-other"),
    ]
    assert pods_to_finish(pods, []) == []

from datetime import UTC, datetime, timedelta

import pytest
from planning_clusters import GIB, a100_nodes, cpu_nodes, l4_nodes

from memplace.api import NodeMemoryReportStatus, PlacementPoolSpec, PlacementStatus
from memplace.planning.capacity import PoolCapacity
from memplace.planning.discovery import build_cluster
from memplace.planning.memory import GPU_MEMORY_UTILIZATION
from memplace.planning.nodes import Node, node_from_manifest
from memplace.planning.pool_sizing import SAFETY_MARGIN_BYTES
from memplace.planning.quantities import parse_quantity

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)


def manifest(name="n1", labels=None, alloc=None, unschedulable=False, ready="True"):
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": labels or {}},
        "spec": {"unschedulable": unschedulable},
        "status": {
            "allocatable": alloc
            or {"cpu": "47810m", "memory": "195035136Ki", "nvidia.com/gpu": "4"},
            "conditions": [{"type": "Ready", "status": ready}],
        },
    }


@pytest.mark.parametrize(
    ("text", "value"),
    [("8", 8), ("95690m", 95.69), ("16Gi", 16 * GIB), ("1Ki", 1024), ("2G", 2e9), (3, 3)],
)
def test_quantities_parse_as_kubernetes_writes_them(text, value):
    assert parse_quantity(text) == pytest.approx(value)


def test_a_malformed_quantity_is_an_error():
    with pytest.raises(ValueError, match="quantity"):
        parse_quantity("lots")


def test_node_manifest_gives_allocatable_gpus_cpu_memory_and_gfd_labels():
    labels = {"nvidia.com/gpu.product": "NVIDIA-L4", "nvidia.com/gpu.memory": "23034"}
    node = node_from_manifest(manifest(labels=labels))
    assert (node.gpus, node.vcpus, node.memory_bytes) == (4, 47.81, 195035136 * 1024)
    assert node.gpu_product == "NVIDIA-L4"
    assert node.gpu_memory_bytes == 23034 << 20
    assert node.schedulable


@pytest.mark.parametrize("kw", [{"unschedulable": True}, {"ready": "False"}])
def test_cordoned_or_not_ready_nodes_are_not_schedulable(kw):
    assert not node_from_manifest(manifest(**kw)).schedulable


@pytest.mark.parametrize(
    ("label", "source"),
    [
        ("cloud.google.com/gke-nodepool", "gke"),
        ("eks.amazonaws.com/nodegroup", "eks"),
        ("karpenter.sh/nodepool", "karpenter"),
        ("kubernetes.azure.com/agentpool", "aks"),
    ],
)
def test_pools_are_discovered_from_each_platforms_node_pool_label(label, source):
    node = Node(
        "n1",
        {
            label: "gpu",
            "node.kubernetes.io/instance-type": "g6.12xlarge",
            "nvidia.com/gpu.product": "NVIDIA-L4",
        },
        gpus=4,
        vcpus=48,
        memory_bytes=GIB,
    )
    cluster = build_cluster(nodes=[node])
    (pool,) = cluster.pools
    assert (pool.name, pool.source, pool.gpu.id, pool.gpus_per_node) == ("gpu", source, "L4", 4)
    assert pool.price_per_node_hour == pytest.approx(4.6016)
    assert pool.price_source == "catalogue:g6.12xlarge"


def test_a_discovered_pool_with_an_unknown_instance_type_is_left_out_with_a_reason():
    node = Node(
        "n1",
        {
            "cloud.google.com/gke-nodepool": "x",
            "node.kubernetes.io/instance-type": "mystery-9000",
            "nvidia.com/gpu.product": "NVIDIA-L4",
        },
        gpus=1,
    )
    cluster = build_cluster(nodes=[node])
    assert cluster.pools == ()
    (excluded,) = cluster.excluded
    assert excluded.code == "NoPrice"
    assert "mystery-9000" in excluded.reason


def test_an_unknown_gpu_leaves_the_pool_out():
    node = Node(
        "n1",
        {
            "cloud.google.com/gke-nodepool": "x",
            "node.kubernetes.io/instance-type": "g6.xlarge",
            "nvidia.com/gpu.product": "Acme-Z1",
        },
        gpus=1,
    )
    (excluded,) = build_cluster(nodes=[node]).excluded
    assert excluded.code == "Invalid" and "Acme-Z1" in excluded.reason


def test_placement_pools_claim_their_nodes_and_may_override_the_price():
    spec = PlacementPoolSpec(
        node_selector={"cloud.google.com/gke-nodepool": "l4"},
        price_per_node_hour=3.0,
        sharing="mps",
    )
    cluster = build_cluster(pools=[("cheap-l4", spec)], nodes=l4_nodes(2) + cpu_nodes(1))
    assert [p.name for p in cluster.pools] == ["cheap-l4", "cpu"]
    pool = cluster.pool("cheap-l4")
    assert (pool.source, pool.price_per_node_hour, pool.price_source) == (
        "PlacementPool",
        3.0,
        "spec",
    )
    assert pool.nodes == ("l4-0", "l4-1") and pool.shares_gpus
    assert cluster.pool("cpu").cpu_only


def test_nodes_in_no_pool_are_noticed():
    cluster = build_cluster(nodes=[Node("stray", {}, gpus=0)])
    assert cluster.pools == () and "stray" in cluster.notices[0]


def test_usable_memory_is_catalogue_capacity_times_vllms_utilization_without_reports():
    pool = build_cluster(nodes=a100_nodes()).pool("a100")
    assert pool.usable_bytes_per_gpu == int(80 * GIB * GPU_MEMORY_UTILIZATION)
    assert not pool.measured


def report(free_gib, observed=NOW, healthy=True, heartbeat=30):
    gpus = [
        {
            "index": i,
            "memoryTotalBytes": 80 * GIB,
            "memoryFreeBytes": int(f * GIB),
            "healthy": healthy if i == 0 else True,
        }
        for i, f in enumerate(free_gib)
    ]
    return NodeMemoryReportStatus.model_validate(
        {"observedAt": observed, "heartbeatSeconds": heartbeat, "gpus": gpus}
    )


def test_a_fresh_report_gives_measured_free_memory_less_a_margin():
    status = report([40] * 8)
    cluster = build_cluster(nodes=a100_nodes(), reports=[("a100-0", status)], now=NOW)
    pool = cluster.pool("a100")
    assert pool.measured
    assert pool.usable_bytes_per_gpu == 40 * GIB - SAFETY_MARGIN_BYTES


def test_measured_free_never_exceeds_the_utilization_cap():
    cluster = build_cluster(nodes=a100_nodes(), reports=[("a100-0", report([79.5] * 8))], now=NOW)
    assert cluster.pool("a100").usable_bytes_per_gpu == int(80 * GIB * GPU_MEMORY_UTILIZATION)


def test_a_report_older_than_three_heartbeats_is_stale_and_ignored():
    old = report([10] * 8, observed=NOW - timedelta(seconds=91))
    cluster = build_cluster(nodes=a100_nodes(), reports=[("a100-0", old)], now=NOW)
    assert not cluster.pool("a100").measured
    assert cluster.pool("a100").usable_bytes_per_gpu == int(80 * GIB * 0.9)
    fresh = report([10] * 8, observed=NOW - timedelta(seconds=89))
    cluster = build_cluster(nodes=a100_nodes(), reports=[("a100-0", fresh)], now=NOW)
    assert cluster.pool("a100").measured


def test_unhealthy_gpus_are_not_usable():
    cluster = build_cluster(
        nodes=a100_nodes(), reports=[("a100-0", report([70] * 8, healthy=False))], now=NOW
    )
    assert cluster.capacity("a100").total_gpus == 7


def test_capacity_places_whole_gpus_best_fit_and_releases_them():
    cap = PoolCapacity(["a", "b"], [[10] * 8, [10] * 2], sharing=False)
    assert cap.replicas_possible(2, 5, 99) == 5
    assert cap.place(2, 5, 1, owner=("ns", "x")) == ["b"]  # the tightest node first
    assert cap.place(4, 5, 2, owner=("ns", "y")) == ["a", "a"]
    assert cap.place(1, 5, 1) is None
    assert cap.free_whole_gpus == 0
    assert cap.release(("ns", "y")) and cap.free_whole_gpus == 8


def test_sharing_pools_pack_small_replicas_into_one_gpu_by_memory():
    cap = PoolCapacity(["a"], [[20, 20]], sharing=True)
    assert cap.replicas_possible(1, 6, 99) == 6
    assert cap.place(1, 6, 3, owner=("ns", "x")) == ["a", "a", "a"]
    assert cap.free_whole_gpus == 1  # three replicas share the first GPU
    assert cap.place(2, 1, 1) is None  # a 2-GPU replica needs two untouched GPUs
    cap.release(("ns", "x"))
    assert cap.free_whole_gpus == 2


def test_uneven_measured_memory_is_placed_by_scanning():
    cap = PoolCapacity(["a", "b"], [[10, 10], [30, 30]], sharing=False)
    assert cap.replicas_possible(1, 20, 99) == 2
    assert cap.place(2, 20, 1) == ["b"]


def test_reserve_takes_room_for_an_owner_and_returns_a_new_cluster():
    cluster = build_cluster(nodes=l4_nodes(2))
    placement = PlacementStatus(
        pool="l4", precision="bf16", tier="gpu", gpus_per_replica=2, replicas=3, nodes=["l4-1"]
    )
    reserved = cluster.reserve(placement, None, owner=("ml", "chat"))
    assert cluster.capacity("l4").free_whole_gpus == 8
    assert reserved.capacity("l4").free_whole_gpus == 2
    assert ("ml", "chat") in reserved.owners()
    again = reserved.reserve(placement, None, owner=("ml", "chat"))  # replaces, not adds
    assert again.capacity("l4").free_whole_gpus == 2

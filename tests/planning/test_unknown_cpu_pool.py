"""A CPU-only pool whose instance type the catalogue lacks is planned from its nodes."""

from planning_clusters import GIB, gke_node
from test_plan import request, spec

from memplace.api import PlacementPoolSpec
from memplace.planning.discovery import build_cluster
from memplace.planning.generic_cpu import GENERIC_BANDWIDTH_PER_VCPU
from memplace.planning.nodes import Node
from memplace.planning.plan import plan_cluster


def _cpu_pool(price=0.714):
    pool = PlacementPoolSpec.model_validate(
        {"nodeSelector": {"pool": "c7i"}, "pricePerNodeHour": price}
    )
    nodes = [
        Node(
            f"c7i-{i}",
            {"pool": "c7i", "node.kubernetes.io/instance-type": "c7i.4xlarge"},
            gpus=0,
            vcpus=15.5,
            memory_bytes=30 * GIB,
        )
        for i in range(2)
    ]
    return [("c7i", pool)], nodes


def test_an_unknown_cpu_instance_type_with_a_price_is_planned_from_allocatable():
    pools, nodes = _cpu_pool()
    cluster = build_cluster(pools=pools, nodes=nodes)
    pool = cluster.pool("c7i")
    assert pool is not None and pool.instance.id == "c7i.4xlarge"
    assert pool.instance.cpu_memory_bandwidth_bytes_per_s == 15.5 * GENERIC_BANDWIDTH_PER_VCPU
    assert any("CPU speed assumed" in n and "c7i" in n for n in cluster.notices)
    batch_job = spec(
        model={"name": "small", "parameters": 1.7e9, "config": None},
        slo={"timeToFirstTokenMs": None, "timePerOutputTokenMs": 1000},
        workload={"outputTokensPerSecond": 0, "contextTokens": 4096, "concurrency": 1},
        placement={"tiers": ["cpu"]},
    )
    plan = plan_cluster([request("tagger", spec=batch_job)], cluster)[0]
    assert plan.phase == "Placed", plan.message
    assert plan.placement.pool == "c7i" and plan.placement.tier == "cpu"
    assert "CPU speed assumed: instance type not in the catalogue" in plan.message


def test_an_unknown_cpu_pool_beside_gpus_is_an_alternative_not_silently_dropped():
    pools, nodes = _cpu_pool()
    gpu = [gke_node("l4-0", "l4", "g2-standard-48", "NVIDIA-L4", 4)]
    cluster = build_cluster(pools=pools, nodes=nodes + gpu)
    plan = plan_cluster([request("chat")], cluster)[0]
    assert plan.placement.pool == "l4"
    assert any(a.pool == "c7i" for a in plan.alternatives)


def test_an_unknown_cpu_pool_without_allocatable_is_excluded_with_a_reason():
    pools, _ = _cpu_pool()
    nodes = [
        Node(
            "c7i-0",
            {"pool": "c7i", "node.kubernetes.io/instance-type": "c7i.4xlarge"},
            gpus=0,
            vcpus=0,
            memory_bytes=0,
        )
    ]
    cluster = build_cluster(pools=pools, nodes=nodes)
    assert cluster.pool("c7i") is None
    [excluded] = cluster.excluded
    assert excluded.code == "Invalid" and "allocatable" in excluded.reason

"""A pool's GPU memory: the agent's NVML report, else GFD's label, else the catalogue's driver
total; the smallest of the pool's nodes; and the L4 example of issue 9 that this fixes."""

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from planning_clusters import a100_nodes, gke_node, l4_nodes

from memplace.api import ModelDeploymentSpec, NodeMemoryReportStatus
from memplace.planning.discovery import build_cluster
from memplace.planning.gpu_memory import GpuMemory, node_gpu_memory, parse_gfd_memory, smallest
from memplace.planning.memory import GPU_MEMORY_UTILIZATION
from memplace.planning.nodes import Node
from memplace.planning.plan import DeploymentRequest, plan_deployment
from memplace.planning.pool_sizing import SAFETY_MARGIN_BYTES

MiB, GiB = 1 << 20, 1 << 30
NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
CONFIGS = Path(__file__).parents[1] / "fixtures" / "configs"


def labelled(nodes: list[Node], **labels: str) -> list[Node]:
    return [Node(n.name, {**n.labels, **labels}, n.gpus, n.vcpus, n.memory_bytes) for n in nodes]


def report(total_mib: int, free_mib: int, gpus: int = 8, observed=NOW) -> NodeMemoryReportStatus:
    rows = [
        {"index": i, "memoryTotalBytes": total_mib * MiB, "memoryFreeBytes": free_mib * MiB}
        for i in range(gpus)
    ]
    return NodeMemoryReportStatus.model_validate(
        {"observedAt": observed, "heartbeatSeconds": 30, "gpus": rows}
    )


# --- the pure rules --------------------------------------------------------------------------


def test_the_label_is_mib_and_is_not_read_under_mig():
    assert parse_gfd_memory({"nvidia.com/gpu.memory": "23034"}) == 23034 * MiB
    assert parse_gfd_memory({}) is None
    mig = {"nvidia.com/gpu.product": "NVIDIA-A100-SXM4-40GB-MIG-1g.5gb"}
    assert parse_gfd_memory({**mig, "nvidia.com/gpu.memory": "4864"}) is None


@pytest.mark.parametrize("text", ["lots", "0", "-5", "22.5"])
def test_a_label_that_is_not_a_positive_mib_count_is_an_error_naming_it(text):
    with pytest.raises(ValueError, match="nvidia.com/gpu.memory"):
        parse_gfd_memory({"nvidia.com/gpu.memory": text})


def test_a_node_takes_nvml_then_the_label_then_the_catalogue():
    assert node_gpu_memory("n", [80 * GiB, 79 * GiB], 70 * GiB, 60 * GiB) == GpuMemory(
        "n", 79 * GiB, "nvml"
    )
    assert node_gpu_memory("n", [None], 70 * GiB, 60 * GiB).source == "gfd-label"
    assert node_gpu_memory("n", [], None, 60 * GiB) == GpuMemory("n", 60 * GiB, "catalogue")


def test_a_pool_takes_its_smallest_node_and_says_when_they_disagree():
    same = [GpuMemory("a", 5, "catalogue"), GpuMemory("b", 5, "nvml")]
    assert smallest("p", same) == (GpuMemory("b", 5, "nvml"), None)
    low, note = smallest(
        "p", [GpuMemory("a", 9 * MiB, "nvml"), GpuMemory("b", 7 * MiB, "gfd-label")]
    )
    assert low == GpuMemory("b", 7 * MiB, "gfd-label")
    assert note == (
        "pool p: nodes disagree on GPU memory (7 MiB (gfd-label) on b, 9 MiB (nvml) on a); "
        "planning with the smallest, 7 MiB (gfd-label)"
    )
    assert smallest("p", []) == (None, None)


# --- in the cluster --------------------------------------------------------------------------


def test_without_labels_or_reports_the_catalogue_driver_total_is_used():
    pool = build_cluster(nodes=l4_nodes()).pool("l4")
    assert (pool.gpu_memory_bytes, pool.gpu_memory_source) == (23034 * MiB, "catalogue")
    assert pool.usable_bytes_per_gpu == int(23034 * MiB * GPU_MEMORY_UTILIZATION)
    assert round(pool.usable_bytes_per_gpu / GiB, 1) == 20.2  # not 0.9 × 24 = 21.6


def test_the_gfd_label_wins_over_the_catalogue():
    nodes = labelled(l4_nodes(), **{"nvidia.com/gpu.memory": "22000"})
    cluster = build_cluster(nodes=nodes)
    pool = cluster.pool("l4")
    assert (pool.gpu_memory_bytes, pool.gpu_memory_source) == (22000 * MiB, "gfd-label")
    assert pool.usable_bytes_per_gpu == int(22000 * MiB * GPU_MEMORY_UTILIZATION)
    assert cluster.notices == ()


def test_a_fresh_nvml_report_wins_over_the_label_and_is_not_capped_by_the_catalogue():
    # an RTX 6000 Ada with ECC off reports 49140 MiB; the catalogue keeps the ECC-on 46068
    nodes = [
        gke_node("ws-0", "ws", "g2-standard-48", "NVIDIA-RTX-6000-Ada-Generation", 1),
    ]
    nodes = labelled(nodes, **{"nvidia.com/gpu.memory": "46068"})
    fresh = report(49140, 49000, gpus=1)
    pool = build_cluster(nodes=nodes, reports=[("ws-0", fresh)], now=NOW).pool("ws")
    assert (pool.gpu_memory_bytes, pool.gpu_memory_source) == (49140 * MiB, "nvml")
    assert pool.measured
    assert pool.usable_bytes_per_gpu == int(49140 * MiB * GPU_MEMORY_UTILIZATION)


def test_measured_free_memory_still_limits_below_the_cap():
    fresh = report(81920, 30000)
    pool = build_cluster(nodes=a100_nodes(), reports=[("a100-0", fresh)], now=NOW).pool("a100")
    assert pool.gpu_memory_source == "nvml"
    assert pool.usable_bytes_per_gpu == 30000 * MiB - SAFETY_MARGIN_BYTES


def test_a_stale_report_falls_back_to_the_label():
    stale = report(70000, 70000, observed=NOW - timedelta(minutes=5))
    nodes = labelled(a100_nodes(), **{"nvidia.com/gpu.memory": "81920"})
    pool = build_cluster(nodes=nodes, reports=[("a100-0", stale)], now=NOW).pool("a100")
    assert (pool.gpu_memory_bytes, pool.gpu_memory_source) == (81920 * MiB, "gfd-label")
    assert not pool.measured


def test_nodes_that_disagree_plan_at_the_smallest_with_a_note():
    one, two = l4_nodes(2)
    nodes = labelled([one], **{"nvidia.com/gpu.memory": "23034"}) + labelled(
        [two], **{"nvidia.com/gpu.memory": "22000"}
    )
    cluster = build_cluster(nodes=nodes)
    pool = cluster.pool("l4")
    assert (pool.gpu_memory_bytes, pool.gpu_memory_source) == (22000 * MiB, "gfd-label")
    assert cluster.capacity("l4").usable == [[int(22000 * MiB * 0.9)] * 4] * 2
    assert cluster.notices == (
        "pool l4: nodes disagree on GPU memory (22000 MiB (gfd-label) on l4-1, 23034 MiB "
        "(gfd-label) on l4-0); planning with the smallest, 22000 MiB (gfd-label)",
    )


def test_a_bad_label_is_noticed_and_the_catalogue_used():
    nodes = labelled(l4_nodes(1), **{"nvidia.com/gpu.memory": "lots"})
    cluster = build_cluster(nodes=nodes)
    assert cluster.pool("l4").gpu_memory_source == "catalogue"
    assert cluster.notices == (
        "node l4-0: label nvidia.com/gpu.memory='lots' is not a positive number of MiB; ignored",
    )


# --- issue 9's example -----------------------------------------------------------------------


def qwen3_8b_bf16_8k_by_4() -> DeploymentRequest:
    spec = ModelDeploymentSpec.model_validate(
        {
            "model": {
                "name": "Qwen/Qwen3-8B",
                "config": json.loads((CONFIGS / "qwen3-8b.json").read_text()),
            },
            "workload": {"contextTokens": 8192, "concurrency": 4},
            "slo": {"timeToFirstTokenMs": 2000, "timePerOutputTokenMs": 200},
            "quality": {"maxLoss": 0, "precisions": ["bf16"]},
            "placement": {"tiers": ["gpu"]},
        }
    )
    return DeploymentRequest("ml", "chat", spec)


def test_qwen3_8b_bf16_at_8k_by_4_no_longer_lands_on_one_l4():
    """21.4 GiB per GPU; an L4 reports 23034 MiB, so 0.9 × 22.5 = 20.2 GiB is usable. With the
    marketed 24 GiB (21.6 usable) it used to be placed on one L4, an OOM at start-up."""
    l40s = [gke_node("l40s-0", "l40s", "g6e.xlarge", "NVIDIA-L40S", 1)]
    cluster = build_cluster(nodes=l4_nodes(2) + a100_nodes(1) + l40s)
    plan = plan_deployment(qwen3_8b_bf16_8k_by_4(), cluster)
    assert plan.estimate.total_per_gpu == "21.4Gi"
    assert plan.estimate.total_bytes_per_gpu > cluster.pool("l4").usable_bytes_per_gpu
    assert plan.phase == "Placed"
    assert (plan.placement.gpu_model, plan.placement.gpus_per_replica) == ("L40S", 1)
    placement = plan.status_fields()["placement"]  # what status and `memplace plan -o json` show
    assert placement["gpuMemorySource"] == "catalogue"
    assert placement["usableGpuMemoryBytes"] == int(46068 * MiB * GPU_MEMORY_UTILIZATION)
    assert placement["usableGpuMemoryBytes"] >= plan.estimate.total_bytes_per_gpu


def test_an_l4_whose_label_reports_more_would_take_it():
    """The figure, not the GPU's name, decides: a (hypothetical) label of 24576 MiB fits it."""
    nodes = labelled(l4_nodes(2), **{"nvidia.com/gpu.memory": "24576"})
    plan = plan_deployment(qwen3_8b_bf16_8k_by_4(), build_cluster(nodes=nodes + a100_nodes(1)))
    assert (plan.placement.gpu_model, plan.placement.gpus_per_replica) == ("L4", 1)
    assert plan.placement.gpu_memory_source == "gfd-label"
    # the message people read (status, the Placed event, `memplace plan`) says it too
    assert "1 × 1 L4 (24576 MiB each, from gfd-label)" in plan.status_fields()["message"]

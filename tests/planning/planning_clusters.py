"""Small hand-built GKE clusters shared by the planning tests (real instance types, so the
catalogue prices them)."""

from memplace.planning.nodes import Node

GIB = 1 << 30


def gke_node(name: str, pool: str, itype: str, product: str | None, gpus: int, **kw) -> Node:
    labels = {"cloud.google.com/gke-nodepool": pool, "node.kubernetes.io/instance-type": itype}
    if product:
        labels["nvidia.com/gpu.product"] = product
    return Node(
        name,
        labels,
        gpus=gpus,
        vcpus=kw.get("vcpus", 46.0),
        memory_bytes=kw.get("memory", 180 * GIB),
        schedulable=kw.get("schedulable", True),
    )


def l4_nodes(count: int = 2, pool: str = "l4") -> list[Node]:
    return [gke_node(f"{pool}-{i}", pool, "g2-standard-48", "NVIDIA-L4", 4) for i in range(count)]


def a100_nodes(count: int = 1, pool: str = "a100") -> list[Node]:
    return [
        gke_node(
            f"{pool}-{i}",
            pool,
            "a2-ultragpu-8g",
            "NVIDIA-A100-SXM4-80GB",
            8,
            vcpus=94.0,
            memory=1300 * GIB,
        )
        for i in range(count)
    ]


def h100_nodes(count: int = 1, pool: str = "h100") -> list[Node]:
    return [
        gke_node(
            f"{pool}-{i}",
            pool,
            "a3-highgpu-8g",
            "NVIDIA-H100-80GB-HBM3",
            8,
            vcpus=200.0,
            memory=1800 * GIB,
        )
        for i in range(count)
    ]


def cpu_nodes(count: int = 1, pool: str = "cpu") -> list[Node]:
    return [
        gke_node(f"{pool}-{i}", pool, "n2-highmem-32", None, 0, vcpus=31.0, memory=250 * GIB)
        for i in range(count)
    ]

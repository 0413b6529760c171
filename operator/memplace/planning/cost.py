"""What a placement costs: the share of its nodes' price that its replicas occupy.

Cost is the only thing that ranks feasible candidates (``choose.py``); it never decides
feasibility.

How a node's price is split
---------------------------
A node is billed as one price per hour. Like OpenCost, we split it among the resources the node
carries in the ratio of reference unit prices, scaled so that the parts add up to the node's
price exactly. OpenCost's (and Kubecost's) model: "when explicit RAM, CPU or GPU prices are not
provided by your cloud provider, the model falls back to the ratio of base CPU, GPU and RAM
price inputs … normalized to ensure the sum of each component is equal to the total price of
the node" (docs.kubecost.com/architecture/node-pricing; the OpenCost specification,
opencost.io/docs/specification, defines node cost as CPU + GPU + RAM cost). We use OpenCost's
default base prices (its ``default.json``): $0.031611 per vCPU-hour, $0.004237 per GiB-hour of
RAM, $0.95 per GPU-hour (``OPENCOST_BASE_PRICES``).

Worked example, an 8 × A100-80GB node (96 vCPU, 1152 GiB) at $40.97/h: base weights are
8 × 0.95 = 7.60 (GPU), 96 × 0.031611 = 3.03 (CPU), 1152 × 0.004237 = 4.88 (RAM), total 15.51;
scaled by 40.97 / 15.51 the node's hour splits into $20.07 of GPUs ($2.51 each), $8.01 of CPU
and $12.89 of RAM.

What a replica pays (ours)
--------------------------
* **gpu / offload tier**: a replica holding ``g`` of the node's ``G`` GPUs pays for those GPUs
  and for ``g / G`` of the node's CPU and RAM, because pods on GPU nodes request CPU and memory
  in proportion to their GPUs (the rest of the node is stranded otherwise). So a replica pays
  ``g / G`` of the node price; the split shows where that money goes. Offloaded weights live in
  the replica's share of host RAM (``feasibility`` checks they fit there), so they cost nothing
  extra.
* **shared GPUs** (pools with ``sharing`` other than ``none``): a one-GPU replica pays the
  fraction of the GPU's usable memory it takes (and that fraction of the per-GPU CPU and RAM),
  so packing four small models into one GPU costs each a quarter.
* **cpu tier**: a replica occupies a whole CPU-only node: decoding on CPUs is bound by memory
  bandwidth, which all cores share, so a second replica on the node would halve both. It pays
  the node's vCPUs and RAM, i.e. the node price.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = [
    "OPENCOST_BASE_PRICES",
    "NodePriceSplit",
    "ReplicaCost",
    "cost_per_million_tokens",
    "replica_cost",
    "split_node_price",
]

GIB = 1 << 30

OPENCOST_BASE_PRICES = {"cpu": 0.031611, "ram_gib": 0.004237, "gpu": 0.95}
"""OpenCost's default base prices (USD per vCPU-hour, per GiB-hour of RAM, per GPU-hour): only
their ratio matters here."""


@dataclass(frozen=True)
class NodePriceSplit:
    """A node's hourly price as unit prices that add back up to it."""

    per_gpu_hour: float
    per_vcpu_hour: float
    per_gib_hour: float

    def total(self, gpus: float, vcpus: float, memory_bytes: float) -> float:
        return (
            gpus * self.per_gpu_hour
            + vcpus * self.per_vcpu_hour
            + memory_bytes / GIB * self.per_gib_hour
        )


def split_node_price(
    price_per_hour: float, gpus: int, vcpus: float, memory_bytes: int
) -> NodePriceSplit:
    """Split a node's price among its GPUs, vCPUs and RAM in OpenCost's base-price ratio."""
    base = OPENCOST_BASE_PRICES
    weight = gpus * base["gpu"] + vcpus * base["cpu"] + memory_bytes / GIB * base["ram_gib"]
    if weight <= 0:
        # A node that declares nothing: charge it all to whatever it is used for.
        return NodePriceSplit(price_per_hour, 0.0, 0.0)
    scale = price_per_hour / weight
    return NodePriceSplit(base["gpu"] * scale, base["cpu"] * scale, base["ram_gib"] * scale)


@dataclass(frozen=True)
class ReplicaCost:
    """What one replica pays per hour, by resource."""

    gpu: float
    cpu: float
    ram: float

    @property
    def total(self) -> float:
        return self.gpu + self.cpu + self.ram


def replica_cost(pool: Any, gpus: int, gpu_fraction: float = 1.0) -> ReplicaCost:
    """Per-hour cost of one replica in ``pool`` holding ``gpus`` GPUs (0 = a CPU-only node).

    ``gpu_fraction`` (0 < f ≤ 1) is the share of one GPU's usable memory a replica takes in a
    pool that shares GPUs; 1 otherwise."""
    per_node_gpus = pool.gpus_per_node if not pool.cpu_only else 0
    split = split_node_price(
        pool.price_per_node_hour, per_node_gpus, pool.vcpus_per_node, pool.memory_bytes_per_node
    )
    if pool.cpu_only or per_node_gpus == 0:
        if split.per_vcpu_hour == 0 and split.per_gib_hour == 0:
            return ReplicaCost(gpu=0.0, cpu=pool.price_per_node_hour, ram=0.0)
        return ReplicaCost(
            gpu=0.0,
            cpu=pool.vcpus_per_node * split.per_vcpu_hour,
            ram=pool.memory_bytes_per_node / GIB * split.per_gib_hour,
        )
    held = gpus * min(max(gpu_fraction, 0.0), 1.0)
    share = held / per_node_gpus
    return ReplicaCost(
        gpu=held * split.per_gpu_hour,
        cpu=share * pool.vcpus_per_node * split.per_vcpu_hour,
        ram=share * pool.memory_bytes_per_node / GIB * split.per_gib_hour,
    )


def cost_per_million_tokens(per_hour: float, tokens_per_second: float) -> float | None:
    """USD per million output tokens at ``tokens_per_second``; None when nothing is served."""
    if tokens_per_second <= 0:
        return None
    return per_hour / (tokens_per_second * 3600.0) * 1e6

"""The cluster as the planner sees it: pools of interchangeable nodes, their price and free room.

Inputs are plain data the shell has already read (PlacementPool specs, Node objects as
``kubectl get nodes -o yaml`` prints them, NodeMemoryReport statuses, the time now); nothing
here talks to Kubernetes or reads a clock. The steps, one module each:

1. ``nodes``: a Node manifest → ``Node`` (``quantities`` parses its CPU and memory);
2. ``discovery``: which nodes form which pools (PlacementPools, then platform node-pool labels),
   and ``build_cluster``, the entry point;
3. ``pool_sizing``: one group of nodes → a ``Pool`` (``pools``) with the usable memory of each
   GPU, or an ``ExcludedPool`` with its reason (``generic_cpu`` for CPU-only pools the
   catalogue does not know);
4. ``capacity``: the free room of one pool (``PoolCapacity``), and ``cluster``: all pools and
   their room (``Cluster``, with ``reserve``).

This module only re-exports their public names, so that ``from memplace.planning.inventory
import …`` keeps working for callers not yet pointed at the module that holds the name.
"""

from __future__ import annotations

from .capacity import PoolCapacity
from .cluster import Cluster
from .discovery import PLATFORM_LABELS, build_cluster
from .generic_cpu import (
    GENERIC_BANDWIDTH_PER_VCPU,
    GENERIC_BF16_FLOPS_PER_VCPU,
    GENERIC_CPU,
    generic_cpu_instance,
)
from .memory import GPU_MEMORY_UTILIZATION
from .nodes import (
    LABEL_GPU_COUNT,
    LABEL_GPU_PRODUCT,
    LABEL_INSTANCE_TYPE,
    LABEL_INSTANCE_TYPE_BETA,
    RESOURCE_GPU,
    Node,
    node_from_manifest,
)
from .pool_sizing import HOST_MEMORY_UTILIZATION, SAFETY_MARGIN_BYTES, STALE_AFTER_HEARTBEATS
from .pools import ExcludedPool, Pool
from .quantities import gib, parse_quantity

__all__ = [
    "GENERIC_BANDWIDTH_PER_VCPU",
    "GENERIC_BF16_FLOPS_PER_VCPU",
    "GENERIC_CPU",
    "GPU_MEMORY_UTILIZATION",
    "HOST_MEMORY_UTILIZATION",
    "LABEL_GPU_COUNT",
    "LABEL_GPU_PRODUCT",
    "LABEL_INSTANCE_TYPE",
    "LABEL_INSTANCE_TYPE_BETA",
    "PLATFORM_LABELS",
    "RESOURCE_GPU",
    "SAFETY_MARGIN_BYTES",
    "STALE_AFTER_HEARTBEATS",
    "Cluster",
    "ExcludedPool",
    "Node",
    "Pool",
    "PoolCapacity",
    "build_cluster",
    "generic_cpu_instance",
    "gib",
    "node_from_manifest",
    "parse_quantity",
]

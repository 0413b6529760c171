"""One pool from its nodes: its GPU, price, host shape and the usable memory of every GPU.

``discovery.build_cluster`` decides which nodes form a pool; ``build_pool`` sizes that group
through the catalogue, or says why it cannot (``ExcludedPool``): a pool with no price (no
``pricePerNodeHour`` and an instance type the catalogue does not know), or whose GPU the
catalogue does not know, is left out with a reason: the planner cannot rank what it cannot
price or size.

Usable GPU memory
-----------------
A GPU's usable memory is what one serving engine may fill with weights, KV cache, activations
and its own overhead. Its capacity is the pool's GPU memory (``gpu_memory``): a fresh NVML
report's total, else GFD's ``nvidia.com/gpu.memory`` label, else the catalogue's driver total,
the smallest over the pool's nodes (an L4: 23034 MiB, 20.2 GiB usable). Then:

* **unmeasured path** (no report, or a stale one): capacity × ``GPU_MEMORY_UTILIZATION`` (0.9).
  vLLM's ``--gpu-memory-utilization`` defaults to 0.9, "the fraction of GPU memory to be used for
  the model executor" (docs.vllm.ai/en/latest/models/engine_args.html); the 10 % left over
  holds the CUDA context, NCCL buffers and memory other processes hold.
* **measured path** (a fresh ``NodeMemoryReport``): per GPU, min(capacity × 0.9, measured free
  − ``SAFETY_MARGIN_BYTES``), so memory held by something memplace does not know about (another
  tenant, a leaked process) is not counted twice as free. vLLM itself refuses to start when free
  memory is below utilization × total, so the measured figure is the one that matters.
  A report is fresh while ``now − observedAt ≤ STALE_AFTER_HEARTBEATS × heartbeatSeconds``
  (3 heartbeats: one lost report is not enough to distrust a node); after that it is ignored.
  GPUs a fresh report marks unhealthy are not usable at all.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from .generic_cpu import generic_cpu_instance
from .gpu_memory import GpuMemory, node_gpu_memory, smallest
from .memory import usable_gpu_bytes
from .nodes import Node
from .pools import ExcludedPool, Pool

SAFETY_MARGIN_BYTES = 1 << 30
"""Kept free below a measured free figure: allocator fragmentation and the CUDA context."""
STALE_AFTER_HEARTBEATS = 3
"""A report older than this many heartbeats is stale: catalogue capacity is used instead."""
HOST_MEMORY_UTILIZATION = 0.9
"""Fraction of a node's allocatable memory that offloaded weights (or a CPU replica) may use."""


def _fresh(report: Any, now: datetime | None) -> bool:
    if report is None or now is None or not report.observed_at or not report.heartbeat_seconds:
        return False
    observed = datetime.fromisoformat(str(report.observed_at).replace("Z", "+00:00"))
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    age = (now - observed).total_seconds()
    return age <= STALE_AFTER_HEARTBEATS * float(report.heartbeat_seconds)


def _find_gpu(catalogue: Any, key: str | None) -> Any:
    if not key or catalogue is None:
        return None
    try:
        return catalogue.find_gpu(key)
    except (KeyError, LookupError, ValueError):
        return None


def _find_instance(catalogue: Any, key: str | None) -> Any:
    if not key or catalogue is None:
        return None
    instances = getattr(catalogue, "instances", None)
    if instances is not None and hasattr(instances, "get"):
        return instances.get(key)
    try:
        return catalogue.instance(key)
    except (KeyError, LookupError, ValueError):
        return None


def _most_common(values: Iterable[Any]) -> Any:
    counts = Counter(v for v in values if v)
    if not counts:
        return None
    return sorted(counts.items(), key=lambda kv: (-kv[1], str(kv[0])))[0][0]


@dataclass
class NodeGroup:
    """Nodes ``discovery`` put in one pool, with the pool's name, where it came from
    (``PlacementPool`` or a platform), its selector and its PlacementPool spec (None if
    discovered)."""

    name: str
    source: str
    selector: dict[str, str]
    nodes: list[Node]
    spec: Any = None


def build_pool(
    group: NodeGroup, reports: Mapping[str, Any], now: datetime | None, catalogue: Any
) -> tuple[Pool, list[list[int]], list[str]] | ExcludedPool:
    """The group as a ``Pool``, the usable bytes of each GPU (one slot per node when CPU-only)
    of its schedulable nodes, and notices; or ``ExcludedPool`` when it cannot be priced or sized."""
    spec = group.spec
    schedulable = [n for n in group.nodes if n.schedulable]
    spec_gpu = getattr(spec, "gpu", None) if spec is not None else None

    itype = (getattr(spec, "instance_type", None) if spec else None) or _most_common(
        n.instance_type for n in group.nodes
    )
    instance = _find_instance(catalogue, itype)

    gpu_key = getattr(spec_gpu, "model", None) if spec_gpu else None
    gpu_key = gpu_key or _most_common(n.gpu_product for n in group.nodes)
    if not gpu_key:
        gpu_key = _most_common(
            g.name for n in group.nodes for g in getattr(reports.get(n.name), "gpus", None) or []
        )
    count_hint = (getattr(spec_gpu, "count", None) if spec_gpu else None) or max(
        (n.gpu_count for n in group.nodes), default=0
    )
    if not gpu_key and not count_hint and instance is not None and instance.gpu_count:
        gpu_key, count_hint = instance.gpu, instance.gpu_count
    gpu = _find_gpu(catalogue, gpu_key) if gpu_key else None
    if gpu_key and gpu is None:
        return ExcludedPool(
            group.name, "Invalid", f"GPU {gpu_key!r} is not in the catalogue: it cannot be sized"
        )
    if gpu is not None and not count_hint:
        count_hint = instance.gpu_count if instance is not None else 1

    price = getattr(spec, "price_per_node_hour", None) if spec else None
    source = "spec"
    if price is None and instance is not None:
        price, source = float(instance.price_per_hour), f"catalogue:{instance.id}"
    if price is None:
        why = (
            f"instance type {itype!r} is not in the catalogue"
            if itype
            else "its nodes carry no node.kubernetes.io/instance-type label"
        )
        return ExcludedPool(
            group.name, "NoPrice", f"no pricePerNodeHour and {why}: the pool cannot be priced"
        )

    vcpus = _most_common(n.vcpus for n in group.nodes) or (instance.vcpus if instance else 0)
    memory = _most_common(n.memory_bytes for n in group.nodes) or (
        instance.memory_bytes if instance else 0
    )
    assumed: list[str] = []
    if gpu is None and instance is None:
        if not vcpus or not memory:
            return ExcludedPool(
                group.name,
                "Invalid",
                f"CPU-only, instance type {itype!r} not in the catalogue and its nodes report no "
                "allocatable CPU or memory: nothing to size CPU serving from",
            )
        instance = generic_cpu_instance(itype or group.name, vcpus, memory, float(price))
        assumed.append(
            f"pool {group.name}: CPU speed assumed: instance type {instance.id} not in the "
            f"catalogue ({vcpus:g} vCPUs: {instance.cpu_memory_bandwidth_bytes_per_s / 1e9:.0f} "
            f"GB/s, {instance.cpu_bf16_tflops:g} bf16 TFLOPS as a generic server)"
        )
    fresh = {n.name: reports[n.name] for n in group.nodes if _fresh(reports.get(n.name), now)}
    gpu_mem, notes = _pool_gpu_memory(group, gpu, fresh)
    gpu_memory = gpu_mem.total_bytes if gpu_mem is not None else 0
    cap = usable_gpu_bytes(gpu_memory)
    usable, host_bytes = _usable_bytes(schedulable, fresh, gpu, count_hint, gpu_memory, cap)

    usable_per_gpu = 0 if gpu is None else max((b for u in usable for b in u), default=cap)
    disk = int(getattr(instance, "local_nvme_bytes", 0) or 0) if instance is not None else 0
    pool = Pool(
        name=group.name,
        source=group.source,
        node_selector=group.selector,
        gpu=gpu,
        gpus_per_node=int(count_hint or 0) if gpu is not None else 0,
        instance=instance,
        price_per_node_hour=float(price),
        price_source=source,
        vcpus_per_node=float(vcpus or 0),
        memory_bytes_per_node=int(memory or 0),
        sharing=getattr(spec, "sharing", "none") if spec else "none",
        spot=bool(getattr(spec, "spot", False)) if spec else False,
        tolerations=tuple(getattr(spec, "tolerations", ()) or ()) if spec else (),
        nodes=tuple(n.name for n in schedulable),
        gpu_memory_bytes=gpu_memory,
        gpu_memory_source=gpu_mem.source if gpu_mem is not None else None,
        usable_bytes_per_gpu=usable_per_gpu,
        host_bytes_per_node=max(host_bytes, default=int(memory * HOST_MEMORY_UTILIZATION)),
        disk_bytes_per_node=disk,
        measured=any(fresh.get(n.name) is not None and fresh[n.name].gpus for n in schedulable),
    )
    return pool, usable, notes + assumed


def _usable_bytes(
    schedulable: list[Node],
    fresh: Mapping[str, Any],
    gpu: Any,
    count_hint: int,
    gpu_memory: int,
    cap: int,
) -> tuple[list[list[int]], list[int]]:
    """Per schedulable node: the usable bytes of each GPU (for a CPU-only node, one slot of its
    host room) and its host room for offloaded weights. ``cap`` is the unmeasured path's
    usable bytes per GPU; a fresh report takes the measured path (module docstring)."""
    usable: list[list[int]] = []
    host_bytes: list[int] = []
    for n in schedulable:
        report = fresh.get(n.name)
        host = int(n.memory_bytes * HOST_MEMORY_UTILIZATION)
        if report is not None and report.host is not None and report.host.mem_available_bytes:
            host = min(host, int(report.host.mem_available_bytes))
        host_bytes.append(host)
        if gpu is None:
            usable.append([host])  # one CPU slot per node
            continue
        count = n.gpu_count or count_hint
        if report is not None and report.gpus:
            gpus = []
            for g in sorted(report.gpus, key=lambda g: g.index)[: count or None]:
                if not g.healthy:
                    continue
                free = g.memory_free_bytes
                free = g.memory_total_bytes or gpu_memory if free is None else free
                gpus.append(max(0, min(cap, free - SAFETY_MARGIN_BYTES)))
            usable.append(gpus)
        else:
            usable.append([cap] * count)
    return usable, host_bytes


def _pool_gpu_memory(
    group: NodeGroup, gpu: Any, fresh: Mapping[str, Any]
) -> tuple[GpuMemory | None, list[str]]:
    """The pool's GPU memory (``gpu_memory.smallest`` of its nodes', schedulable ones first) and
    notes on labels it could not read or nodes that disagree."""
    if gpu is None:
        return None, []
    notes: list[str] = []
    figures: list[GpuMemory] = []
    nodes = [n for n in group.nodes if n.schedulable] or group.nodes
    for n in nodes:
        try:
            label = n.gpu_memory_bytes
        except ValueError as error:
            notes.append(f"node {n.name}: {error}; ignored")
            label = None
        report = fresh.get(n.name)
        totals = [g.memory_total_bytes for g in report.gpus] if report is not None else []
        figures.append(node_gpu_memory(n.name, totals, label, int(gpu.memory_bytes)))
    memory, disagreement = smallest(group.name, figures)
    if memory is None:
        memory = GpuMemory("", int(gpu.memory_bytes), "catalogue")
    return memory, notes + ([disagreement] if disagreement else [])

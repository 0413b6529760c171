"""The cluster as the planner sees it: pools of interchangeable nodes, their price and free room.

Inputs are plain data the shell has already read (PlacementPool specs, Node objects as
``kubectl get nodes -o yaml`` prints them, NodeMemoryReport statuses, the time now); nothing
here talks to Kubernetes or reads a clock.

Pools come from two places:

* explicit ``PlacementPool`` objects: the nodes whose labels match ``spec.nodeSelector``;
* discovered: nodes no PlacementPool claims, grouped by the node-pool label of their platform
  (``PLATFORM_LABELS``: GKE, EKS, Karpenter, AKS) and by instance type, priced through the
  catalogue by ``node.kubernetes.io/instance-type``.

A pool with no price (no ``pricePerNodeHour`` and an instance type the catalogue does not
know), or whose GPU the catalogue does not know, is left out with a reason
(``Cluster.excluded``): the planner cannot rank what it cannot price or size.

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

Capacity
--------
``Cluster`` keeps, per pool, which GPUs (or CPU-only nodes) are free and indexes them so that
placing a replica is not a scan of every node (``PoolCapacity``). ``Cluster.reserve`` takes the
room an already-placed deployment holds; the planner releases a deployment's own reservation
before it replans it.
"""

from __future__ import annotations

import bisect
import heapq
import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from .gpu_memory import GpuMemory, node_gpu_memory, parse_gfd_memory, smallest
from .memory import GPU_MEMORY_UTILIZATION, usable_gpu_bytes

__all__ = [
    "GPU_MEMORY_UTILIZATION",
    "PLATFORM_LABELS",
    "SAFETY_MARGIN_BYTES",
    "STALE_AFTER_HEARTBEATS",
    "Cluster",
    "ExcludedPool",
    "Node",
    "Pool",
    "PoolCapacity",
    "build_cluster",
    "node_from_manifest",
    "parse_quantity",
]

SAFETY_MARGIN_BYTES = 1 << 30
"""Kept free below a measured free figure: allocator fragmentation and the CUDA context."""
STALE_AFTER_HEARTBEATS = 3
"""A report older than this many heartbeats is stale: catalogue capacity is used instead."""
HOST_MEMORY_UTILIZATION = 0.9
"""Fraction of a node's allocatable memory that offloaded weights (or a CPU replica) may use."""

LABEL_INSTANCE_TYPE = "node.kubernetes.io/instance-type"
LABEL_INSTANCE_TYPE_BETA = "beta.kubernetes.io/instance-type"
LABEL_GPU_PRODUCT = "nvidia.com/gpu.product"
LABEL_GPU_COUNT = "nvidia.com/gpu.count"
RESOURCE_GPU = "nvidia.com/gpu"

PLATFORM_LABELS: tuple[tuple[str, str], ...] = (
    ("cloud.google.com/gke-nodepool", "gke"),
    ("eks.amazonaws.com/nodegroup", "eks"),
    ("karpenter.sh/nodepool", "karpenter"),
    ("kubernetes.azure.com/agentpool", "aks"),
)
"""Node labels that name a node's pool on the major platforms, in the order they are tried."""


# --- nodes ---------------------------------------------------------------------------------

_QUANTITY = re.compile(r"^([+-]?[0-9.]+(?:[eE][+-]?[0-9]+)?)([a-zA-Z]*)$")
_SUFFIX = {
    "": 1,
    "m": 1e-3,
    "k": 1e3,
    "M": 1e6,
    "G": 1e9,
    "T": 1e12,
    "P": 1e15,
    "E": 1e18,
    "Ki": 1 << 10,
    "Mi": 1 << 20,
    "Gi": 1 << 30,
    "Ti": 1 << 40,
    "Pi": 1 << 50,
    "Ei": 1 << 60,
}


def parse_quantity(value: Any) -> float:
    """A Kubernetes resource quantity as a number: ``"95690m"`` → 95.69, ``"16Gi"`` → 2**34."""
    if isinstance(value, int | float):
        return float(value)
    match = _QUANTITY.match(str(value).strip())
    if not match or match.group(2) not in _SUFFIX:
        raise ValueError(f"not a Kubernetes quantity: {value!r}")
    return float(match.group(1)) * _SUFFIX[match.group(2)]


@dataclass(frozen=True)
class Node:
    """The parts of a Kubernetes Node the planner reads."""

    name: str
    labels: Mapping[str, str] = field(default_factory=dict, hash=False, compare=True)
    gpus: int = 0
    """Allocatable ``nvidia.com/gpu``."""
    vcpus: float = 0.0
    """Allocatable CPU, in cores."""
    memory_bytes: int = 0
    """Allocatable memory."""
    schedulable: bool = True
    """False when cordoned (``spec.unschedulable``) or not Ready."""

    @property
    def instance_type(self) -> str | None:
        return self.labels.get(LABEL_INSTANCE_TYPE) or self.labels.get(LABEL_INSTANCE_TYPE_BETA)

    @property
    def gpu_product(self) -> str | None:
        """GPU Feature Discovery's ``nvidia.com/gpu.product``, e.g. ``NVIDIA-L4``."""
        return self.labels.get(LABEL_GPU_PRODUCT)

    @property
    def gpu_memory_bytes(self) -> int | None:
        """GPU Feature Discovery's ``nvidia.com/gpu.memory`` (MiB) in bytes; None when absent or
        on a MIG node. ValueError when the label is not a positive number."""
        return parse_gfd_memory(self.labels)

    @property
    def gpu_count(self) -> int:
        """Allocatable GPUs, else GFD's ``nvidia.com/gpu.count``."""
        if self.gpus:
            return self.gpus
        try:
            return int(self.labels.get(LABEL_GPU_COUNT, 0))
        except ValueError:
            return 0


def node_from_manifest(manifest: Mapping[str, Any]) -> Node:
    """A Node object (as the API server or ``kubectl get nodes -o yaml`` gives it) → ``Node``.

    Reads ``status.allocatable`` (falling back to ``status.capacity``), the labels, cordoning
    and the Ready condition. Raises ``ValueError`` on a malformed quantity."""
    metadata = manifest.get("metadata") or {}
    status = manifest.get("status") or {}
    spec = manifest.get("spec") or {}
    resources = dict(status.get("capacity") or {})
    resources.update(status.get("allocatable") or {})
    conditions = status.get("conditions") or []
    ready = all(c.get("status") == "True" for c in conditions if c.get("type") == "Ready")
    name = metadata.get("name")
    if not name:
        raise ValueError("a Node without metadata.name")
    return Node(
        name=str(name),
        labels={str(k): str(v) for k, v in (metadata.get("labels") or {}).items()},
        gpus=int(parse_quantity(resources.get(RESOURCE_GPU, 0))),
        vcpus=parse_quantity(resources.get("cpu", 0)),
        memory_bytes=int(parse_quantity(resources.get("memory", 0))),
        schedulable=ready and not spec.get("unschedulable", False),
    )


# --- pools ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExcludedPool:
    """A pool the planner leaves out, and why (shown with every plan that could have used it)."""

    name: str
    code: str
    """A RejectionCode: ``NoPrice`` or ``Invalid``."""
    reason: str


@dataclass(frozen=True, eq=False)
class Pool:
    """A set of interchangeable nodes: one GPU model (or none), one price, one host shape."""

    name: str
    source: str
    """``PlacementPool`` or the platform it was discovered from (``gke``, ``eks`` …)."""
    node_selector: Mapping[str, str]
    gpu: Any
    """The catalogue ``Gpu``; None for a CPU-only pool."""
    gpus_per_node: int
    instance: Any
    """The catalogue ``InstanceType`` when known: host bandwidth and FLOPs for offload / cpu."""
    price_per_node_hour: float
    price_source: str
    vcpus_per_node: float
    memory_bytes_per_node: int
    sharing: str = "none"
    spot: bool = False
    tolerations: tuple[Any, ...] = ()
    nodes: tuple[str, ...] = ()
    gpu_memory_bytes: int = 0
    """Memory of one GPU: the smallest of the nodes' figures (``gpu_memory``)."""
    gpu_memory_source: str | None = None
    """Where ``gpu_memory_bytes`` came from: ``nvml``, ``gfd-label`` or ``catalogue``."""
    usable_bytes_per_gpu: int = 0
    """The most a replica can use on one GPU of this pool (the largest usable GPU)."""
    host_bytes_per_node: int = 0
    """Host memory usable for offloaded weights or a CPU replica, per node."""
    disk_bytes_per_node: int = 0
    """Local disk usable for offloaded weights, per node (only with offloadToDisk)."""
    measured: bool = False
    """Whether usable memory comes from fresh NodeMemoryReports."""

    @property
    def cpu_only(self) -> bool:
        return self.gpu is None

    @property
    def gpu_name(self) -> str | None:
        return None if self.gpu is None else self.gpu.id

    @property
    def shares_gpus(self) -> bool:
        """Whether several replicas may share one GPU, packed by memory."""
        return self.sharing != "none" and self.gpu is not None


# --- capacity ------------------------------------------------------------------------------


class PoolCapacity:
    """Free GPUs of one pool, indexed for placement (mutable; ``copy`` before changing shared).

    Each node has GPUs with a usable and a free byte count. Whole-GPU placements (every pool
    without sharing, and multi-GPU replicas everywhere) take untouched GPUs; in pools whose
    ``sharing`` allows it a one-GPU replica takes bytes from the GPU that fits it most tightly
    (best fit), so small models pack. A CPU-only node counts as one slot.

    Index: ``_buckets[k]`` is a heap of node indices with exactly ``k`` untouched GPUs (stale
    entries are skipped lazily), so a whole-GPU replica finds the tightest node in O(log n);
    ``_shared`` is a sorted list of (free bytes, node, gpu) for best-fit packing. Placement
    falls back to a scan only when a replica needs more memory than the pool's smallest usable
    GPU offers (nodes with measured, uneven free memory)."""

    __slots__ = (
        "names",
        "usable",
        "free",
        "whole",
        "whole_count",
        "_buckets",
        "_count_by_k",
        "_min_usable",
        "_shared",
        "sharing",
        "owners",
        "total_gpus",
        "free_whole_gpus",
        "answers",
    )

    def __init__(self, names: Sequence[str], usable: Sequence[Sequence[int]], sharing: bool):
        self.names = list(names)
        self.usable = [list(u) for u in usable]
        self.free = [list(u) for u in usable]
        self.whole = [[True] * len(u) for u in usable]
        self.whole_count = [len(u) for u in usable]
        self.sharing = sharing
        self.owners: dict[tuple[str, str], list[tuple[int, int, int, bool]]] = {}
        self.total_gpus = sum(len(u) for u in usable)
        """GPUs in the pool (slots, for CPU-only nodes)."""
        self.free_whole_gpus = self.total_gpus
        """GPUs no replica uses."""
        self.answers: dict = {}
        """Answers computed from the free room as it is now (the planner's NoCapacity per
        replica shape); emptied whenever a placement or release changes the room."""
        all_usable = [b for u in usable for b in u]
        self._min_usable = min(all_usable) if all_usable else 0
        self._rebuild_index()

    def _rebuild_index(self) -> None:
        width = max(self.whole_count, default=0)
        self._buckets: list[list[int]] = [[] for _ in range(width + 1)]
        self._count_by_k = [0] * (width + 1)
        for i, k in enumerate(self.whole_count):
            self._buckets[k].append(i)
            self._count_by_k[k] += 1
        self._shared: list[tuple[int, int, int]] = []
        if self.sharing:
            self._shared = sorted(
                (self.free[n][g], n, g)
                for n in range(len(self.names))
                for g in range(len(self.free[n]))
            )

    def copy(self) -> PoolCapacity:
        clone = object.__new__(PoolCapacity)
        clone.names = self.names
        clone.usable = self.usable
        clone.free = [list(f) for f in self.free]
        clone.whole = [list(w) for w in self.whole]
        clone.whole_count = list(self.whole_count)
        clone.sharing = self.sharing
        clone.owners = {k: list(v) for k, v in self.owners.items()}
        clone._min_usable = self._min_usable
        clone.total_gpus = self.total_gpus
        clone.free_whole_gpus = self.free_whole_gpus
        clone._buckets = [list(b) for b in self._buckets]
        clone._count_by_k = list(self._count_by_k)
        clone._shared = list(self._shared)
        clone.answers = {}
        return clone

    # -- queries --

    def replicas_possible(self, gpus: int, bytes_per_gpu: int, limit: int) -> int:
        """How many replicas of ``gpus`` GPUs × ``bytes_per_gpu`` fit now (counting to limit)."""
        slots = max(gpus, 1)
        if self.sharing and gpus == 1:
            return self._shared_possible(bytes_per_gpu, limit)
        if bytes_per_gpu <= self._min_usable:
            total = 0
            for k in range(slots, len(self._count_by_k)):
                total += self._count_by_k[k] * (k // slots)
                if total >= limit:
                    return limit
            return total
        total = 0
        for n in range(len(self.names)):
            total += self._fitting_whole(n, bytes_per_gpu) // slots
            if total >= limit:
                return limit
        return total

    def _shared_possible(self, need: int, limit: int) -> int:
        if need <= 0:
            return limit
        start = bisect.bisect_left(self._shared, (need, -1, -1))
        total = 0
        for free, _, _ in self._shared[start:]:
            total += free // need
            if total >= limit:
                return limit
        return total

    def _fitting_whole(self, n: int, need: int) -> int:
        return sum(
            1 for g, whole in enumerate(self.whole[n]) if whole and self.usable[n][g] >= need
        )

    # -- changes --

    def place(
        self,
        gpus: int,
        bytes_per_gpu: int,
        replicas: int,
        owner: tuple[str, str] | None = None,
        prefer: Sequence[str] = (),
    ) -> list[str] | None:
        """Take room for ``replicas``; the node of each, or None (and no change) when short."""
        if self.replicas_possible(gpus, bytes_per_gpu, replicas) < replicas:
            return None
        self.answers.clear()
        preferred = [self.names.index(p) for p in prefer if p in self.names]
        nodes: list[str] = []
        for r in range(replicas):
            hint = preferred[r] if r < len(preferred) else None
            taken = self._place_one(gpus, bytes_per_gpu, hint)
            if taken is None:  # pragma: no cover - replicas_possible said yes
                raise AssertionError("capacity index out of step")
            n, slots, whole = taken
            nodes.append(self.names[n])
            if owner is not None:
                self.owners.setdefault(owner, []).extend(
                    (n, g, bytes_per_gpu, whole) for g in slots
                )
        return nodes

    def _place_one(
        self, gpus: int, need: int, hint: int | None
    ) -> tuple[int, list[int], bool] | None:
        slots = max(gpus, 1)
        if self.sharing and gpus == 1:
            return self._place_shared(need, hint)
        if hint is not None and self._fitting_whole(hint, need) >= slots:
            n = hint
        elif need <= self._min_usable:
            n = self._pop_bucket(slots)
            if n is None:
                return None
        else:
            best = None
            for i in range(len(self.names)):
                fit = self._fitting_whole(i, need)
                if fit >= slots and (best is None or fit < best[0]):
                    best = (fit, i)
            if best is None:
                return None
            n = best[1]
        candidates = sorted(
            (self.usable[n][g], g)
            for g in range(len(self.usable[n]))
            if self.whole[n][g] and self.usable[n][g] >= need
        )
        taken = [g for _, g in candidates[:slots]]
        for g in taken:
            self._take_whole(n, g)
        return n, taken, True

    def _pop_bucket(self, slots: int) -> int | None:
        for k in range(slots, len(self._buckets)):
            heap = self._buckets[k]
            while heap:
                n = heap[0]
                if self.whole_count[n] == k:
                    return n
                heapq.heappop(heap)
        return None

    def _set_whole_count(self, n: int, k: int) -> None:
        old = self.whole_count[n]
        self._count_by_k[old] -= 1
        self._count_by_k[k] += 1
        self.free_whole_gpus += k - old
        self.whole_count[n] = k
        heapq.heappush(self._buckets[k], n)

    def _take_whole(self, n: int, g: int) -> None:
        if self.sharing:
            self._shared_remove(n, g)
        self.whole[n][g] = False
        self.free[n][g] = 0
        self._set_whole_count(n, self.whole_count[n] - 1)

    def _shared_remove(self, n: int, g: int) -> None:
        key = (self.free[n][g], n, g)
        i = bisect.bisect_left(self._shared, key)
        if i < len(self._shared) and self._shared[i] == key:
            del self._shared[i]

    def _place_shared(self, need: int, hint: int | None) -> tuple[int, list[int], bool] | None:
        choice = None
        if hint is not None:
            fits = [
                (self.free[hint][g], g)
                for g in range(len(self.free[hint]))
                if self.free[hint][g] >= need
            ]
            if fits:
                choice = (hint, min(fits)[1])
        if choice is None:
            i = bisect.bisect_left(self._shared, (need, -1, -1))
            if i >= len(self._shared):
                return None
            _, n, g = self._shared[i]
            choice = (n, g)
        n, g = choice
        self._shared_remove(n, g)
        was_whole = self.whole[n][g]
        self.free[n][g] -= need
        if was_whole:
            self.whole[n][g] = False
            self._set_whole_count(n, self.whole_count[n] - 1)
        bisect.insort(self._shared, (self.free[n][g], n, g))
        return n, [g], False

    def release(self, owner: tuple[str, str]) -> bool:
        """Give back everything ``owner`` holds; whether it held anything."""
        held = self.owners.pop(owner, None)
        if not held:
            return False
        self.answers.clear()
        for n, g, need, whole in held:
            if self.sharing:
                self._shared_remove(n, g)
            if whole:
                self.free[n][g] = self.usable[n][g]
            else:
                self.free[n][g] = min(self.usable[n][g], self.free[n][g] + need)
            if self.free[n][g] == self.usable[n][g] and not self.whole[n][g]:
                self.whole[n][g] = True
                self._set_whole_count(n, self.whole_count[n] + 1)
            if self.sharing:
                bisect.insort(self._shared, (self.free[n][g], n, g))
        return True


# --- the cluster ---------------------------------------------------------------------------


class Cluster:
    """Pools, the pools left out and why, and the free room in each. Immutable to callers:
    ``reserve`` returns a new Cluster (copying only the pool it changes)."""

    def __init__(
        self,
        pools: Iterable[Pool],
        capacity: Mapping[str, PoolCapacity],
        excluded: Iterable[ExcludedPool] = (),
        notices: Iterable[str] = (),
        catalogue: Any = None,
        memo: dict | None = None,
    ):
        self.memo: dict = {} if memo is None else memo
        """The planner's memo of estimates and rankings: shared by copies, which differ only
        in free capacity (never in what the memo depends on)."""
        self.pools: tuple[Pool, ...] = tuple(sorted(pools, key=lambda p: p.name))
        self.excluded: tuple[ExcludedPool, ...] = tuple(sorted(excluded, key=lambda e: e.name))
        self.notices: tuple[str, ...] = tuple(notices)
        self.catalogue = catalogue
        self._capacity = dict(capacity)
        self._by_name = {p.name: p for p in self.pools}
        self.signature = tuple(
            (p.name, p.usable_bytes_per_gpu, p.price_per_node_hour) for p in self.pools
        )
        """What the ranking of candidates depends on (not the free room)."""

    def pool(self, name: str) -> Pool | None:
        return self._by_name.get(name)

    def capacity(self, name: str) -> PoolCapacity:
        return self._capacity[name]

    def owners(self) -> set[tuple[str, str]]:
        return {o for c in self._capacity.values() for o in c.owners}

    def mutable_copy(self) -> Cluster:
        """A cluster whose capacity may be changed in place (the planner's working copy)."""
        return Cluster(
            self.pools,
            {n: c.copy() for n, c in self._capacity.items()},
            self.excluded,
            self.notices,
            self.catalogue,
            self.memo,
        )

    def with_capacity(self, name: str, capacity: PoolCapacity) -> Cluster:
        replaced = dict(self._capacity)
        replaced[name] = capacity
        return Cluster(self.pools, replaced, self.excluded, self.notices, self.catalogue, self.memo)

    def reserve(self, placement: Any, estimate: Any, owner: tuple[str, str]) -> Cluster:
        """The cluster less the room ``placement`` (a PlacementStatus) holds, for ``owner``.

        Takes ``replicas`` × ``gpusPerReplica`` GPUs (``totalBytesPerGpu`` each in pools that
        share GPUs) on ``placement.nodes`` where given and still free, else wherever fits best.
        A placement whose pool is gone or full is ignored: it takes what it can, and the
        planner will move it when it replans that deployment."""
        pool = self.pool(placement.pool)
        if pool is None or placement.replicas <= 0:
            return self
        capacity = self._capacity[pool.name].copy()
        capacity.release(owner)
        need = 0
        if estimate is not None and getattr(estimate, "total_bytes_per_gpu", None):
            need = int(estimate.total_bytes_per_gpu)
            offloaded = getattr(placement, "offload_bytes_per_replica", None) or 0
            gpus = max(placement.gpus_per_replica, 1)
            need = max(0, need - offloaded // gpus)
        gpus = 0 if pool.cpu_only else placement.gpus_per_replica
        need = min(need, pool.usable_bytes_per_gpu) if not pool.shares_gpus else need
        prefer = list(placement.nodes or [])
        for r in range(placement.replicas):
            hint = prefer[r : r + 1]
            if capacity.place(gpus, need, 1, owner=owner, prefer=hint) is None:
                break
        return self.with_capacity(pool.name, capacity)

    def free_summary(self) -> dict[str, tuple[int, int]]:
        """Per pool: (free whole GPUs or nodes, total)."""
        return {n: (c.free_whole_gpus, c.total_gpus) for n, c in sorted(self._capacity.items())}


# --- building it ---------------------------------------------------------------------------


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


def _matches(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


@dataclass
class _Group:
    name: str
    source: str
    selector: dict[str, str]
    nodes: list[Node]
    spec: Any = None


def build_cluster(
    pools: Iterable[tuple[str, Any]] = (),
    nodes: Iterable[Node] = (),
    reports: Iterable[tuple[str, Any]] = (),
    now: datetime | None = None,
    catalogue: Any = None,
) -> Cluster:
    """Pools (explicit and discovered), their prices and free room, from plain inputs.

    ``pools``: (name, PlacementPoolSpec); ``nodes``: ``Node``; ``reports``: (node name,
    NodeMemoryReportStatus); ``now``: the time reports are judged fresh against (None: every
    report is stale); ``catalogue``: None for ``default_catalogue()``."""
    if catalogue is None:
        from .catalogue import default_catalogue

        catalogue = default_catalogue()
    node_list = sorted({n.name: n for n in nodes}.values(), key=lambda n: n.name)
    report_by_node = dict(reports)
    notices: list[str] = []
    excluded: list[ExcludedPool] = []

    groups: list[_Group] = []
    claimed: set[str] = set()
    for name, spec in sorted(pools, key=lambda p: p[0]):
        members = [
            n for n in node_list if n.name not in claimed and _matches(spec.node_selector, n.labels)
        ]
        for n in node_list:
            if n.name in claimed and _matches(spec.node_selector, n.labels):
                notices.append(f"node {n.name} matches more than one pool; it stays in the first")
        claimed.update(n.name for n in members)
        groups.append(_Group(name, "PlacementPool", dict(spec.node_selector), members, spec))
    explicit_names = {g.name for g in groups}

    discovered: dict[tuple[str, str, str, str], list[Node]] = {}
    for n in node_list:
        if n.name in claimed:
            continue
        for label, platform in PLATFORM_LABELS:
            if n.labels.get(label):
                key = (platform, label, n.labels[label], n.instance_type or "")
                discovered.setdefault(key, []).append(n)
                break
        else:
            notices.append(f"node {n.name} is in no pool (no PlacementPool or node-pool label)")
    per_label = Counter((label, value) for _, label, value, _ in discovered)
    for (platform, label, value, itype), members in sorted(discovered.items()):
        name = value if per_label[(label, value)] == 1 else f"{value}-{itype}"
        selector = {label: value}
        if itype:
            selector[LABEL_INSTANCE_TYPE] = itype
        if name in explicit_names:
            name = f"{platform}-{name}"
        groups.append(_Group(name, platform, selector, members))

    built: list[Pool] = []
    capacity: dict[str, PoolCapacity] = {}
    for group in groups:
        result = _build_pool(group, report_by_node, now, catalogue)
        if isinstance(result, ExcludedPool):
            excluded.append(result)
            continue
        pool, usable, pool_notes = result
        notices.extend(pool_notes)
        built.append(pool)
        capacity[pool.name] = PoolCapacity(pool.nodes, usable, pool.shares_gpus)
    return Cluster(built, capacity, excluded, notices, catalogue)


def _build_pool(
    group: _Group, reports: Mapping[str, Any], now: datetime | None, catalogue: Any
) -> tuple[Pool, list[list[int]], list[str]] | ExcludedPool:
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


GENERIC_CPU = "generic"
"""The ``InstanceType.cpu`` of a CPU-only pool whose instance type the catalogue lacks."""
GENERIC_BANDWIDTH_PER_VCPU = 204.8e9 / 96
"""DRAM bandwidth per vCPU of a generic server (bytes/s): the catalogue's slowest per-core
class, AMD EPYC Rome/Milan (``data/instances.yaml`` ``cpus:``): 8 channels × DDR4-3200 × 8
bytes = 204.8 GB/s per 48-core socket, 2 threads per core (AMD EPYC 7002/7003 product pages).
About 2.1 GB/s per vCPU: a low but safe figure; name the instance type in the catalogue, or its
pool's price alone cannot tell a faster CPU."""
GENERIC_BF16_FLOPS_PER_VCPU = 2.5e9 * 32 / 2
"""Peak bf16 FLOP/s per vCPU of a generic server: EPYC Rome's AVX2 rate (2 FMA units × 8 fp32
lanes × 2 = 32 FLOPs per cycle per core, no bf16 units) at 2.5 GHz, 2 threads per core
(the catalogue's ``epyc-rome`` entry and its source)."""


def generic_cpu_instance(name: str, vcpus: float, memory: int, price: float) -> Any:
    """An ``InstanceType`` for a CPU-only pool the catalogue does not know, sized from its nodes'
    allocatable CPU and memory with the generic per-vCPU constants above."""
    from .catalogue import InstanceType

    return InstanceType(
        id=name,
        cloud="unknown",
        region="unknown",
        gpu=None,
        gpu_count=0,
        vcpus=int(vcpus),
        memory_bytes=int(memory),
        local_nvme_bytes=0,
        price_per_hour=price,
        price_date="",
        cpu_memory_bandwidth_bytes_per_s=vcpus * GENERIC_BANDWIDTH_PER_VCPU,
        cpu_bf16_tflops=round(vcpus * GENERIC_BF16_FLOPS_PER_VCPU / 1e12, 3),
        source=(
            "generic server: instance type not in the catalogue; "
            "GENERIC_BANDWIDTH_PER_VCPU and GENERIC_BF16_FLOPS_PER_VCPU (planning/inventory.py)"
        ),
        cpu=GENERIC_CPU,
    )


def _pool_gpu_memory(
    group: _Group, gpu: Any, fresh: Mapping[str, Any]
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


def gib(count: float) -> str:
    """Bytes as GiB with one decimal, for messages: ``41.2 GiB``."""
    return f"{count / (1 << 30):.1f} GiB"


def ceil_div(a: float, b: float) -> int:
    return max(0, math.ceil(a / b - 1e-12))

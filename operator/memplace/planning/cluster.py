"""The cluster the planner plans against: pools, the pools left out and why, and their free room.

``discovery.build_cluster`` builds one; ``Cluster.reserve`` takes the room an already-placed
deployment holds (the planner releases a deployment's own reservation before it replans it), and
``mutable_copy`` gives the planner a working copy whose capacity it may change in place.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from .capacity import PoolCapacity
from .pools import ExcludedPool, Pool


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

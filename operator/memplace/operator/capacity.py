"""The operator's one planning Cluster: free room kept up to date, not rebuilt for every plan.

Before, every plan built the Cluster from every indexed node and reserved every other placed
deployment: O(N) per plan, O(N²) per burst, and a new planner memo each time. The ``Ledger``
keeps one Cluster and moves it:

- **capacity events** (a PlacementPool, Node or NodeMemoryReport added, changed or removed,
  or the replicas on a reporting node): the Cluster is rebuilt from the inventory, and every
  placement is reserved again on the nodes its status records (sorted by owner), so that a
  restart or a new node reproduces the recorded packing. Pools whose room or price moved get
  a new version (``pool_versions``);
- **placement and release**: each sync compares the placements (status, overridden by what this
  run decided since: ``indexed.placed``) with what is reserved, by identity first, and reserves
  or releases only those that differ. Room given back (a release, a smaller placement, a
  rebuild) moves ``freed``.

A plan records a ``Stamp`` (the versions of the pools it could use and ``freed``) and the
resync loop re-plans only what a change can affect (``resync.replan_reason``): an Unschedulable
or Invalid deployment once room was freed, a placed one when its own pool changed or a pool
was added (a new option). Another deployment taking room re-plans nobody.

A change is detected by the identity of the index entries: Kopf's index builds a new entry on
every watch event of its object, and the ledger holds the entries it last saw (so their ids
cannot be reused). A report's freshness expires with time, not with an event: it is part of the
inventory key.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from memplace.planning.inventory import STALE_AFTER_HEARTBEATS, Cluster

from . import inputs

__all__ = ["Ledger", "Stamp", "inventory_key"]

Key = tuple[str, str]


@dataclass(frozen=True)
class Stamp:
    """What the cluster looked like when a deployment was last planned."""

    pools: tuple[tuple[str, int], ...]
    """Every pool's version then."""
    freed: int
    """``Ledger.freed`` then."""
    present: frozenset[str] = frozenset()
    """The pools there were then (a new pool is a new option for every deployment)."""
    adapters: str | None = None
    """The deployment's ModelAdapters then (``indexed.stamp``); None: not recorded."""


@dataclass
class Ledger:
    """One planning Cluster and the reservations it holds, moved incrementally."""

    cluster: Cluster | None = None
    reserved: dict[Key, inputs.Placed] = field(default_factory=dict)
    pool_versions: dict[str, int] = field(default_factory=dict)
    freed: int = 0
    rebuilds: int = 0
    """How many times the Cluster was rebuilt from the inventory (a figure for tests)."""
    _inventory: tuple[Any, ...] = ()
    _quick: Any = None
    _pools: dict[str, Any] = field(default_factory=dict)

    def sync(
        self,
        placed: Mapping[Key, inputs.Placed],
        inventory: tuple[Any, ...] | Callable[[], tuple[Any, ...]],
        build: Callable[[], Cluster],
        quick: Any = None,
    ) -> Cluster:
        """The Cluster with ``placed`` reserved: rebuilt (``build``: the inventory with every
        placement reserved) when ``inventory`` (``inventory_key``) moved, else only the
        reservations that differ from ``placed`` moved.

        ``quick``: a key that is the same only while the inventory is (``indexed.quick_key``;
        None: none can be had). While it is the last one, ``inventory`` (then best a callable:
        it walks every node) is not even looked at."""
        if self.cluster is not None and quick is not None and quick == self._quick:
            return self._move(placed)
        current = inventory() if callable(inventory) else inventory
        self._quick = quick
        if self.cluster is None or not _same(current, self._inventory):
            self._rebuild(placed, current, build())
            return self.cluster  # type: ignore[return-value]
        return self._move(placed)

    def _move(self, placed: Mapping[Key, inputs.Placed]) -> Cluster:
        """Reserve and release only the placements that differ from what is reserved."""
        cluster = self.cluster
        assert cluster is not None
        for owner in [o for o in self.reserved if o not in placed]:
            cluster = _release(cluster, owner)
            del self.reserved[owner]
            self.freed += 1
        for owner in sorted(placed):
            entry, held = placed[owner], self.reserved.get(owner)
            if entry is held:
                continue
            if held is not None and entry == held:
                self.reserved[owner] = entry  # the same placement, indexed anew
                continue
            if held is not None:
                cluster = _release(cluster, owner)
                self.freed += 1
            cluster = cluster.reserve(entry.placement, entry.estimate, owner=owner)
            self.reserved[owner] = entry
        self.cluster = cluster
        return cluster

    def for_planning(self, key: Key) -> Cluster:
        """The Cluster less ``key``'s move successor (the planner releases ``key`` itself)."""
        assert self.cluster is not None, "sync first"
        successor = inputs.successor_key(key)
        if successor in self.reserved:
            return _release(self.cluster, successor)
        return self.cluster

    def stamp(self) -> Stamp:
        return Stamp(tuple(sorted(self.pool_versions.items())), self.freed, frozenset(self._pools))

    def pool_added_since(self, stamp: Stamp) -> bool:
        return bool(set(self._pools) - stamp.present)

    def pool_changed_since(self, stamp: Stamp, pool: str) -> bool:
        then = dict(stamp.pools).get(pool)
        return then is None or then != self.pool_versions.get(pool)

    def _rebuild(
        self, placed: Mapping[Key, inputs.Placed], inventory: tuple[Any, ...], cluster: Cluster
    ) -> None:
        pools = {p.name: _essence(p, cluster.capacity(p.name).usable) for p in cluster.pools}
        for name in set(pools) | set(self._pools):
            if pools.get(name) != self._pools.get(name):
                self.pool_versions[name] = self.pool_versions.get(name, 0) + 1
        self._pools = pools
        self.cluster = cluster
        self.reserved = dict(placed)
        self._inventory = inventory
        self.freed += 1
        self.rebuilds += 1


def _essence(pool: Any, usable: Any) -> str:
    """What a plan on ``pool`` depends on besides the free room (a ``Pool`` compares by
    identity): every field, and each GPU's usable bytes."""
    return repr((tuple(getattr(pool, f.name) for f in dataclasses.fields(pool)), usable))


def _release(cluster: Cluster, owner: Key) -> Cluster:
    for pool in cluster.pools:
        capacity = cluster.capacity(pool.name)
        if owner in capacity.owners:
            capacity = capacity.copy()
            capacity.release(owner)
            cluster = cluster.with_capacity(pool.name, capacity)
    return cluster


def _entries(index: Any) -> list[tuple[Any, Any]]:
    return [(key, value) for key, store in (index or {}).items() for value in store]


def inventory_key(indexes: Mapping[str, Any], now: datetime.datetime) -> tuple[Any, ...]:
    """The index entries the planning Cluster is built from, and each report's freshness."""
    reports = _entries(indexes.get("reports"))
    fresh = tuple(_fresh(report, now) for _, report in reports)
    # What the replicas on reporting nodes hold is given back to those reports' free memory.
    replicas = _entries(indexes.get("replicas")) if reports else []
    nodes_run = _entries(indexes.get("replica_nodes")) if reports else []
    models = tuple((indexes.get("models") or {}).keys()) if reports else ()
    return (
        _entries(indexes.get("pools")),
        _entries(indexes.get("nodes")),
        reports,
        fresh,
        replicas,
        nodes_run,
        models,
    )


def _same(a: tuple[Any, ...], b: tuple[Any, ...]) -> bool:
    """Whether two inventory keys hold the same entries (by identity) and freshness."""
    if len(a) != len(b):
        return False
    for x, y in zip(a, b, strict=True):
        if isinstance(x, list):
            if len(x) != len(y):
                return False
            if any(p[0] != q[0] or p[1] is not q[1] for p, q in zip(x, y, strict=True)):
                return False
        elif x != y:
            return False
    return True


def _fresh(report: Any, now: datetime.datetime) -> bool:
    if not (report.observed_at and report.heartbeat_seconds):
        return False
    observed = datetime.datetime.fromisoformat(str(report.observed_at).replace("Z", "+00:00"))
    return (now - observed).total_seconds() <= STALE_AFTER_HEARTBEATS * float(
        report.heartbeat_seconds
    )

"""Kopf's indexes read the way the planner needs them, and what a plan depends on.

The handlers index every PlacementPool, Node, NodeMemoryReport, ModelDeployment and owned
Deployment and pod (``handlers``); both the reconcile of one deployment (``reconcile``) and the
resync loop (``resync``) read them through here, so that they see the same inventory.

Memory the replicas of memplace's own deployments hold is given back to the reports' free
memory before planning (``inputs.without_own_use``): the planner already takes it through the
placements' reservations, and counting it twice would push a running deployment off its GPU.
Where a report does not say which process is whose (no ``podUid``: the agent without
``hostPID``) on a node running such replicas, that node's report is left out of planning
(``inputs.without_unattributed``): the catalogue and the reservations size it instead.

``sync_cluster`` gives the one planning Cluster (``capacity.Ledger``), brought up to date
with these indexes before each plan.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Iterator, Mapping
from typing import Any

from memplace.api import PlacementPoolSpec
from memplace.planning.calibration import Calibration
from memplace.planning.inventory import STALE_AFTER_HEARTBEATS, Cluster

from . import capacity, inputs, modeladapters
from .state import Key, State


def values(index: Any) -> list[Any]:
    return [value for store in (index or {}).values() for value in store]


def pools(indexes: Mapping[str, Any]) -> list[tuple[str, PlacementPoolSpec]]:
    return [(name, spec) for name, store in (indexes.get("pools") or {}).items() for spec in store]


def calibration(indexes: Mapping[str, Any]) -> Calibration:
    """The PerformanceProfiles' factors, for ``DeploymentRequest.calibration``."""
    return Calibration(values(indexes.get("profiles")))


def reports(indexes: Mapping[str, Any]) -> list[tuple[str, Any]]:
    found = (indexes.get("reports") or {}).items()
    return [(node, report) for node, store in found for report in store]


def placed(state: State, indexes: Mapping[str, Any]) -> dict[Key, inputs.Placed]:
    """Placements from status (the index), overridden by what this run decided since."""
    merged = {key: next(iter(store)) for key, store in (indexes.get("placed") or {}).items()}
    for key, value in state.recent.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = value
    return merged


def priorities(indexes: Mapping[str, Any]) -> Mapping[Key, int]:
    """Every indexed ModelDeployment's ``spec.priority`` (0 when unset or not an integer): whom
    a NoCapacity reason names first (``planning.batch.name_holders``). Read per key when asked:
    a plan names a few holders, and walking every deployment per plan would be O(N)."""
    return _Priorities(indexes.get("models") or {})


class _Priorities(Mapping[Key, int]):
    def __init__(self, models: Mapping[Key, Any]) -> None:
        self._models = models

    def __getitem__(self, key: Key) -> int:
        body = next(iter(self._models[key]), None) or {}
        priority = (body.get("spec") or {}).get("priority", 0)
        return priority if isinstance(priority, int) and not isinstance(priority, bool) else 0

    def __iter__(self) -> Iterator[Key]:
        return iter(self._models)

    def __len__(self) -> int:
        return len(self._models)


def pod_uids(indexes: Mapping[str, Any], key: Key) -> list[str]:
    return list((indexes.get("replicas") or {}).get(key) or [])


def deployments(indexes: Mapping[str, Any], key: Key) -> list[dict[str, Any]]:
    """Every Deployment that ModelDeployment ``key`` owns (two while a move is in flight)."""
    return list((indexes.get("workloads") or {}).get(key) or [])


def deployment(indexes: Mapping[str, Any], key: Key, name: str) -> dict[str, Any] | None:
    """The owned Deployment ``name`` of ``key``, as last indexed."""
    found = (d for d in deployments(indexes, key) if d["metadata"].get("name") == name)
    return next(found, None)


def serving_name(indexes: Mapping[str, Any], key: Key) -> str:
    """The Deployment the Service of ``key`` selects (its own name before a Service exists)."""
    store = (indexes.get("services") or {}).get(key)
    return next(iter(store), key[1]) if store else key[1]


def serving(indexes: Mapping[str, Any], key: Key) -> dict[str, Any] | None:
    """The owned Deployment that serves ``key``: the one its Service selects."""
    return deployment(indexes, key, serving_name(indexes, key))


def planning_reports(indexes: Mapping[str, Any]) -> list[tuple[str, Any]]:
    """The reports the planner sees: less what the replicas of existing deployments hold, and
    none for a node running replicas whose processes the report does not attribute to pods."""
    models = indexes.get("models") or {}
    own = [
        uid
        for key, store in (indexes.get("replicas") or {}).items()
        if key in models
        for uid in store
    ]
    nodes = [
        node
        for node, store in (indexes.get("replica_nodes") or {}).items()
        if any(key in models for key in store)
    ]
    attributed = inputs.without_unattributed(reports(indexes), nodes)
    return inputs.without_own_use(attributed, own)


def sync_cluster(state: State, indexes: Mapping[str, Any]) -> Cluster:
    """The operator's one planning Cluster (``capacity.Ledger``), brought up to date with the
    indexes: rebuilt when the inventory moved, else only the changed reservations moved."""
    now = datetime.datetime.now(datetime.UTC)
    held = placed(state, indexes)

    def build() -> Cluster:
        return inputs.build_planning_cluster(
            pools(indexes),
            values(indexes.get("nodes")),
            planning_reports(indexes),
            held,
            exclude=("", ""),
            now=now,
        )

    return state.ledger.sync(
        held, lambda: capacity.inventory_key(indexes, now), build, quick_key(state, indexes)
    )


def quick_key(state: State, indexes: Mapping[str, Any]) -> tuple[int, int, int] | None:
    """A key that stays the same only while the pools and nodes do, in O(1): how many times
    their index handlers ran (``State.inventory_events``: any add or change runs one) and how
    many there are (a removal runs none, and leaves one fewer). None while NodeMemoryReports
    exist: their freshness moves with time, and the pods on their nodes (several per key) can
    go without changing a count; then the full ``capacity.inventory_key`` is compared."""
    if indexes.get("reports"):
        return None
    return (
        state.inventory_events,
        len(indexes.get("pools") or {}),
        len(indexes.get("nodes") or {}),
    )


def stamp(state: State, indexes: Mapping[str, Any], key: Key) -> capacity.Stamp:
    """What ``key`` is planned against now: the ledger's stamp, and its ModelAdapters (adding or
    removing one re-plans the base: ``resync.replan_reason``)."""
    return dataclasses.replace(
        state.ledger.stamp(), adapters=repr(modeladapters.fingerprint(indexes, key))
    )


def capacity_fingerprint(indexes: Mapping[str, Any]) -> int:
    """A hash of the capacity alone (pools, nodes, reports; not placements): what a batch
    re-plan (``consolidate``) follows."""
    now = datetime.datetime.now(datetime.UTC)
    parts = (
        sorted((n, repr(s)) for n, s in pools(indexes)),
        sorted(repr(node) for node in values(indexes.get("nodes"))),
        sorted((n, _report_essence(r, now)) for n, r in planning_reports(indexes)),
    )
    return hash(repr(parts))


def _report_essence(report: Any, now: datetime.datetime) -> str:
    """What the planner reads from a report: whether it is fresh, and its memory figures.

    Not its processes (only ``status.measured`` reads them) nor its timestamp (only freshness
    matters): a heartbeat that measured the same memory re-plans nothing."""
    fresh = False
    if report.observed_at and report.heartbeat_seconds:
        observed = datetime.datetime.fromisoformat(str(report.observed_at).replace("Z", "+00:00"))
        age = (now - observed).total_seconds()
        fresh = age <= STALE_AFTER_HEARTBEATS * float(report.heartbeat_seconds)
    essence = report.model_dump(exclude={"observed_at": True, "gpus": {"__all__": {"processes"}}})
    return repr((fresh, essence))


def planning_cluster(state: State, indexes: Mapping[str, Any], key: Key) -> Cluster:
    """The Cluster to re-plan ``key`` against (``sync_cluster`` less its move successor)."""
    sync_cluster(state, indexes)
    return state.ledger.for_planning(key)

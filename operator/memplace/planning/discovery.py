"""Which nodes form which pools, and the cluster built from them.

Pools come from two places:

* explicit ``PlacementPool`` objects: the nodes whose labels match ``spec.nodeSelector``;
* discovered: nodes no PlacementPool claims, grouped by the node-pool label of their platform
  (``PLATFORM_LABELS``: GKE, EKS, Karpenter, AKS) and by instance type, priced through the
  catalogue by ``node.kubernetes.io/instance-type``.

Each group is then sized by ``pool_sizing.build_pool``; what cannot be sized or priced is listed
in ``Cluster.excluded`` with its reason.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from .capacity import PoolCapacity
from .cluster import Cluster
from .nodes import LABEL_INSTANCE_TYPE, Node
from .pool_sizing import NodeGroup, build_pool
from .pools import ExcludedPool, Pool

PLATFORM_LABELS: tuple[tuple[str, str], ...] = (
    ("cloud.google.com/gke-nodepool", "gke"),
    ("eks.amazonaws.com/nodegroup", "eks"),
    ("karpenter.sh/nodepool", "karpenter"),
    ("kubernetes.azure.com/agentpool", "aks"),
)
"""Node labels that name a node's pool on the major platforms, in the order they are tried."""


def _matches(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


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

    groups: list[NodeGroup] = []
    claimed: set[str] = set()
    for name, spec in sorted(pools, key=lambda p: p[0]):
        members = [
            n for n in node_list if n.name not in claimed and _matches(spec.node_selector, n.labels)
        ]
        for n in node_list:
            if n.name in claimed and _matches(spec.node_selector, n.labels):
                notices.append(f"node {n.name} matches more than one pool; it stays in the first")
        claimed.update(n.name for n in members)
        groups.append(NodeGroup(name, "PlacementPool", dict(spec.node_selector), members, spec))
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
        groups.append(NodeGroup(name, platform, selector, members))

    built: list[Pool] = []
    capacity: dict[str, PoolCapacity] = {}
    for group in groups:
        result = build_pool(group, report_by_node, now, catalogue)
        if isinstance(result, ExcludedPool):
            excluded.append(result)
            continue
        pool, usable, pool_notes = result
        notices.extend(pool_notes)
        built.append(pool)
        capacity[pool.name] = PoolCapacity(pool.nodes, usable, pool.shares_gpus)
    return Cluster(built, capacity, excluded, notices, catalogue)

"""The Kopf handlers: thin glue from cluster objects to a plan and from the plan to the cluster.

This module only registers with Kopf (importing it is what registers the handlers: ``memplace
run`` does, and ``kopf run -m memplace.operator.handlers``); each handler hands its object to
the module that does the job:

- ``reconcile``: plan one ModelDeployment, apply its Deployment and Service (``owned``), post
  its events and return its status;
- ``resync``: the loop that re-plans on capacity changes and stuck pods, drives moves in
  flight (``moves``), and writes readiness, ``status.measured`` and the PlacementPools' status;
- ``measure``: the loop that reads the engines' metrics from Prometheus into ``status.measured``,
  the ``SLOMet`` condition, its Events and metrics;
- ``indexed``: reading the indexes below the way the planner needs them;
- ``state``: what the operator keeps in memory (``memo.state``), rebuilt after a restart.

What triggers a reconcile of a ModelDeployment:

- create, resume (operator start: it never moves a serving placement, ``moves.RESTART``) and
  a ``spec`` change (a new ``metadata.generation``);
- the resync timer, when the inventory (PlacementPools, Nodes, NodeMemoryReports and the other
  deployments' placements) changed since this deployment was last planned, or when its pods
  stayed unschedulable past ``--stuck-after`` (the pool is then marked full for it).

The resync loop is started by whichever handler sees a PlacementPool or a ModelDeployment
first, so that it inherits Kopf's context (its Event poster); it is stopped on cleanup.

Safety rules (details in ``reconcile``, ``owned`` and ``resync``):

- an infeasible or invalid edit never touches a running Deployment (PlacementKept, Warning);
- a serving deployment moves without a gap, one move at a time and at most one per
  ``--min-move-interval`` (``moves``);
- an Unschedulable or Invalid new deployment gets no Deployment; a Deployment or Service the
  API server refuses (422) makes it Invalid, and is not retried until something changes;
- the resync loop writes only while this replica is the active peer, and its status patches
  carry the indexed ``resourceVersion`` (a 409 skips the write: the next pass redoes it);
- the operator writes ``status`` only through the status subresource (Kopf's patch) and never
  ``spec``; it adds no finalizers: owner references let the garbage collector delete the
  Deployment and the Service with their ModelDeployment, also while the operator is down.
"""

from __future__ import annotations

from typing import Any

import kopf

from memplace.api import (
    MODEL_ADAPTER,
    MODEL_DEPLOYMENT,
    NODE_MEMORY_REPORT,
    PERFORMANCE_PROFILE,
    PLACEMENT_POOL,
    PerformanceProfile,
    PlacementPoolSpec,
)

from . import inputs, measure, modeladapters, moves, reconcile, render, resync, storage
from .metrics import Metrics
from .settings import current
from .state import Key, State, stop_loops

MD = (MODEL_DEPLOYMENT.group, MODEL_DEPLOYMENT.version, MODEL_DEPLOYMENT.plural)
PP = (PLACEMENT_POOL.group, PLACEMENT_POOL.version, PLACEMENT_POOL.plural)
NMR = (NODE_MEMORY_REPORT.group, NODE_MEMORY_REPORT.version, NODE_MEMORY_REPORT.plural)
PERF = (PERFORMANCE_PROFILE.group, PERFORMANCE_PROFILE.version, PERFORMANCE_PROFILE.plural)
MA = (MODEL_ADAPTER.group, MODEL_ADAPTER.version, MODEL_ADAPTER.plural)


# ---------------------------------------------------------------------------------- lifecycle


@kopf.on.startup()
async def configure(
    settings: kopf.OperatorSettings, memo: kopf.Memo, logger: Any, **_: Any
) -> None:
    config = current()
    # In status, with our status: one write per handled object (older annotations are read).
    settings.persistence.progress_storage = storage.progress_storage()
    settings.persistence.diffbase_storage = storage.diffbase_storage()
    settings.posting.reporting_component = config.reporting_component
    settings.posting.event_name_prefix = "memplace-"
    settings.watching.server_timeout = 300  # dropped or stale watches are re-established
    settings.networking.error_backoffs = [1, 2, 5, 10]
    state = State(settings=config, metrics=Metrics(), kopf_settings=settings)
    if config.metrics_port is not None:
        state.metrics_port = state.metrics.serve(config.metrics_port, config.metrics_host)
        logger.info(f"Serving Prometheus metrics on port {state.metrics_port}.")
    memo.state = state


@kopf.on.cleanup()
async def stop(memo: kopf.Memo, **_: Any) -> None:
    state: State | None = getattr(memo, "state", None)
    if state is not None:
        await stop_loops(state)
        state.metrics.stop()


@kopf.on.probe(id="modeldeployments")
def probe_deployments(memo: kopf.Memo, **_: Any) -> int:
    state: State | None = getattr(memo, "state", None)
    return len(state.recent) if state is not None else 0


# ------------------------------------------------------------------------------------ indexes


def _inventory_event(memo: Any) -> None:
    """Count a PlacementPool or Node index event (``indexed.quick_key``)."""
    state: State | None = getattr(memo, "state", None)
    if state is not None:
        state.inventory_events += 1


@kopf.index(*PP)
def pools(
    name: str, spec: Any, logger: Any, memo: Any, **_: Any
) -> dict[str, PlacementPoolSpec] | None:
    _inventory_event(memo)
    entry = inputs.pool_entry(spec, logger)
    return {name: entry} if entry is not None else None


@kopf.index(*PP)
def pool_objects(name: str, meta: Any, spec: Any, status: Any, **_: Any) -> dict[str, Any]:
    """Every PlacementPool's generation, status and spec error: what its status write needs."""
    return {
        name: {
            "generation": meta.get("generation"),
            "status": inputs._plain(status or {}),
            "error": inputs.pool_error(spec),
        }
    }


@kopf.index("v1", "nodes")
def nodes(name: str, body: Any, logger: Any, memo: Any, **_: Any) -> dict[str, Any] | None:
    _inventory_event(memo)
    entry = inputs.node_entry(body, logger)
    return {name: entry} if entry is not None else None


@kopf.index(*NMR)
def reports(spec: Any, status: Any, logger: Any, **_: Any) -> dict[str, Any] | None:
    entry = inputs.report_entry(spec, status, logger)
    return {entry[0]: entry[1]} if entry is not None else None


@kopf.index(*PERF)
def profiles(name: str, body: Any, logger: Any, **_: Any) -> dict[str, PerformanceProfile] | None:
    """Every usable PerformanceProfile: the planner's learned factors (``indexed.calibration``).

    A profile change re-plans nothing by itself: the measurement loop decides when a running
    deployment's calibrated estimate calls for a re-plan; any re-plan reads the latest."""
    entry = inputs.profile_entry(body, logger)
    return {name: entry} if entry is not None else None


@kopf.index(*MA)
def adapters(
    namespace: str, name: str, meta: Any, spec: Any, status: Any, **_: Any
) -> dict[Key, dict[str, Any]] | None:
    """Every ModelAdapter, under its base's key: a change re-plans the base (its fingerprint,
    ``modeladapters.fingerprint``), whose plan sets the adapter's status."""
    base = (spec or {}).get("baseDeployment")
    if not base:
        return None
    return {(namespace, base): modeladapters.entry(name, meta, spec, status)}


@kopf.index(*PERF)
def profile_versions(name: str, meta: Any, **_: Any) -> dict[str, str] | None:
    """Every PerformanceProfile's resourceVersion: the measurement loop patches a profile's
    status as of it, so that two deployments sharing a profile never lose each other's sample."""
    version = meta.get("resourceVersion")
    return {name: version} if version else None


@kopf.index(*MD)
def placed(namespace: str, name: str, status: Any, **_: Any) -> dict[Key, inputs.Placed] | None:
    """The room each deployment holds: its running placement and its move's successor."""
    found = {(namespace, name): inputs.placed_entry(status)}
    found[inputs.successor_key((namespace, name))] = inputs.successor_entry(status)
    return {key: entry for key, entry in found.items() if entry is not None} or None


@kopf.index(*MD)
def models(namespace: str, name: str, body: Any, **_: Any) -> dict[Key, dict[str, Any]]:
    """Every watched ModelDeployment (what the resync loop walks)."""
    meta = body.get("metadata", {})
    return {
        (namespace, name): {
            "apiVersion": MODEL_DEPLOYMENT.api_version,
            "kind": MODEL_DEPLOYMENT.kind,
            "metadata": {
                "name": name,
                "namespace": namespace,
                "uid": meta.get("uid"),
                "generation": meta.get("generation"),
                "resourceVersion": meta.get("resourceVersion"),
            },
            "spec": inputs._plain(body.get("spec") or {}),
            "status": inputs._plain(body.get("status") or {}),
        }
    }


@kopf.index("apps", "v1", "deployments", labels=render.MANAGED_BY)
def workloads(
    namespace: str, name: str, labels: Any, body: Any, **_: Any
) -> dict[Key, dict[str, Any]] | None:
    """Every owned Deployment under its ModelDeployment (two while a move is in flight)."""
    owner = labels.get(render.DEPLOYMENT_LABEL)
    if not owner:
        return None
    return {
        (namespace, owner): {
            "metadata": {"name": name, "generation": body.get("metadata", {}).get("generation")},
            "spec": {"replicas": body.get("spec", {}).get("replicas")},
            "status": dict(body.get("status") or {}),
        }
    }


@kopf.index("v1", "services", labels=render.MANAGED_BY)
def services(namespace: str, name: str, body: Any, **_: Any) -> dict[Key, str]:
    """The Deployment each owned Service selects: the one serving (the Service is named as its
    ModelDeployment)."""
    return {(namespace, name): render.serving_name(name, body)}


@kopf.index("v1", "pods", labels=render.MANAGED_BY)
def replicas(namespace: str, labels: Any, meta: Any, **_: Any) -> dict[Key, str] | None:
    """The uid of every pod of an owned Deployment, under its ModelDeployment."""
    owner, uid = labels.get(render.DEPLOYMENT_LABEL), meta.get("uid")
    return {(namespace, owner): uid} if owner and uid else None


@kopf.index("v1", "pods", labels=render.MANAGED_BY)
def replica_pods(namespace: str, name: str, labels: Any, **_: Any) -> dict[Key, str] | None:
    """The name of every pod of an owned Deployment, under its ModelDeployment: Prometheus
    knows the pods by their ``namespace`` and ``pod`` labels (``measure``)."""
    owner = labels.get(render.DEPLOYMENT_LABEL)
    return {(namespace, owner): name} if owner else None


@kopf.index("v1", "pods", labels=render.MANAGED_BY)
def replica_nodes(namespace: str, labels: Any, spec: Any, **_: Any) -> dict[str, Key] | None:
    """The node of every scheduled pod of an owned Deployment → its ModelDeployment."""
    owner, node = labels.get(render.DEPLOYMENT_LABEL), (spec or {}).get("nodeName")
    return {node: (namespace, owner)} if owner and node else None


@kopf.index("v1", "pods", labels=render.MANAGED_BY)
def unscheduled(
    namespace: str, name: str, labels: Any, status: Any, **_: Any
) -> dict[Key, tuple[str, str, str, str]] | None:
    """Pods the scheduler cannot place: (pod, pool, since, Deployment) under their
    ModelDeployment."""
    owner = labels.get(render.DEPLOYMENT_LABEL)
    for condition in (status or {}).get("conditions") or []:
        if condition.get("type") == "PodScheduled" and condition.get("status") == "False":
            since = condition.get("lastTransitionTime") or ""
            pool, workload = labels.get(render.POOL_LABEL, ""), labels.get(render.WORKLOAD_LABEL)
            return {(namespace, owner): (name, pool, since, workload or owner)}
    return None


# -------------------------------------------------------------------------------- reconciling


@kopf.on.resume(*MD, backoff=5)
@kopf.on.create(*MD, backoff=5)
async def created(memo: kopf.Memo, logger: Any, **kwargs: Any) -> None:
    resync.start_once(memo.state, kwargs, logger)
    measure.start_once(memo.state, kwargs, logger)
    restarted = kwargs.get("reason") == kopf.Reason.RESUME  # a restart never moves by itself
    trigger = moves.RESTART if restarted else "spec"
    await reconcile.reconcile(memo.state, trigger=trigger, logger=logger, **kwargs)


@kopf.on.update(*MD, field="spec", backoff=5)
async def spec_changed(memo: kopf.Memo, logger: Any, **kwargs: Any) -> None:
    resync.start_once(memo.state, kwargs, logger)
    measure.start_once(memo.state, kwargs, logger)
    await reconcile.reconcile(memo.state, trigger="spec changed", logger=logger, **kwargs)


@kopf.on.event(*PP)
async def pool_seen(memo: kopf.Memo, logger: Any, **indexes: Any) -> None:
    """Pools get their status from the resync loop even before any ModelDeployment exists."""
    state: State | None = getattr(memo, "state", None)
    if state is not None:
        resync.start_once(state, indexes, logger)


@kopf.on.event(*MD)
def deleted(memo: kopf.Memo, type: str, namespace: str, name: str, **_: Any) -> None:
    """Forget in-memory bookkeeping; the garbage collector deletes the owned objects.

    A watch-event handler, not ``@kopf.on.delete``: that one would need a finalizer."""
    if type == "DELETED":
        memo.state.forget((namespace, name))

"""The Kopf handlers: thin glue from cluster objects to a plan and from the plan to the cluster.

Every reconcile is: inputs (indexes → planning inputs) → ``plan_deployment`` → render, status,
events, metrics. All the decisions are in ``memplace.planning``; the pure halves of the effects
are in ``render``, ``status`` and ``events``.

What triggers a reconcile of a ModelDeployment:

- create, resume (operator start) and a ``spec`` change (a new ``metadata.generation``);
- the resync timer, when the inventory (PlacementPools, Nodes, NodeMemoryReports and the other
  deployments' placements) changed since this deployment was last planned, or when its pods
  stayed unschedulable past ``--stuck-after`` (the pool is then marked full for it). A report
  changes the inventory only through what the planner reads (memory figures, health, whether
  it is fresh), not through its timestamp or its process list.

What the resync timer also writes, without planning: readiness, ``status.measured`` (the GPU
memory the deployment's pods hold, from the reports' processes: ``measured``), and every
PlacementPool's status (``poolstatus``), each only when it changed.

A deployment whose inputs are not there yet (a ConfigMap not created, a config source that does
not answer: ``inputs.Waiting``) shows phase ``Pending`` and what it waits for, and is retried.

Memory the replicas of memplace's own deployments hold is given back to the reports' free
memory before planning (``inputs.without_own_use``): the planner already takes it through the
placements' reservations, and counting it twice would push a running deployment off its GPU.
Where a report does not say which process is whose (no ``podUid``: the agent without
``hostPID``) on a node running such replicas, that node's report is left out of planning
(``inputs.without_unattributed``): the catalogue and the reservations size it instead.

With ``--peering``, the resync loop writes only while this replica is the active one
(``peering``): Kopf pauses its own watches, not this loop.

State: the indexes (``@kopf.index``) are rebuilt from the cluster on start; the running placement
is read back from ``status``. What lives only in memory (which pools stuck pods marked full, the
last inventory fingerprint) is rebuilt by observation after a restart, so a crash loses nothing
that matters: the next reconcile re-plans and finds the Deployment already matching.

Safety rules:

- an infeasible or invalid edit never touches a running Deployment (PlacementKept, Warning);
- an Unschedulable or Invalid new deployment gets no Deployment; a Deployment or Service the
  API server refuses (422) makes it Invalid, and is not retried until something changes;
- the resync loop writes only while this replica is the active peer, and its status patches
  carry the indexed ``resourceVersion`` (a 409 skips the write: the next pass redoes it);
- the operator writes ``status`` only through the status subresource (Kopf's patch) and never
  ``spec``; it adds no finalizers: owner references let the garbage collector delete the
  Deployment and the Service with their ModelDeployment, also while the operator is down.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import kopf

from memplace.api import MODEL_DEPLOYMENT, NODE_MEMORY_REPORT, PLACEMENT_POOL, PlacementPoolSpec
from memplace.planning.inventory import STALE_AFTER_HEARTBEATS, build_cluster
from memplace.planning.plan import DeploymentRequest, plan_deployment

from . import events, inputs, kube, measured, peering, poolstatus, render
from . import status as mdstatus
from .metrics import ERRORS, PLAN_DURATION, Metrics
from .settings import Settings, current

MD = (MODEL_DEPLOYMENT.group, MODEL_DEPLOYMENT.version, MODEL_DEPLOYMENT.plural)
PP = (PLACEMENT_POOL.group, PLACEMENT_POOL.version, PLACEMENT_POOL.plural)
NMR = (NODE_MEMORY_REPORT.group, NODE_MEMORY_REPORT.version, NODE_MEMORY_REPORT.plural)
PLACEMENT_KEYS = ("pool", "precision", "kvCacheDtype", "tier", "variant", "gpusPerReplica",
                  "replicas", "offloadBytesPerReplica")
Key = tuple[str, str]


@dataclass
class State:
    """What the operator keeps in memory for one run (rebuilt after a restart)."""

    settings: Settings
    metrics: Metrics
    planning: asyncio.Lock = field(default_factory=asyncio.Lock)
    recent: dict[Key, inputs.Placed | None] = field(default_factory=dict)
    fingerprints: dict[Key, int] = field(default_factory=dict)
    full_pools: dict[Key, frozenset[str]] = field(default_factory=dict)
    configs: dict[str, dict[str, Any]] = field(default_factory=dict)
    metrics_port: int | None = None
    kopf_settings: Any = None
    resync_task: asyncio.Task[None] | None = None
    paused: str | None = None
    """Why the resync loop is not acting (a peer outranks this replica), or None."""


# ---------------------------------------------------------------------------------- lifecycle


@kopf.on.startup()
async def configure(
    settings: kopf.OperatorSettings, memo: kopf.Memo, logger: Any, **_: Any
) -> None:
    config = current()
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix="memplace.io")
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix="memplace.io", key="last-handled-spec"
    )
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
    task = state.resync_task if state is not None else None
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    if state is not None:
        state.metrics.stop()


@kopf.on.probe(id="modeldeployments")
def probe_deployments(memo: kopf.Memo, **_: Any) -> int:
    state: State | None = getattr(memo, "state", None)
    return len(state.recent) if state is not None else 0


# ------------------------------------------------------------------------------------ indexes


@kopf.index(*PP)
def pools(name: str, spec: Any, logger: Any, **_: Any) -> dict[str, PlacementPoolSpec] | None:
    entry = inputs.pool_entry(spec, logger)
    return {name: entry} if entry is not None else None


@kopf.index(*PP)
def pool_objects(name: str, meta: Any, spec: Any, status: Any, **_: Any) -> dict[str, Any]:
    """Every PlacementPool's generation, status and spec error: what its status write needs."""
    return {name: {"generation": meta.get("generation"),
                   "status": inputs._plain(status or {}), "error": inputs.pool_error(spec)}}


@kopf.index("v1", "nodes")
def nodes(name: str, body: Any, logger: Any, **_: Any) -> dict[str, Any] | None:
    entry = inputs.node_entry(body, logger)
    return {name: entry} if entry is not None else None


@kopf.index(*NMR)
def reports(spec: Any, status: Any, logger: Any, **_: Any) -> dict[str, Any] | None:
    entry = inputs.report_entry(spec, status, logger)
    return {entry[0]: entry[1]} if entry is not None else None


@kopf.index(*MD)
def placed(namespace: str, name: str, status: Any, **_: Any) -> dict[Key, inputs.Placed] | None:
    entry = inputs.placed_entry(status)
    return {(namespace, name): entry} if entry is not None else None


@kopf.index(*MD)
def models(namespace: str, name: str, body: Any, **_: Any) -> dict[Key, dict[str, Any]]:
    """Every watched ModelDeployment (what the resync loop walks)."""
    meta = body.get("metadata", {})
    return {(namespace, name): {
        "apiVersion": MODEL_DEPLOYMENT.api_version,
        "kind": MODEL_DEPLOYMENT.kind,
        "metadata": {"name": name, "namespace": namespace, "uid": meta.get("uid"),
                     "generation": meta.get("generation"),
                     "resourceVersion": meta.get("resourceVersion")},
        "spec": inputs._plain(body.get("spec") or {}),
        "status": inputs._plain(body.get("status") or {}),
    }}


@kopf.index("apps", "v1", "deployments", labels=render.MANAGED_BY)
def workloads(namespace: str, name: str, body: Any, **_: Any) -> dict[Key, dict[str, Any]]:
    return {(namespace, name): {
        "metadata": {"generation": body.get("metadata", {}).get("generation")},
        "spec": {"replicas": body.get("spec", {}).get("replicas")},
        "status": dict(body.get("status") or {}),
    }}


@kopf.index("v1", "pods", labels=render.MANAGED_BY)
def replicas(namespace: str, labels: Any, meta: Any, **_: Any) -> dict[Key, str] | None:
    """The uid of every pod of an owned Deployment, under its ModelDeployment."""
    owner, uid = labels.get(render.DEPLOYMENT_LABEL), meta.get("uid")
    return {(namespace, owner): uid} if owner and uid else None


@kopf.index("v1", "pods", labels=render.MANAGED_BY)
def replica_nodes(
    namespace: str, labels: Any, spec: Any, **_: Any
) -> dict[str, Key] | None:
    """The node of every scheduled pod of an owned Deployment → its ModelDeployment."""
    owner, node = labels.get(render.DEPLOYMENT_LABEL), (spec or {}).get("nodeName")
    return {node: (namespace, owner)} if owner and node else None


@kopf.index("v1", "pods", labels=render.MANAGED_BY)
def unscheduled(
    namespace: str, name: str, labels: Any, status: Any, **_: Any
) -> dict[Key, tuple[str, str, str]] | None:
    """Pods the scheduler cannot place: (pod, pool, since) under their ModelDeployment."""
    owner = labels.get(render.DEPLOYMENT_LABEL)
    for condition in (status or {}).get("conditions") or []:
        if condition.get("type") == "PodScheduled" and condition.get("status") == "False":
            since = condition.get("lastTransitionTime") or ""
            return {(namespace, owner): (name, labels.get(render.POOL_LABEL, ""), since)}
    return None


# -------------------------------------------------------------------------------- reconciling


@kopf.on.resume(*MD, backoff=5)
@kopf.on.create(*MD, backoff=5)
async def created(**kwargs: Any) -> None:
    await _reconcile(trigger="spec", **kwargs)


@kopf.on.update(*MD, field="spec", backoff=5)
async def spec_changed(**kwargs: Any) -> None:
    await _reconcile(trigger="spec changed", **kwargs)


def _ensure_resync(state: State, indexes: Mapping[str, Any], logger: Any) -> None:
    """Start the resync loop once, from a handler so that it inherits Kopf's context (its
    Event poster); a PlacementPool or a ModelDeployment, whichever is seen first, starts it."""
    if state.resync_task is None:
        state.resync_task = asyncio.create_task(
            _resync_forever(state, indexes, state.kopf_settings, logger), name="memplace resync"
        )


@kopf.on.event(*PP)
async def pool_seen(memo: kopf.Memo, logger: Any, **indexes: Any) -> None:
    """Pools get their status from the resync loop even before any ModelDeployment exists."""
    state: State | None = getattr(memo, "state", None)
    if state is not None:
        _ensure_resync(state, indexes, logger)


async def _resync_forever(
    state: State, indexes: Mapping[str, Any], settings: kopf.OperatorSettings, logger: Any
) -> None:
    """Every ``resync`` seconds, look at each deployment: capacity, stuck pods, readiness.

    One loop for the operator instead of a Kopf timer per object: Kopf timers need a finalizer
    on every ModelDeployment, and memplace adds none (deletion never waits for the operator).
    Kopf does not pause this loop when a peer outranks this replica, so each pass first asks
    the peering itself (``_may_act``) and writes nothing while paused.
    """
    logger = logger.logger if hasattr(logger, "logger") else logger  # not one object's logger
    api = kube.Kube(settings, logger)
    while True:
        await asyncio.sleep(state.settings.resync_seconds)
        if not await _may_act(state, indexes, api, settings, logger):
            continue
        try:
            await _write_pool_statuses(indexes, api)
        except asyncio.CancelledError:
            raise
        except Exception:
            ERRORS.labels("unexpected").inc()
            logger.exception("Writing PlacementPool statuses failed; will retry.")
        for key, store in list((indexes.get("models") or {}).items()):
            body = next(iter(store), None)
            if body is None:
                continue
            try:
                await _resync_one(state, key, body, indexes, api, settings, logger)
            except asyncio.CancelledError:
                raise
            except kopf.TemporaryError as error:
                ERRORS.labels("temporary").inc()
                logger.warning(f"Resync of {key[0]}/{key[1]} will be retried: {error}")
            except Exception:
                ERRORS.labels("unexpected").inc()
                logger.exception(f"Resync of {key[0]}/{key[1]} failed; will retry.")


async def _may_act(
    state: State, indexes: Mapping[str, Any], api: kube.Kube, settings: Any, logger: Any
) -> bool:
    """Whether this replica is the active one now (``peering``); logs each change.

    A replica that pauses forgets what it decided (``recent``, the fingerprints): the active
    peer may re-plan meanwhile, so on taking over every deployment is re-checked against the
    indexes Kopf re-lists; the first pass after taking over is skipped to give it that time."""
    namespaces = [namespace for namespace, _ in (indexes.get("models") or {})]
    try:
        ok, why = await peering.active(
            settings, api, namespaces, datetime.datetime.now(datetime.UTC)
        )
    except asyncio.CancelledError:
        raise
    except Exception as error:  # noqa: BLE001 — unknown standing: do not write
        ok, why = False, f"the peering cannot be read: {error!r}"
    if ok and state.paused is not None:
        logger.info("Resync resumes next pass: this replica is the active one.")
        state.paused = None
        return False
    if not ok and state.paused != why:
        if state.paused is None:
            state.recent.clear()
            state.fingerprints.clear()
        logger.info(f"Resync paused, writing nothing: {why}.")
        state.paused = why
    return ok


async def _resync_one(
    state: State,
    key: Key,
    body: dict[str, Any],
    indexes: Mapping[str, Any],
    api: kube.Kube,
    settings: kopf.OperatorSettings,
    logger: Any,
) -> None:
    """Re-plan when the inventory changed or pods are stuck; else refresh readiness."""
    trigger = _stuck_pool(state, key, body, indexes)
    if trigger is None and _fingerprint(indexes, key) != state.fingerprints.get(key):
        trigger = "capacity changed"
    previous = body.get("status") or {}
    if trigger is not None:
        try:
            async with state.planning:
                new_status = await _plan_and_apply(
                    state, trigger, body, body.get("spec") or {}, previous, body["metadata"],
                    key, logger, settings, indexes,
                )
        except inputs.Waiting as waiting:
            generation = body["metadata"].get("generation")
            pending = _pending(state, key, previous, generation, waiting)
            if pending:
                await _write_status(state, api, key, body, pending, logger)
            raise
    else:
        new_status = _refresh_readiness(state, key, body, indexes)
    now_measured = measured.per_replica(_pod_uids(indexes, key), _reports(indexes))
    if measured.changed(previous.get("measured"), now_measured):
        new_status = {**new_status, "measured": now_measured}
    if new_status:
        await _write_status(state, api, key, body, new_status, logger)


async def _write_status(
    state: State,
    api: kube.Kube,
    key: Key,
    body: Mapping[str, Any],
    changes: Mapping[str, Any],
    logger: Any,
) -> None:
    """Merge-patch ``status`` as of the indexed ``resourceVersion``; skip it if that is stale.

    The changes were computed from the indexed object; a handler (or another pass) may have
    written status since. ``metadata.resourceVersion`` in the patch makes the API server answer
    409 then instead of restoring old fields; the next pass, on a fresher index, redoes it (its
    fingerprint is forgotten so that a plan whose status was lost is made and written again)."""
    url = kube.path(MODEL_DEPLOYMENT.api_version, MODEL_DEPLOYMENT.plural, *key) + "/status"
    patch: dict[str, Any] = {"status": dict(changes)}
    version = (body.get("metadata") or {}).get("resourceVersion")
    if version:
        patch["metadata"] = {"resourceVersion": version}
    try:
        await api.merge_patch(url, patch)
    except kube.NotFound:
        pass  # deleted meanwhile
    except kube.Conflict:
        state.fingerprints.pop(key, None)
        logger.debug(f"Status of {key[0]}/{key[1]} changed since it was read; next resync.")


@kopf.on.event(*MD)
def deleted(memo: kopf.Memo, type: str, namespace: str, name: str, **_: Any) -> None:
    """Forget in-memory bookkeeping; the garbage collector deletes the owned objects.

    A watch-event handler, not ``@kopf.on.delete``: that one would need a finalizer."""
    if type != "DELETED":
        return
    state: State = memo.state
    key = (namespace, name)
    state.metrics.forget(namespace, name)
    for table in (state.recent, state.fingerprints, state.full_pools):
        table.pop(key, None)


async def _reconcile(
    *,
    trigger: str,
    memo: kopf.Memo,
    body: Any,
    spec: Any,
    status: Any,
    meta: Any,
    namespace: str,
    name: str,
    patch: kopf.Patch,
    logger: Any,
    **indexes: Any,
) -> None:
    state: State = memo.state
    settings = state.kopf_settings
    key = (namespace, name)
    _ensure_resync(state, indexes, logger)
    try:
        async with state.planning:  # one plan at a time: each sees the previous one's room
            changed = await _plan_and_apply(
                state, trigger, body, spec, status, meta, key, logger, settings, indexes
            )
        if changed:
            patch["status"] = changed
    except inputs.Waiting as waiting:
        ERRORS.labels("temporary").inc()
        pending = _pending(state, key, status, meta.get("generation"), waiting)
        if pending:
            patch["status"] = pending  # Kopf applies the patch also when the handler fails
        raise
    except kopf.TemporaryError:
        ERRORS.labels("temporary").inc()
        raise
    except Exception:
        ERRORS.labels("unexpected").inc()
        raise


async def _plan_and_apply(
    state: State,
    trigger: str,
    body: Any,
    spec: Any,
    status: Any,
    meta: Any,
    key: Key,
    logger: Any,
    settings: kopf.OperatorSettings,
    indexes: Mapping[str, Any],
) -> dict[str, Any]:
    """Plan, apply the Deployment and Service, post events; return the status fields to write."""
    namespace, name = key
    api = kube.Kube(settings, logger)
    previous = inputs._plain(status or {})
    generation = meta.get("generation")
    running = _running(state, key, previous)
    fingerprint = _fingerprint(indexes, key)

    fields: dict[str, Any]
    cluster = None
    spec_model = None
    config = None
    variant_configs: dict[str, dict[str, Any]] = {}
    try:
        spec_model = inputs.parse_spec(spec)
        config = await inputs.model_config(
            spec_model, namespace, api, state.settings, state.configs
        )
        variant_configs = await inputs.variant_configs(
            spec_model, namespace, api, state.settings, state.configs
        )
        cluster = inputs.build_planning_cluster(
            _pools(indexes), _values(indexes.get("nodes")), _planning_reports(indexes),
            _placed(state, indexes), exclude=key, now=datetime.datetime.now(datetime.UTC),
        )
        request = DeploymentRequest(
            namespace, name, spec_model, model_config=config,
            current=running.placement if running else None,
            full_pools=state.full_pools.get(key, frozenset()),
            variant_configs=variant_configs,
        )
        with PLAN_DURATION.time():
            plan = plan_deployment(request, cluster)
        fields = dict(plan.status_fields())
    except inputs.InvalidSpec as error:
        fields = {"phase": "Invalid", "message": str(error)}

    if fields.get("phase") == "Placed":
        try:
            chosen = _chosen_config(spec_model, fields, config, variant_configs)
            desired = _render(body, spec_model, fields, cluster, chosen)
            deployment = await _apply(api, desired)
        except (render.RenderError, Rejected) as error:  # a 422 is not retried: same object
            fields = {"phase": "Invalid", "message": str(error)}
        else:
            state.recent[key] = inputs.placed_entry({**fields, "phase": "Placed"})
            state.fingerprints[key] = fingerprint
            ready = _readiness(deployment)
            outcome = status_outcome_placed(fields)
            _emit_placed(body, previous, running, fields, trigger)
            return _status_changes(state, key, previous, outcome, ready, generation)

    state.fingerprints[key] = fingerprint
    if running is not None:
        why = _why(fields)
        message = f"generation {generation}: {why}; the running placement is kept"
        outcome = mdstatus.Outcome("kept", fields, reason="PlacementKept", message=message)
        if previous.get("message") != message or previous.get("observedGeneration") != generation:
            events.placement_kept(body, _placement_dict(running), f"generation {generation}: {why}")
        ready = _readiness(_workload(indexes, key))
        return _status_changes(state, key, previous, outcome, ready, generation)

    state.recent[key] = None
    kind = "invalid" if fields.get("phase") == "Invalid" else "unschedulable"
    reason = "Invalid" if kind == "invalid" else "Unschedulable"
    outcome = mdstatus.Outcome(kind, fields, reason=reason, message=_why(fields))
    news = (
        previous.get("phase") != fields.get("phase")
        or previous.get("message") != fields.get("message")
        or previous.get("observedGeneration") != generation
    )
    if news and kind == "invalid":
        events.invalid(body, _why(fields))
    elif news:
        events.unschedulable(body, fields)
    not_ready = mdstatus.Readiness(False, "", "")
    return _status_changes(state, key, previous, outcome, not_ready, generation)


def _pending(
    state: State,
    key: Key,
    previous: Any,
    generation: int | None,
    waiting: inputs.Waiting,
) -> dict[str, Any]:
    """The status fields that change while the deployment waits for an input (phase Pending)."""
    previous = inputs._plain(previous or {})
    new = mdstatus.pending_patch(previous, waiting.waiting_for, generation=generation)
    state.metrics.observe(key[0], key[1], {**previous, **new})
    return {k: v for k, v in new.items() if previous.get(k) != v}


def status_outcome_placed(fields: Mapping[str, Any]) -> mdstatus.Outcome:
    return mdstatus.Outcome("placed", fields, reason="Placed", message=fields.get("message") or "")


def _emit_placed(
    body: Any,
    previous: Mapping[str, Any],
    running: inputs.Placed | None,
    fields: Mapping[str, Any],
    trigger: str,
) -> None:
    if running is None:
        events.placed(body, fields)
        return
    old = _placement_dict(running)
    new = fields.get("placement") or {}
    if any(old.get(k) != new.get(k) for k in PLACEMENT_KEYS):
        events.replanned(body, old, fields, trigger)


def _status_changes(
    state: State,
    key: Key,
    previous: Mapping[str, Any],
    outcome: mdstatus.Outcome,
    ready: mdstatus.Readiness,
    generation: int | None,
) -> None:
    new = mdstatus.status_patch(previous, outcome, ready, generation=generation)
    changed = {k: v for k, v in new.items() if previous.get(k) != v}
    state.metrics.observe(key[0], key[1], {**previous, **new})
    return changed


def _refresh_readiness(
    state: State, key: Key, body: Mapping[str, Any], indexes: Mapping[str, Any]
) -> dict[str, Any]:
    """The status fields that change because the Deployment became (un)available."""
    previous = body.get("status") or {}
    running = inputs.placed_entry(previous)
    state.metrics.observe(key[0], key[1], previous)
    if running is None:
        return {}
    ready = _readiness(_workload(indexes, key))
    phase = "Ready" if ready.ready else "Placed"
    conditions = {c.get("type"): c for c in previous.get("conditions") or []}
    current = conditions.get("Ready") or {}
    if current.get("status") == ("True" if ready.ready else "False") and \
            current.get("reason") == ready.reason and previous.get("phase") == phase:
        return {}
    new_conditions = mdstatus.set_condition(
        previous.get("conditions") or [], "Ready", ready.ready, ready.reason, ready.message,
        generation=previous.get("observedGeneration"),
        now=datetime.datetime.now(datetime.UTC),
    )
    state.metrics.observe(key[0], key[1], {**previous, "phase": phase})
    return {"phase": phase, "conditions": new_conditions}


# ---------------------------------------------------------------------------------- effects


class Rejected(Exception):
    """The API server refused the rendered Deployment or Service as invalid (422).

    Not retried: the same spec renders the same object. The deployment shows phase Invalid
    (or, when running, keeps its placement with PlacementKept) with the server's message."""


async def _apply(api: kube.Kube, desired: tuple[dict[str, Any], dict[str, Any]]) -> dict[str, Any]:
    """Create or patch the Service and the Deployment; a matching plan hash writes nothing.

    The Service first: it is the one whose name is stricter (a DNS label), so a name the API
    server refuses is refused before any pod starts."""
    deployment, service = desired
    await _apply_service(api, service)
    meta = deployment["metadata"]
    namespace, name = meta["namespace"], meta["name"]
    url = kube.path("apps/v1", "deployments", namespace, name)
    existing = await api.get(url)
    with _rejected_as("Deployment", namespace, name):
        if existing is None:
            try:
                return await api.create(kube.path("apps/v1", "deployments", namespace),
                                        deployment)
            except kube.Conflict as error:
                raise kopf.TemporaryError(f"Deployment {namespace}/{name} appeared; retrying",
                                          delay=1) from error
        _check_owned(existing, deployment)
        annotations = existing.get("metadata", {}).get("annotations") or {}
        if annotations.get(render.PLAN_HASH) != meta["annotations"][render.PLAN_HASH]:
            existing = await api.json_patch(url, _replace_ops(existing, deployment))
    return existing


async def _apply_service(api: kube.Kube, service: dict[str, Any]) -> None:
    meta = service["metadata"]
    namespace, name = meta["namespace"], meta["name"]
    url = kube.path("v1", "services", namespace, name)
    existing = await api.get(url)
    with _rejected_as("Service", namespace, name):
        if existing is None:
            try:
                await api.create(kube.path("v1", "services", namespace), service)
            except kube.Conflict as error:
                raise kopf.TemporaryError("Service appeared; retrying", delay=1) from error
            return
        _check_owned(existing, service)
        current_spec = existing.get("spec") or {}
        wanted = service["spec"]
        if current_spec.get("selector") != wanted["selector"] or \
                _ports(current_spec) != _ports(wanted):
            await api.json_patch(url, [
                {"op": "add", "path": "/spec/selector", "value": wanted["selector"]},
                {"op": "add", "path": "/spec/ports", "value": wanted["ports"]},
            ])


@contextlib.contextmanager
def _rejected_as(kind: str, namespace: str, name: str) -> Iterator[None]:
    try:
        yield
    except kube.Invalid as error:
        raise Rejected(f"the API server rejected {kind} {namespace}/{name}: "
                       f"{kube.message(error)}") from error


def _ports(spec: Mapping[str, Any]) -> list[tuple[Any, Any]]:
    return [(p.get("name"), p.get("port")) for p in spec.get("ports") or []]


def _check_owned(existing: Mapping[str, Any], desired: Mapping[str, Any]) -> None:
    owner_uid = desired["metadata"]["ownerReferences"][0]["uid"]
    refs = existing.get("metadata", {}).get("ownerReferences") or []
    if not any(ref.get("uid") == owner_uid for ref in refs):
        kind, meta = desired["kind"], desired["metadata"]
        raise kopf.TemporaryError(
            f"{kind} {meta['namespace']}/{meta['name']} exists and is not owned by this "
            "ModelDeployment; delete or rename it", delay=60)


def _replace_ops(existing: Mapping[str, Any], desired: Mapping[str, Any]) -> list[dict[str, Any]]:
    """JSON-patch ops that replace what the plan owns and keep everything else."""
    meta = desired["metadata"]
    ops: list[dict[str, Any]] = [
        {"op": "add", "path": "/spec/replicas", "value": desired["spec"]["replicas"]},
        {"op": "add", "path": "/spec/template", "value": desired["spec"]["template"]},
    ]
    existing_meta = existing.get("metadata", {})
    for section in ("labels", "annotations"):
        if not existing_meta.get(section):
            ops.append({"op": "add", "path": f"/metadata/{section}", "value": meta[section]})
            continue
        for k, v in meta[section].items():
            escaped = k.replace("~", "~0").replace("/", "~1")
            ops.append({"op": "add", "path": f"/metadata/{section}/{escaped}", "value": v})
    return ops


# ---------------------------------------------------------------------------------- helpers


def _render(
    body: Any, spec_model: Any, fields: Mapping[str, Any], cluster: Any, config: Any
) -> tuple[dict[str, Any], dict[str, Any]]:
    placed_now = inputs.placed_entry({**fields, "phase": "Placed"})
    if placed_now is None:
        raise render.RenderError("the plan has no usable placement")
    pool = cluster.pool(placed_now.placement.pool) if cluster is not None else None
    if pool is None:
        raise render.RenderError(f"pool {placed_now.placement.pool} is gone")
    pool_spec = PlacementPoolSpec.model_validate({
        "nodeSelector": dict(pool.node_selector) or {"kubernetes.io/os": "linux"},
        "tolerations": [_wire(t) for t in pool.tolerations],
        "sharing": pool.sharing,
    })
    meta = body.get("metadata", {})
    owner = render.Owner(name=meta["name"], namespace=meta["namespace"], uid=meta["uid"])
    return render.render(
        owner, spec_model, placed_now.placement, placed_now.estimate, pool_spec,
        gpu_memory_bytes=pool.gpu_memory_bytes or None, model_config=config,
    )


def _chosen_config(
    spec_model: Any,
    fields: Mapping[str, Any],
    config: dict[str, Any] | None,
    variant_configs: Mapping[str, dict[str, Any]],
) -> dict[str, Any] | None:
    """The config.json of what the plan serves: the model's, or the chosen variant's."""
    variant = (fields.get("placement") or {}).get("variant")
    if not variant:
        return config
    chosen = next((v for v in spec_model.model.variants if v.name == variant), None)
    if chosen is not None and chosen.config is not None:
        return dict(chosen.config)
    return variant_configs.get(variant)


def _pod_uids(indexes: Mapping[str, Any], key: Key) -> list[str]:
    return list((indexes.get("replicas") or {}).get(key) or [])


async def _write_pool_statuses(indexes: Mapping[str, Any], api: kube.Kube) -> None:
    """Each PlacementPool's status, as the planner's inventory resolved it; only on change."""
    objects = indexes.get("pool_objects") or {}
    if not objects:
        return
    now = datetime.datetime.now(datetime.UTC)
    cluster = build_cluster(pools=_pools(indexes), nodes=_values(indexes.get("nodes")),
                            reports=_planning_reports(indexes), now=now)
    for name, store in list(objects.items()):
        pool = next(iter(store), None)
        if pool is None:
            continue
        previous = pool["status"]
        new = poolstatus.pool_status(name, pool["generation"], cluster, previous,
                                     error=pool["error"], now=now)
        changes = poolstatus.status_changes(previous, new)
        if changes:
            url = kube.path(PLACEMENT_POOL.api_version, PLACEMENT_POOL.plural, None, name)
            with contextlib.suppress(kube.NotFound):
                await api.merge_patch(url + "/status", {"status": changes})


def _wire(value: Any) -> Any:
    return value.to_wire() if hasattr(value, "to_wire") else dict(value)


def _running(state: State, key: Key, previous: Mapping[str, Any]) -> inputs.Placed | None:
    return inputs.placed_entry(previous)


def _placement_dict(running: inputs.Placed) -> dict[str, Any]:
    return running.placement.to_wire()


def _why(fields: Mapping[str, Any]) -> str:
    if fields.get("phase") == "Unschedulable":
        return events.unschedulable_message(fields)
    return str(fields.get("message") or fields.get("phase") or "not placeable")


def _readiness(deployment: Mapping[str, Any] | None) -> mdstatus.Readiness:
    return mdstatus.readiness(deployment)


def _workload(indexes: Mapping[str, Any], key: Key) -> dict[str, Any] | None:
    store = (indexes.get("workloads") or {}).get(key)
    return next(iter(store), None) if store else None


def _values(index: Any) -> list[Any]:
    return [value for store in (index or {}).values() for value in store]


def _pools(indexes: Mapping[str, Any]) -> list[tuple[str, PlacementPoolSpec]]:
    return [(name, spec) for name, store in (indexes.get("pools") or {}).items() for spec in store]


def _reports(indexes: Mapping[str, Any]) -> list[tuple[str, Any]]:
    found = (indexes.get("reports") or {}).items()
    return [(node, report) for node, store in found for report in store]


def _placed(state: State, indexes: Mapping[str, Any]) -> dict[Key, inputs.Placed]:
    """Placements from status (the index), overridden by what this run decided since."""
    merged = {key: next(iter(store)) for key, store in (indexes.get("placed") or {}).items()}
    for key, value in state.recent.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = value
    return merged


def _fingerprint(indexes: Mapping[str, Any], key: Key) -> int:
    """A hash of everything the plan of ``key`` depends on besides its own spec."""
    now = datetime.datetime.now(datetime.UTC)
    parts = (
        sorted((n, repr(s)) for n, s in _pools(indexes)),
        sorted(repr(node) for node in _values(indexes.get("nodes"))),
        sorted((n, _report_essence(r, now)) for n, r in _planning_reports(indexes)),
        sorted(
            (k, repr(store))
            for k, store in (indexes.get("placed") or {}).items()
            if k != key
        ),
    )
    return hash(repr(parts))


def _planning_reports(indexes: Mapping[str, Any]) -> list[tuple[str, Any]]:
    """The reports the planner sees: less what the replicas of existing deployments hold, and
    none for a node running replicas whose processes the report does not attribute to pods."""
    models = indexes.get("models") or {}
    own = [uid for key, store in (indexes.get("replicas") or {}).items() if key in models
           for uid in store]
    nodes = [node for node, store in (indexes.get("replica_nodes") or {}).items()
             if any(key in models for key in store)]
    attributed = inputs.without_unattributed(_reports(indexes), nodes)
    return inputs.without_own_use(attributed, own)


def _report_essence(report: Any, now: datetime.datetime) -> str:
    """What the planner reads from a report: whether it is fresh, and its memory figures.

    Not its processes (only ``status.measured`` reads them) nor its timestamp (only freshness
    matters): a heartbeat that measured the same memory, or a process that came and went
    without moving free memory, re-plans nothing."""
    fresh = False
    if report.observed_at and report.heartbeat_seconds:
        observed = datetime.datetime.fromisoformat(str(report.observed_at).replace("Z", "+00:00"))
        age = (now - observed).total_seconds()
        fresh = age <= STALE_AFTER_HEARTBEATS * float(report.heartbeat_seconds)
    essence = report.model_dump(
        exclude={"observed_at": True, "gpus": {"__all__": {"processes"}}}
    )
    return repr((fresh, essence))


def _stuck_pool(
    state: State, key: Key, body: Mapping[str, Any], indexes: Mapping[str, Any]
) -> str | None:
    """Mark the pool full when this deployment's pods stayed unschedulable too long."""
    store = (indexes.get("unscheduled") or {}).get(key)
    if not store:
        return None
    now = datetime.datetime.now(datetime.UTC)
    limit = state.settings.stuck_after_seconds
    stuck: dict[str, int] = {}
    for _pod, pool, since in store:
        try:
            when = datetime.datetime.fromisoformat(since.replace("Z", "+00:00"))
        except ValueError:
            continue
        if pool and (now - when).total_seconds() >= limit:
            stuck[pool] = stuck.get(pool, 0) + 1
    full = state.full_pools.get(key, frozenset())
    fresh = {pool: n for pool, n in stuck.items() if pool not in full}
    if not fresh:
        return None
    state.full_pools[key] = full | frozenset(fresh)
    for pool, count in fresh.items():
        events.pool_full(body, pool, count, limit)
    return f"pool {', '.join(sorted(fresh))} full"

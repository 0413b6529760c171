"""The resync loop: what changes without a spec change, looked at every ``resync`` seconds.

It drives a move in flight (``moves``: switch the Service once the new Deployment is Ready and
delete the old one, or delete the new one when it cannot become Ready). Otherwise it re-plans a
deployment (``reconcile.plan_and_apply``) when a change since it was last planned can affect
its plan (``replan_reason``: room freed for an Unschedulable one, its own pool changed for a
placed one), when its pods stayed unschedulable past ``--stuck-after`` (the pool
is then marked full for it), or when a move the rate limit deferred is allowed now. Without
planning it writes readiness, ``status.measured`` (the GPU memory the deployment's pods
hold, from the reports' processes: ``measured``), and every PlacementPool's status
(``poolstatus``), each only when it changed.

One loop for the operator instead of a Kopf timer per object: Kopf timers need a finalizer on
every ModelDeployment, and memplace adds none (deletion never waits for the operator).

With ``--peering``, the loop writes only while this replica is the active one (``peering``):
Kopf pauses its own watches, not this loop. Its status patches carry the indexed
``resourceVersion``: a 409 skips the write, and the next pass redoes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import time
from collections.abc import Mapping
from typing import Any

import kopf

from memplace.api import MODEL_DEPLOYMENT, PLACEMENT_POOL
from memplace.planning.inventory import build_cluster

from . import (
    consolidate,
    events,
    indexed,
    inputs,
    kube,
    measured,
    modeladapters,
    moves,
    owned,
    peering,
    poolstatus,
    reconcile,
)
from . import status as mdstatus
from .metrics import ERRORS
from .state import Key, State


def start_once(state: State, indexes: Mapping[str, Any], logger: Any) -> None:
    """Start the resync loop once, from a handler so that it inherits Kopf's context (its
    Event poster); a PlacementPool or a ModelDeployment, whichever is seen first, starts it."""
    if state.resync_task is None:
        state.resync_task = asyncio.create_task(
            _resync_forever(state, indexes, state.kopf_settings, logger), name="memplace resync"
        )


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
        async with state.planning:  # what changed since the last pass moves the stamps
            indexed.sync_cluster(state, indexes)
        try:
            await modeladapters.orphan_statuses(api, indexes)
        except asyncio.CancelledError:
            raise
        except Exception:
            ERRORS.labels("unexpected").inc()
            logger.exception("Writing ModelAdapter statuses failed; will retry.")
        try:
            why = consolidate.due(state, indexes, time.monotonic())
            if why is not None and indexes.get("models"):
                async with state.planning:
                    await consolidate.refresh(state, indexes, settings, logger, why)
        except asyncio.CancelledError:
            raise
        except Exception:
            ERRORS.labels("unexpected").inc()
            logger.exception("The batch re-plan failed; each deployment re-plans on its own.")
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
    """Drive a move in flight; else re-plan when the inventory changed, pods are stuck or a
    deferred move is now allowed; else refresh readiness."""
    previous = body.get("status") or {}
    if previous.get("move"):
        async with state.planning:
            await _drive_move(state, key, body, indexes, api, logger)
        return
    trigger = _stuck_pool(state, key, body, indexes)
    if trigger is None and _deferred_move_allowed(state, previous):
        trigger = "the deferred move is allowed now"
    if trigger is None:
        trigger = replan_reason(state, key, previous, indexes)
    if trigger is not None:
        try:
            async with state.planning:
                new_status = await reconcile.plan_and_apply(
                    state,
                    trigger,
                    body,
                    body.get("spec") or {},
                    previous,
                    body["metadata"],
                    key,
                    logger,
                    settings,
                    indexes,
                )
        except inputs.Waiting as waiting:
            generation = body["metadata"].get("generation")
            given_up = reconcile.waited_out(state, key, body, previous, generation, waiting)
            if given_up is not None:
                if given_up:
                    await _write_status(state, api, key, body, given_up, logger)
                return
            pending = reconcile.pending_status(state, key, previous, generation, waiting, body)
            if pending:
                await _write_status(state, api, key, body, pending, logger)
            raise
        except reconcile.REFUSED as error:
            generation = body["metadata"].get("generation")
            refused = reconcile.api_error_status(state, key, body, previous, generation, error)
            if refused:
                await _write_status(state, api, key, body, refused, logger)
            state.fingerprints.pop(key, None)  # retried next pass
            if isinstance(error, kopf.TemporaryError):
                raise
            raise kopf.TemporaryError(f"API error: {kube.message(error)}") from error
    else:
        new_status = _refresh_readiness(state, key, body, indexes)
    now_measured = measured.per_replica(indexed.pod_uids(indexes, key), indexed.reports(indexes))
    if measured.changed(previous.get("measured"), now_measured):
        new_status = {**new_status, "measured": now_measured}
    if new_status:
        await _write_status(state, api, key, body, new_status, logger)


def replan_reason(
    state: State, key: Key, previous: Mapping[str, Any], indexes: Mapping[str, Any] | None = None
) -> str | None:
    """Why a change since ``key`` was last planned (its ``Stamp``) can affect its plan, or None.

    Only what a change can affect is re-planned: one never planned in this run (or whose
    status write was lost: no stamp), an Unschedulable one once room was freed anywhere, an
    Invalid one once a pool changed, and a placed one when its own pool changed (its nodes,
    their reports or its price) or a pool was added (a new, maybe cheaper, option). Another
    deployment taking room re-plans nobody, so a burst is followed by no re-plan pass. A
    running deployment whose SLO is missed is re-planned by the measurement loop
    (``calibrate.replan_if_missed``)."""
    stamp = state.fingerprints.get(key)
    if stamp is None:
        return "capacity changed"
    if (
        indexes is not None
        and stamp.adapters is not None
        and stamp.adapters != repr(modeladapters.fingerprint(indexes, key))
    ):
        return "its ModelAdapters changed"
    ledger = state.ledger
    phase = previous.get("phase")
    if phase == "Unschedulable":
        return "capacity freed" if ledger.freed != stamp.freed else None
    if phase == "Invalid":
        changed = dict(stamp.pools) != ledger.pool_versions
        return "capacity changed" if changed else None
    running = inputs.placed_entry(previous)
    if running is not None and ledger.pool_changed_since(stamp, running.placement.pool):
        return f"pool {running.placement.pool} changed"
    if running is not None and ledger.pool_added_since(stamp):
        return "a pool was added"
    return None


async def _write_status(
    state: State,
    api: kube.Kube,
    key: Key,
    body: Mapping[str, Any],
    changes: Mapping[str, Any],
    logger: Any,
) -> bool:
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
        return False  # deleted meanwhile
    except kube.Conflict:
        if _starts_move(body, changes):
            return await _record_move(api, url, body, changes, logger)
        state.fingerprints.pop(key, None)
        logger.debug(f"Status of {key[0]}/{key[1]} changed since it was read; next resync.")
        return False
    return True


def _starts_move(body: Mapping[str, Any], changes: Mapping[str, Any]) -> bool:
    """Whether ``changes`` record a move the indexed status does not have: its successor
    Deployment exists already, so the record must not be dropped like a stale re-plan."""
    previous = body.get("status") or {}
    return bool((changes.get("move") or {}).get("toDeployment")) and not previous.get("move")


async def _record_move(
    api: kube.Kube, url: str, body: Mapping[str, Any], changes: Mapping[str, Any], logger: Any
) -> bool:
    """Write a move start that met a 409, on top of the status as it is now.

    Someone else wrote status meanwhile (the measurement loop's ``SLOMet``, say). Dropping the
    write would leave a successor nobody records: a spec edit before the next pass would then
    start a second move instead of waiting for this one. So: read again, keep the conditions
    this plan did not change, and patch as of the fresh ``resourceVersion`` (once: a second
    409 leaves it to the next pass, which finds the successor by its name)."""
    fresh = await api.get(url.removesuffix("/status"))  # RBAC: get on the object, not /status
    if fresh is None or (fresh.get("status") or {}).get("move"):
        return False  # deleted, or a move is recorded already: the next pass sees it
    rebased = dict(changes)
    if "conditions" in changes:
        rebased["conditions"] = _rebased_conditions(
            (body.get("status") or {}).get("conditions") or [],
            changes["conditions"] or [],
            (fresh.get("status") or {}).get("conditions") or [],
        )
    patch = {
        "status": rebased,
        "metadata": {"resourceVersion": fresh["metadata"]["resourceVersion"]},
    }
    try:
        await api.merge_patch(url, patch)
    except (kube.Conflict, kube.NotFound):
        logger.debug(f"The move start of {url} met a second 409; next resync.")
        return False
    return True


def _rebased_conditions(
    read: list[dict[str, Any]], mine: list[dict[str, Any]], fresh: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """``fresh`` with the conditions this write changed (those in ``mine`` that differ from
    what it ``read``) put in their place."""
    before = {c.get("type"): c for c in read}
    changed = {c.get("type"): c for c in mine if before.get(c.get("type")) != c}
    merged = [changed.pop(c.get("type"), c) for c in fresh]
    return merged + list(changed.values())


async def _drive_move(
    state: State,
    key: Key,
    body: dict[str, Any],
    indexes: Mapping[str, Any],
    api: kube.Kube,
    logger: Any,
) -> None:
    """One step of the move in flight (``moves.next_step``): switch and delete once the
    successor is Ready, delete the successor when it cannot become Ready, else report progress.

    The switch and the deletes are idempotent, so a pass that dies half-way (or whose status
    write is refused as stale) is redone by the next one; the event is posted once the status
    that ends the move is written."""
    namespace, name = key
    previous = body.get("status") or {}
    move = previous["move"]
    successor = indexed.deployment(indexes, key, str(move.get("toDeployment")))
    stuck = _stuck_pools_of(state, key, indexes, str(move.get("toDeployment")))
    now = datetime.datetime.now(datetime.UTC)
    step = moves.next_step(
        move, successor, stuck, now=now, timeout_seconds=state.settings.move_timeout_seconds
    )
    generation = previous.get("observedGeneration")

    def placed_condition(conditions: Any, reason: str, message: str) -> list[dict[str, Any]]:
        return mdstatus.set_condition(
            conditions or [], "Placed", True, reason, message, generation=generation, now=now
        )

    if step.action == "wait":
        changes: dict[str, Any] = _refresh_readiness(state, key, body, indexes)
        if move.get("progress") != step.reason:
            changes["move"] = {**move, "progress": step.reason}
        if changes:
            await _write_status(state, api, key, body, changes, logger)
        return
    if step.action == "complete":
        await owned.switch_service(api, namespace, name, str(move["toDeployment"]))
        if move.get("fromDeployment") != move["toDeployment"]:  # never the one now serving
            await owned.delete_deployment(api, namespace, str(move.get("fromDeployment")))
        changes = moves.completed(move, now)
        ready = mdstatus.readiness(successor)
        message = "moved: " + events.summary(move.get("placement") or {}, None, move.get("cost"))
        conditions = placed_condition(previous.get("conditions"), "Placed", message)
        changes["conditions"] = mdstatus.set_condition(
            conditions,
            "Ready",
            ready.ready,
            ready.reason,
            ready.message,
            generation=generation,
            now=now,
        )
        changes["phase"] = "Ready" if ready.ready else "Placed"
        changes["message"] = message
        state.recent[key] = inputs.placed_entry({**previous, **changes})
        post = events.move_completed
    else:
        await owned.delete_deployment(api, namespace, str(move.get("toDeployment")))
        full = state.full_pools.get(key, frozenset())
        state.full_pools[key] = full | frozenset(stuck)
        message = f"move abandoned: {step.reason}; the running placement is kept"
        changes = {
            "move": None,
            "lastMoveTime": moves.timestamp(now),
            "message": message,
            "conditions": placed_condition(previous.get("conditions"), "MoveAbandoned", message),
        }
        post = events.move_abandoned
    state.recent[inputs.successor_key(key)] = None  # one Deployment holds room again
    state.fingerprints.pop(key, None)  # re-planned next pass: what waited for the move
    state.metrics.observe(namespace, name, {**previous, **changes})
    if await _write_status(state, api, key, body, changes, logger):
        post(body, move, step.reason)


def _stuck_pools_of(state: State, key: Key, indexes: Mapping[str, Any], workload: str) -> list[str]:
    """The pools on which pods of Deployment ``workload`` stayed unschedulable too long."""
    now = datetime.datetime.now(datetime.UTC)
    limit = state.settings.stuck_after_seconds
    pools = set()
    for _pod, pool, since, owner in (indexes.get("unscheduled") or {}).get(key) or []:
        when = moves.parse_time(since)
        old_enough = when is not None and (now - when).total_seconds() >= limit
        if owner == workload and pool and old_enough:
            pools.add(pool)
    return sorted(pools)


def _deferred_move_allowed(state: State, previous: Mapping[str, Any]) -> bool:
    interval = state.settings.min_move_interval_seconds
    return moves.deferral_over(previous, interval, datetime.datetime.now(datetime.UTC))


def _refresh_readiness(
    state: State, key: Key, body: Mapping[str, Any], indexes: Mapping[str, Any]
) -> dict[str, Any]:
    """The status fields that change because the Deployment became (un)available."""
    previous = body.get("status") or {}
    running = inputs.placed_entry(previous)
    version = (body.get("metadata") or {}).get("resourceVersion")
    if version is None or state.observed.get(key) != version:  # a write since the last pass
        state.metrics.observe(key[0], key[1], previous)
        state.observed[key] = version
    if running is None:
        return {}
    ready = mdstatus.readiness(indexed.serving(indexes, key))
    phase = "Ready" if ready.ready else "Placed"
    conditions = {c.get("type"): c for c in previous.get("conditions") or []}
    current = conditions.get("Ready") or {}
    if (
        current.get("status") == ("True" if ready.ready else "False")
        and current.get("reason") == ready.reason
        and previous.get("phase") == phase
    ):
        return {}
    new_conditions = mdstatus.set_condition(
        previous.get("conditions") or [],
        "Ready",
        ready.ready,
        ready.reason,
        ready.message,
        generation=previous.get("observedGeneration"),
        now=datetime.datetime.now(datetime.UTC),
    )
    state.metrics.observe(key[0], key[1], {**previous, "phase": phase})
    return {"phase": phase, "conditions": new_conditions}


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
    for _pod, pool, since, _workload in store:
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


async def _write_pool_statuses(indexes: Mapping[str, Any], api: kube.Kube) -> None:
    """Each PlacementPool's status, as the planner's inventory resolved it; only on change."""
    objects = indexes.get("pool_objects") or {}
    if not objects:
        return
    now = datetime.datetime.now(datetime.UTC)
    cluster = build_cluster(
        pools=indexed.pools(indexes),
        nodes=indexed.values(indexes.get("nodes")),
        reports=indexed.planning_reports(indexes),
        now=now,
    )
    for name, store in list(objects.items()):
        pool = next(iter(store), None)
        if pool is None:
            continue
        previous = pool["status"]
        new = poolstatus.pool_status(
            name, pool["generation"], cluster, previous, error=pool["error"], now=now
        )
        changes = poolstatus.status_changes(previous, new)
        if changes:
            url = kube.path(PLACEMENT_POOL.api_version, PLACEMENT_POOL.plural, None, name)
            with contextlib.suppress(kube.NotFound):
                await api.merge_patch(url + "/status", {"status": changes})

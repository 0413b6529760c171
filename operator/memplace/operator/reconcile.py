"""One deployment's reconcile: plan, apply the owned objects, and say what happened.

inputs (indexes → planning inputs) → ``plan_deployment`` → render and apply (``owned``) →
events → the status fields to write. All the decisions are in ``memplace.planning``; the pure
halves of the effects are in ``render``, ``status`` and ``events``. The Kopf handlers
(``handlers``) and the resync loop (``resync``) both come here; plans are made one at a time
(``State.planning``) so that each sees the room the previous one took. The lock is held
across a first placement's two creates too: releasing it for them (the room reserved first)
was measured at N = 1,000 (``bench/operator_burst.py``): a little faster on average, but the
peak RSS rose from 160 to 190-240 MiB, so it is not done.

Safety rules:

- an infeasible or invalid edit never touches a running Deployment (PlacementKept, Warning);
- an Unschedulable or Invalid new deployment gets no Deployment; a Deployment or Service the
  API server refuses (422) makes it Invalid, and is not retried until something changes;
- a deployment whose inputs are not there yet (a ConfigMap not created, a config source that
  does not answer: ``inputs.Waiting``) shows phase ``Pending`` and what it waits for, and is
  retried;
- a plan that changes where or how a serving deployment runs is a move (``moves``): the new
  Deployment starts beside the old one, which keeps serving until the resync loop switches the
  Service; at most one move at a time, at most one per ``--min-move-interval``, none started
  by an operator restart alone.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any

import kopf

from memplace.planning import scaling
from memplace.planning.batch import name_holders
from memplace.planning.plan import DeploymentRequest, plan_deployment
from memplace.planning.scaled_plan import plan_scaled

from . import (
    consolidate,
    demand_status,
    events,
    indexed,
    inputs,
    keda,
    kube,
    manifests,
    modeladapters,
    moves,
    owned,
    render,
    scrape,
)
from . import status as mdstatus
from .capacity import Stamp
from .metrics import ERRORS, PLAN_DURATION
from .state import Key, State

PLACEMENT_KEYS = (  # a change in any of these posts Replanned
    "pool",
    "precision",
    "kvCacheDtype",
    "tier",
    "variant",
    "gpusPerReplica",
    "replicas",
    "offloadBytesPerReplica",
)


REFUSED = (kube.APIError, owned.NameTaken)
"""Refusals shown in status and a Warning while the retries go on (``api_error_status``)."""


async def reconcile(
    state: State,
    *,
    trigger: str,
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
    """Plan ``body`` for a Kopf handler: the status changes go into Kopf's ``patch``.

    The handler has started the resync loop (``resync.start_once``) before calling this."""
    settings = state.kopf_settings
    key = (namespace, name)
    try:
        async with state.planning:  # one plan at a time: each sees the previous one's room
            changed = await plan_and_apply(
                state, trigger, body, spec, status, meta, key, logger, settings, indexes
            )
        if changed:
            patch["status"] = changed
    except inputs.Waiting as waiting:
        ERRORS.labels("temporary").inc()
        given_up = waited_out(state, key, body, status, meta.get("generation"), waiting)
        if given_up is not None:
            if given_up:
                patch["status"] = given_up
            return  # Invalid: retried when the spec changes, not every few seconds
        pending = pending_status(state, key, status, meta.get("generation"), waiting, body)
        if pending:
            patch["status"] = pending  # Kopf applies the patch also when the handler fails
        raise
    except REFUSED as error:
        ERRORS.labels("temporary").inc()
        refused = api_error_status(state, key, body, status, meta.get("generation"), error)
        if refused:
            patch["status"] = refused
        state.fingerprints.pop(key, None)  # the resync loop retries it too
        if isinstance(error, kopf.TemporaryError):
            raise  # with its own delay (a name taken: a minute)
        raise kopf.TemporaryError(f"API error: {kube.message(error)}", delay=30) from error
    except kopf.TemporaryError:
        ERRORS.labels("temporary").inc()
        raise
    except Exception:
        ERRORS.labels("unexpected").inc()
        raise


async def plan_and_apply(
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
    running = inputs.placed_entry(previous)

    fields: dict[str, Any]
    scaled_fields: dict[str, Any] = {}  # status.demand, tier, cost.last24h (spec.scaling)
    cluster = None
    fingerprint = indexed.stamp(state, indexes, key)
    spec_model = None
    config = None
    variant_configs: dict[str, dict[str, Any]] = {}
    lora = None
    policy = None
    try:
        spec_model = inputs.parse_spec(spec)
        config = await inputs.model_config(
            spec_model, namespace, api, state.settings, state.configs
        )
        variant_configs = await inputs.variant_configs(
            spec_model, namespace, api, state.settings, state.configs
        )
        checkpoints = await inputs.model_checkpoints(
            spec_model, config, variant_configs, state.settings, logger
        )
        cluster = indexed.planning_cluster(state, indexes, key)
        fingerprint = indexed.stamp(state, indexes, key)
        spec_model, listed = await modeladapters.with_targets(
            spec_model, modeladapters.listed(indexes, key, logger), state.settings, state.configs
        )
        request = DeploymentRequest(
            namespace,
            name,
            spec_model,
            model_config=config,
            current=running.placement if running else None,
            full_pools=state.full_pools.get(key, frozenset()),
            variant_configs=variant_configs,
            calibration=indexed.calibration(indexes),
            checkpoints=checkpoints,
            model_adapters=listed,
            target=consolidate.target_for(state, key, generation, spec_model, previous),
        )
        policy = scaling.Policy.from_spec(spec_model)
        with PLAN_DURATION.time():
            if policy is None:
                plan = plan_deployment(request, cluster)
            else:
                decision = demand_status.decision_in(previous, policy)
                scaled = plan_scaled(request, cluster, policy, decision)
                plan = scaled.plan
            plan = name_holders(plan, cluster, indexed.priorities(indexes))  # who holds room
        fields = dict(plan.status_fields())
        lora = plan.lora
        if fields.get("phase") == "Placed" and fields.get("placement"):
            placed_at = fields["placement"]
            scaled_fields["tier"] = scaling.temperature(placed_at["tier"], placed_at["replicas"])
        if policy is not None and fields.get("phase") == "Placed":
            scaled_fields = demand_status.status_fields(
                state, key, previous, decision, scaled, fields
            )
            fields["cost"] = scaled_fields.pop("cost", fields.get("cost"))
            if scaled.needed is None:
                state.too_few.pop(key, None)
            elif policy.max_replicas is not None and state.too_few.get(key) != scaled.needed:
                state.too_few[key] = scaled.needed
                events.too_few_replicas(body, scaled.needed, policy.max_replicas, decision.reason)
    except inputs.InvalidSpec as error:
        fields = {"phase": "Invalid", "message": str(error)}

    if fields.get("phase") == "Placed":
        try:
            chosen = _chosen_config(spec_model, fields, config, variant_configs)
            applied = await _apply_placed(
                state,
                api,
                body,
                spec_model,
                fields,
                cluster,
                chosen,
                previous,
                running,
                trigger,
                key,
                indexes,
                fingerprint,
                lora,
            )
        except (render.RenderError, owned.Rejected) as error:  # a 422 is not retried: same object
            fields = {"phase": "Invalid", "message": str(error)}
        else:
            await modeladapters.write_statuses(api, indexes, key, fields)
            scaled_changes = {k: v for k, v in scaled_fields.items() if previous.get(k) != v}
            changes = {**applied, **scaled_changes}
            if policy is None:
                changes = _with_slo_not_measured(state, previous, changes, generation)
            return changes

    state.fingerprints[key] = fingerprint
    await modeladapters.write_statuses(api, indexes, key, fields)
    if running is not None:
        why = _why(fields)
        message = f"generation {generation}: {why}; the running placement is kept"
        outcome = mdstatus.Outcome("kept", fields, reason="PlacementKept", message=message)
        if previous.get("message") != message or previous.get("observedGeneration") != generation:
            events.placement_kept(body, _placement_dict(running), f"generation {generation}: {why}")
        ready = mdstatus.readiness(indexed.serving(indexes, key))
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


async def _apply_placed(
    state: State,
    api: kube.Kube,
    body: Any,
    spec_model: Any,
    fields: dict[str, Any],
    cluster: Any,
    chosen: Any,
    previous: dict[str, Any],
    running: inputs.Placed | None,
    trigger: str,
    key: Key,
    indexes: Mapping[str, Any],
    fingerprint: Stamp,
    lora: Any = None,
) -> dict[str, Any]:
    """Apply a feasible plan: in place, as a move (``moves``), or not yet; the status fields
    (``lora``: the plan's LoRA adapters, loaded by the rendered engine arguments)."""
    namespace, name = key
    generation = body.get("metadata", {}).get("generation")
    planned = inputs.placed_entry({**fields, "phase": "Placed"})
    if planned is None:
        raise render.RenderError("the plan has no usable placement")
    likely_new = running is None and not _owned_known(indexes, key)
    serving_name, serving = None, None
    if not likely_new:
        serving_name, serving = await owned.serving(api, namespace, name)
    annotations = scrape.pod_annotations(await scrape.resolve(state, api), spec_model.runtime.port)
    now = datetime.datetime.now(datetime.UTC)
    decision = moves.decide(
        previous,
        running.placement if running else None,
        planned.placement,
        serving,
        trigger=trigger,
        now=now,
        interval_seconds=state.settings.min_move_interval_seconds,
    )
    verdict = decision.verdict
    if verdict in ("wait", "defer", "keep"):
        if verdict != "wait":  # a plan that waits for the move in flight is redone after it
            state.fingerprints[key] = fingerprint
        reason = KEPT_REASONS[verdict]
        placed_condition = next(
            (c for c in previous.get("conditions") or [] if c.get("type") == "Placed"), {}
        )
        if verdict == "defer" and placed_condition.get("message") != decision.message:
            events.move_deferred(body, decision.message)
        outcome = mdstatus.Outcome("kept", fields, reason=reason, message=decision.message)
        return _status_changes(
            state, key, previous, outcome, mdstatus.readiness(serving), generation
        )

    extra: dict[str, Any] = {}
    if verdict == "cancel":
        move = previous.get("move") or {}
        await owned.delete_deployment(api, namespace, str(move.get("toDeployment")))
        events.move_abandoned(body, move, decision.message)
        extra = {"move": None, "lastMoveTime": moves.timestamp(now)}
        state.recent[inputs.successor_key(key)] = None
    state.fingerprints[key] = fingerprint
    if verdict in ("apply", "cancel"):
        target = serving_name or name
        deployment, service = _render(
            body,
            spec_model,
            fields,
            cluster,
            chosen,
            name=target,
            lora=lora,
            pod_annotations=annotations,
        )
        if serving is not None and keda.manages(state, body.get("spec") or {}):
            # KEDA's HPA owns the replica count: an apply keeps the one it set.
            deployment["spec"]["replicas"] = (serving.get("spec") or {}).get("replicas", 1)
        selects = ((serving or {}).get("spec") or {}).get("selector", {}).get("matchLabels")
        if selects:  # what the serving Deployment selects, also one rendered before it had
            service["spec"]["selector"] = dict(selects)  # a workload label: no upgrade gap
        deployment = await owned.apply(api, (deployment, service), likely_new=likely_new)
        await _delete_strays(api, key, indexes, keep={target})
        state.recent[key] = planned
        _emit_placed(body, previous, running, fields, trigger)
        ready = mdstatus.readiness(deployment)
        changes = _status_changes(
            state, key, previous, status_outcome_placed(fields), ready, generation
        )
        return {**changes, **{k: v for k, v in extra.items() if previous.get(k) != v}}

    # start or continue a move: the successor beside the serving Deployment, which serves on.
    serving_name = serving_name or name  # a Service deleted under a move: the owner's name
    in_flight = previous.get("move") or {}
    successor_name = in_flight.get("toDeployment") or render.successor_name(
        name, planned.placement, serving_name
    )
    successor, _service = _render(
        body,
        spec_model,
        fields,
        cluster,
        chosen,
        name=successor_name,
        serving=serving_name,
        lora=lora,
        pod_annotations=annotations,
    )
    successor = await owned.apply_deployment(api, successor)
    state.recent[inputs.successor_key(key)] = planned  # its room, until the index has it
    # The Deployment the move started from: after a crash between the switch and the delete
    # the Service already selects the successor, and the old one is still to be deleted.
    origin = in_flight.get("fromDeployment") or serving_name
    await _delete_strays(api, key, indexes, keep={origin, serving_name, successor_name})
    if verdict == "start":
        move = moves.started(fields, origin, successor, trigger=trigger, now=now)
        _emit_placed(body, previous, running, fields, trigger)  # Replanned: before -> after
        events.move_started(body, move)
    else:
        move = {
            **in_flight,
            **moves.started(fields, origin, successor, trigger=trigger, now=now),
        }
        move["startedAt"] = in_flight.get("startedAt") or move["startedAt"]
        move["trigger"] = in_flight.get("trigger") or trigger
    message = (
        f"moving to {events.summary(move['placement'])}: {successor_name} starts beside "
        f"{serving_name}, which serves until it is Ready"
    )
    outcome = mdstatus.Outcome("kept", fields, reason="Moving", message=message)
    changes = _status_changes(
        state, key, previous, outcome, mdstatus.readiness(serving), generation
    )
    return {**changes, **({"move": move} if previous.get("move") != move else {})}


def _owned_known(indexes: Mapping[str, Any], key: Key) -> bool:
    """Whether the indexes know a Deployment or Service of ``key`` (else it is likely new: its
    objects are created without reading first, and read only if the create finds them)."""
    return bool(indexed.deployments(indexes, key)) or key in (indexes.get("services") or {})


KEPT_REASONS = {"wait": "MoveInFlight", "defer": "MoveDeferred", "keep": "KeptAfterRestart"}
"""The Placed condition's reason when a feasible re-plan keeps the running placement."""


async def _delete_strays(
    api: kube.Kube, key: Key, indexes: Mapping[str, Any], *, keep: set[str]
) -> None:
    """Delete owned Deployments that neither serve nor are the move's successor: one created
    just before a crash and never recorded, or a successor a later plan replaced."""
    for stray in indexed.deployments(indexes, key):
        name = stray["metadata"].get("name")
        if name and name not in keep:
            await owned.delete_deployment(api, key[0], name)


def pending_status(
    state: State,
    key: Key,
    previous: Any,
    generation: int | None,
    waiting: inputs.Waiting,
    body: Any = None,
) -> dict[str, Any]:
    """The status fields that change while the deployment waits for an input (phase Pending);
    a Warning (``Waiting``) names the input once, when the deployment starts waiting for it."""
    previous = inputs._plain(previous or {})
    new = mdstatus.pending_patch(previous, waiting.waiting_for, generation=generation)
    state.metrics.observe(key[0], key[1], {**previous, **new})
    changes = {k: v for k, v in new.items() if previous.get(k) != v}
    if body is not None and previous.get("message") != new.get("message"):
        timeout = state.settings.input_timeout_seconds
        running = inputs.placed_entry(previous) is not None
        then = "" if running else f"; Invalid if still missing after {timeout:g} s"
        events.waiting(body, f"waiting for {waiting.waiting_for}{then}")
    return changes


def api_error_status(
    state: State,
    key: Key,
    body: Any,
    previous: Any,
    generation: int | None,
    error: Exception,
) -> dict[str, Any]:
    """The status fields that show an API error the retries may not fix (a 500 such as a full
    Service range, a quota's 403, an admission webhook's denial) in the API server's words,
    or a name taken by an object this deployment does not own (``owned.NameTaken``), with a
    Warning (``ApiError``, ``NameTaken``) once per message; the caller retries.

    A new deployment shows phase Pending with that message; a running one keeps its phase and
    placement (``Placed`` stays True, with reason ApiError)."""
    previous = inputs._plain(previous or {})
    reason, words = _refusal(error)
    new = mdstatus.pending_patch(previous, "a write the API server refused", generation=generation)
    running = inputs.placed_entry(previous) is not None
    now = datetime.datetime.now(datetime.UTC)
    new["conditions"] = mdstatus.set_condition(
        new.get("conditions") or previous.get("conditions") or [],
        "Placed",
        running,
        reason,
        words,
        generation=generation,
        now=now,
    )
    new["message"] = words
    if previous.get("message") != words:
        events.api_error(body, words, reason)
    state.metrics.observe(key[0], key[1], {**previous, **new})
    return {k: v for k, v in new.items() if previous.get(k) != v}


def _refusal(error: Exception) -> tuple[str, str]:
    """The condition reason and the words for a refusal (``REFUSED``)."""
    if isinstance(error, owned.NameTaken):
        return "NameTaken", f"{error}; retrying every minute"
    code = getattr(error, "code", None)
    return "ApiError", f"the API server refused a write ({code}): {kube.message(error)}; retrying"


def waited_out(
    state: State,
    key: Key,
    body: Any,
    previous: Any,
    generation: int | None,
    waiting: inputs.Waiting,
) -> dict[str, Any] | None:
    """The Invalid status of a new deployment that waited for the same input longer than
    ``--input-timeout`` (a Warning says so), or None while it may still wait.

    The wait is timed from the first time this run saw it waiting for that input, or from the
    ``Placed`` condition's transition when status already says so (a restart keeps the clock).
    A running deployment is never made Invalid: it keeps its placement and waits."""
    previous = inputs._plain(previous or {})
    now = datetime.datetime.now(datetime.UTC)
    what = waiting.waiting_for
    seen = state.waiting.get(key)
    if seen is None or seen[0] != what:
        seen = (what, _waiting_since(previous, what) or now)
        state.waiting[key] = seen
    if inputs.placed_entry(previous) is not None:
        return None
    timeout = state.settings.input_timeout_seconds
    if (now - seen[1]).total_seconds() < timeout:
        return None
    message = (
        f"{what} still missing after {timeout:g} s (--input-timeout); fix the spec or "
        "create it, then edit the spec to retry"
    )
    fields = {"phase": "Invalid", "message": message}
    outcome = mdstatus.Outcome("invalid", fields, reason="Invalid", message=message)
    if previous.get("message") != message or previous.get("observedGeneration") != generation:
        events.invalid(body, message)
    state.recent[key] = None
    state.fingerprints[key] = state.ledger.stamp()  # adapters not recorded: not compared
    not_ready = mdstatus.Readiness(False, "", "")
    return _status_changes(state, key, previous, outcome, not_ready, generation)


def _waiting_since(previous: Mapping[str, Any], what: str) -> datetime.datetime | None:
    for condition in previous.get("conditions") or []:
        if (
            condition.get("type") == "Placed"
            and condition.get("reason") == "Waiting"
            and condition.get("message") == f"waiting for {what}"
        ):
            return moves.parse_time(condition.get("lastTransitionTime"))
    return None


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
) -> dict[str, Any]:
    new = mdstatus.status_patch(previous, outcome, ready, generation=generation)
    changed = {k: v for k, v in new.items() if previous.get(k) != v}
    state.metrics.observe(key[0], key[1], {**previous, **new})
    return changed


def _with_slo_not_measured(
    state: State, previous: Mapping[str, Any], changes: dict[str, Any], generation: int | None
) -> dict[str, Any]:
    """``changes`` plus ``SLOMet`` Unknown when nothing is measured (no ``--prometheus-url``),
    as the measurement loop would set it, in the same write as the placement: that loop then
    finds it set and writes nothing (one status write per placement, not two). Not for a
    ``spec.scaling`` deployment (its verdict follows the demand: the loop sets it), nor when
    the condition is there already."""
    if state.settings.prometheus is not None:
        return changes
    conditions = changes.get("conditions") or previous.get("conditions") or []
    if any(c.get("type") == "SLOMet" for c in conditions):
        return changes
    from .measure import NO_PROMETHEUS  # here: measure imports reconcile (through calibrate)

    now = datetime.datetime.now(datetime.UTC)
    conditions = mdstatus.set_condition(
        conditions,
        "SLOMet",
        "Unknown",
        "NoPrometheus",
        NO_PROMETHEUS,
        generation=generation,
        now=now,
    )
    return {**changes, "conditions": conditions}


def _render(
    body: Any,
    spec_model: Any,
    fields: Mapping[str, Any],
    cluster: Any,
    config: Any,
    *,
    name: str,
    serving: str | None = None,
    lora: Any = None,
    pod_annotations: Mapping[str, str] | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    meta = body.get("metadata", {})
    return manifests.desired(
        meta["name"],
        meta["namespace"],
        meta["uid"],
        spec_model,
        fields,
        cluster,
        config,
        lora,
        name=name,
        serving=serving,
        pod_annotations=pod_annotations,
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


def _placement_dict(running: inputs.Placed) -> dict[str, Any]:
    return running.placement.to_wire()


def _why(fields: Mapping[str, Any]) -> str:
    if fields.get("phase") == "Unschedulable":
        return events.unschedulable_message(fields)
    return str(fields.get("message") or fields.get("phase") or "not placeable")

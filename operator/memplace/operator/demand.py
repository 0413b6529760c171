"""Replicas and tier follow the demand (``spec.scaling``): the shell around ``planning.scaling``.

Two call sites, both small:

- ``reconcile.plan_and_apply`` asks ``demand_status.decision_in`` for the demand to plan (the
  one in ``status.demand``, else the static value: the floor with no history) and plans it
  through ``planning.scaled_plan``; ``demand_status.status_fields`` gives ``status.demand``,
  ``status.tier`` and ``status.cost.last24h`` for the chosen plan.
- the measurement loop (``measure``) calls :func:`follow` after each window of a deployment with
  ``demand: Measured``: the window's generated tokens/s, running and waiting requests go into
  the stabilised decision; when the planned demand changes, it re-plans through the normal path
  (``reconcile.plan_and_apply``), so that a tier or pool change is a no-gap move with the
  ``--min-move-interval`` rate limit (``moves``), and a pure scale is applied in place. Each
  change of replicas or tier posts ``Scaled`` with the demand that drove it.

Cold: after ``idleAfterSeconds`` without requests the placement is kept and scaled to
``minReplicas`` (0 with ``coldStart: allowed``); the Service stays. With no pods there is
nothing to measure, so a cold model is woken by its wake-up query (``spec.scaling.wakeQuery``
or ``--wake-query``) reading above 0. A query that fails keeps the replicas, with the reason:
nothing is scaled to zero because Prometheus did not answer.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any

from memplace.planning import scaling

from . import events, inputs, keda, promql, reconcile
from .measurement import Measurement
from .prometheus import Prometheus
from .state import Key, State

__all__ = ["follow"]

async def follow(
    state: State,
    client: Prometheus | None,
    key: Key,
    body: Mapping[str, Any],
    measurement: Measurement | None,
    indexes: Mapping[str, Any],
    now: datetime.datetime,
    logger: Any,
) -> dict[str, Any]:
    """Fold one window into the deployment's demand; the status changes (a re-plan's, when the
    planned demand changed). Deployments without ``demand: Measured`` return nothing."""
    spec = body.get("spec") or {}
    try:
        policy = scaling.Policy.from_spec(inputs.parse_spec(spec))
    except inputs.InvalidSpec:
        return {}  # the reconcile reports it
    if policy is None or not policy.measured or keda.manages(state, spec):
        return {}  # static, or KEDA's ScaledObject scales the replicas (``keda``)
    status = body.get("status") or {}
    held = status.get("demand") or {}
    watch = state.watches[key]
    at = now.timestamp()
    history = watch.demand or scaling.start(policy, at, held.get("plannedTokensPerSecond"))
    if held.get("source") == "idle" and not history.idle:
        history = scaling.History(((at, 0.0),), 0.0, at, "idle", True)  # cold before a restart
    wake = (spec.get("scaling") or {}).get("wakeQuery") or state.settings.wake_query
    sample = await _sample(client, wake, key, measurement, history, at, now)
    history, decision = scaling.step(history, policy, sample)
    watch.demand = history
    active = datetime.datetime.fromtimestamp(history.last_active, datetime.UTC)
    new_held = {
        **held,
        "tokensPerSecond": sample.tokens_per_second
        if sample.tokens_per_second is not None
        else held.get("tokensPerSecond"),
        "window": measurement.window if measurement is not None else held.get("window"),
        "lastActiveTime": active.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    planned_before = held.get("plannedTokensPerSecond")
    same = (
        planned_before is not None
        and round(decision.planned, 3) == planned_before
        and (held.get("source") == "idle") == decision.idle
    )
    if same:
        new_held["reason"] = decision.reason
        return {"demand": new_held} if new_held != held else {}
    new_held.update(
        source=decision.source,
        plannedTokensPerSecond=round(decision.planned, 3),
        reason=decision.reason,
    )
    replan_status = {**status, "demand": new_held}
    async with state.planning:
        changes = await reconcile.plan_and_apply(
            state, f"demand: {decision.reason}", body, spec, replan_status,
            body.get("metadata") or {}, key, logger, state.kopf_settings, indexes,
        )
    changes = dict(changes or {})
    changes.setdefault("demand", {**new_held, **(changes.get("demand") or {})})
    _post(body, status, changes, decision)
    return changes


async def _sample(
    client: Prometheus | None,
    wake: str | None,
    key: Key,
    measurement: Measurement | None,
    history: scaling.History,
    at: float,
    now: datetime.datetime,
) -> scaling.Sample:
    """The window as a ``scaling.Sample``; for a cold model, the wake-up query's verdict."""
    if history.idle:
        return await _wake_sample(client, key, wake, at, now)
    if measurement is None:
        return scaling.Sample(at, None, missing="no --prometheus-url is set")
    if measurement.failure is not None:
        return scaling.Sample(at, None, missing=measurement.failure)
    figures = measurement.figures
    tokens = figures.get("output_tokens_per_second")
    missing = measurement.missing.get("output_tokens_per_second", "no value")
    return scaling.Sample(
        at,
        tokens,
        running=figures.get("requests_running"),
        waiting=figures.get("requests_waiting"),
        missing="" if tokens is not None else f"generated tokens/s: {missing}",
    )


async def _wake_sample(
    client: Prometheus | None, key: Key, template: str | None, at: float,
    now: datetime.datetime,
) -> scaling.Sample:
    if client is None or not template:
        why = "no --prometheus-url" if client is None else "no wake-up query"
        return scaling.Sample(at, None, missing=f"cold, and {why} is set to wake it")
    query = template.replace("{namespace}", key[0]).replace("{name}", key[1])
    answer = await client.query(query, now)
    if isinstance(answer, promql.NoFigure):
        return scaling.Sample(at, None, missing=f"cold; the wake-up query failed: {answer.reason}")
    if answer > 0:
        return scaling.Sample(at, None, wake=True)
    return scaling.Sample(at, None, missing=f"cold; the wake-up query reads {answer:g}")


def _post(
    body: Mapping[str, Any],
    status: Mapping[str, Any],
    changes: Mapping[str, Any],
    decision: scaling.Decision,
) -> None:
    old = status.get("placement") or {}
    new = (changes.get("move") or {}).get("placement") or changes.get("placement") or old
    old_heat = status.get("tier") or scaling.temperature(old.get("tier"), old.get("replicas") or 0)
    new_heat = changes.get("tier") or scaling.temperature(new.get("tier"), new.get("replicas") or 0)
    if old.get("replicas") != new.get("replicas") or old_heat != new_heat:
        events.scaled(body, {**old, "heat": old_heat}, {**new, "heat": new_heat}, decision.reason)

"""The measurement loop: every ``--measure-interval``, what each placed deployment's pods measure.

Per placed ModelDeployment, the loop asks Prometheus the engine's queries (``promql``) over the
deployment's pods and ``--measure-window``, builds one :class:`measurement.Measurement`, and:

- writes ``status.measured`` (the engine figures beside the agent's GPU memory, with
  ``estimateError``) and the ``SLOMet`` condition, as one merge patch on the status subresource
  guarded by the indexed ``resourceVersion`` (a 409 skips the write: the next window redoes it);
- posts ``SLOAtRisk`` (Warning) when the p95 misses the SLO in two consecutive windows (still
  missed a whole window after the first miss), once per streak, and ``EstimateDrift``
  (Normal) when a figure's measured ÷ estimated moves more than 25 % from 1, once per figure
  until it comes back;
- sets the ``memplace_measured_*`` and ``memplace_estimate_error_ratio`` metrics;
- creates the deployment's PodMonitor when that is how Prometheus finds the pods (``scrape``);
- feeds the window to the deployment's PerformanceProfile and re-plans when the calibrated
  estimate misses the SLO (``calibrate``); when nothing better exists, the PlacementKept
  Warning of those re-plans is posted once per streak, not every window.

Without ``--prometheus-url`` the loop still runs, and only sets ``SLOMet=Unknown`` saying that no
``--prometheus-url`` is set. When Prometheus fails (unreachable, errors, a malformed body) the
condition is Unknown with the reason, the last figures stay in status with their ``observedAt``,
and nothing placed is touched: measuring never deletes, scales or re-plans by itself.

Like the resync loop, it is one loop for the operator (Kopf timers would need a finalizer on
every object), started from a handler so that it inherits Kopf's Event poster, and it writes
nothing while this replica is not the active peer (``state.paused``, kept by the resync loop).
"""

from __future__ import annotations

import asyncio
import datetime
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from memplace.api import MODEL_DEPLOYMENT

from . import calibrate, demand, demand_status, events, indexed, inputs, keda, kube, promql, scrape
from . import status as mdstatus
from .measurement import Measurement, drifted, measured_fields, slo_verdict
from .metrics import ERRORS
from .prometheus import Prometheus
from .state import Key, State

__all__ = ["NO_PROMETHEUS", "Watch", "measure_one", "start_once"]

NO_PROMETHEUS = (
    "no --prometheus-url is set (chart value prometheus.url): the pods' latency is not measured"
)


@dataclass
class Watch:
    """What the loop remembers about one deployment between windows (lost on restart, which
    only delays a SLOAtRisk by one window)."""

    missed_since: datetime.datetime | None = None
    """When the current run of SLOMissed verdicts began (None: the SLO is met)."""
    warned: bool = False
    """SLOAtRisk was posted for the current streak."""
    drifting: frozenset[str] = field(default_factory=frozenset)
    """Figures an EstimateDrift was posted for, until they come back within 25 %."""
    monitored: bool = False
    """Its PodMonitor was created (``scrape``: only when the cluster has the CRD)."""
    sampled_at: datetime.datetime | None = None
    """When the last window was fed to the PerformanceProfile (one per window, not overlapping)."""
    demand: Any = None
    """The demand history (``planning.scaling.History``) of a ``demand: Measured`` deployment."""
    placement: Mapping[str, Any] | None = None
    """The placement the last window measured: after a move, a whole window passes before the
    next sample, so that no sample mixes the old placement's requests into the new one's."""
    kept: tuple[Any, Mapping[str, Any]] | None = None
    """(generation, placement) whose calibrated re-plan kept the placement, nothing better
    existing: the streak's later re-plans post no PlacementKept (``calibrate``)."""


def start_once(state: State, indexes: Mapping[str, Any], logger: Any) -> None:
    """Start the loop once, from a handler (it inherits Kopf's context: its Event poster)."""
    if state.measure_task is None:
        state.measure_task = asyncio.create_task(
            _measure_forever(state, indexes, logger), name="memplace measure"
        )


async def measure_one(
    client: Prometheus,
    engine: str,
    namespace: str,
    pods: list[str],
    window: str,
    now: datetime.datetime,
) -> Measurement:
    """One window's figures for these pods: every query of the engine, asked concurrently."""
    if not pods:
        return Measurement(engine, window, now, failure="no pods of this deployment exist yet")
    try:
        asked = promql.queries(engine, promql.selector(namespace, pods), window)
    except ValueError as error:
        return Measurement(engine, window, now, failure=str(error))
    answers = await asyncio.gather(*(client.query(query.promql, now) for query in asked))
    figures: dict[str, float] = {}
    missing: dict[str, str] = {}
    for query, answer in zip(asked, answers, strict=True):
        if isinstance(answer, promql.NoFigure):
            if answer.unreachable:
                return Measurement(engine, window, now, failure=answer.reason)
            missing[query.figure] = answer.reason
        else:
            figures[query.figure] = answer
    for reason_of, why in (promql.ENGINES[engine].missing or {}).items():
        for name in promql.FIGURES:
            if name.startswith(reason_of) and name not in figures:
                missing.setdefault(name, why)
    return Measurement(engine, window, now, figures=figures, missing=missing)


async def _measure_forever(state: State, indexes: Mapping[str, Any], logger: Any) -> None:
    logger = logger.logger if hasattr(logger, "logger") else logger  # not one object's logger
    settings = state.settings
    api = kube.Kube(state.kopf_settings, logger)
    client = Prometheus(settings.prometheus) if settings.prometheus is not None else None
    try:
        while True:
            await asyncio.sleep(settings.measure_interval_seconds)
            if state.paused is not None:
                continue
            for key, store in list((indexes.get("models") or {}).items()):
                body = next(iter(store), None)
                if body is None:
                    continue
                try:
                    await _measure_deployment(state, client, key, body, indexes, api, logger)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    ERRORS.labels("unexpected").inc()
                    logger.exception(f"Measuring {key[0]}/{key[1]} failed; next window.")
    finally:
        if client is not None:
            await client.close()


async def _measure_deployment(
    state: State,
    client: Prometheus | None,
    key: Key,
    body: Mapping[str, Any],
    indexes: Mapping[str, Any],
    api: kube.Kube,
    logger: Any,
) -> None:
    previous = body.get("status") or {}
    placement = previous.get("placement")
    if not placement:
        return  # nothing runs: nothing to measure, SLOMet stays unset
    spec = body.get("spec") or {}
    now = datetime.datetime.now(datetime.UTC)
    watch = state.watches.setdefault(key, Watch())
    if watch.placement is not None and watch.placement != placement:
        watch.sampled_at = now
    watch.placement = placement
    if not watch.monitored and await scrape.resolve(state, api) == "podmonitor":
        watch.monitored = True  # tried once per run: a refusal is logged, never retried
        try:
            await scrape.ensure_pod_monitor(api, body)
        except asyncio.CancelledError:
            raise
        except Exception as error:  # noqa: BLE001 — measuring goes on without it
            logger.warning(f"No PodMonitor for {key[0]}/{key[1]}: {kube.message(error)}")
    if client is not None and await keda.present(state, api) and keda.manages(state, spec):
        await _ensure_scaled_object(state, api, key, body, indexes, logger)
    fields: dict[str, Any] | None = None
    measurement: Measurement | None = None
    if client is None:
        verdict = slo_verdict(None, spec.get("slo") or {}, no_prometheus=NO_PROMETHEUS)
    else:
        engine = (spec.get("runtime") or {}).get("engine") or "vllm"
        pods = sorted((indexes.get("replica_pods") or {}).get(key) or [])
        measurement = await measure_one(
            client, engine, key[0], pods, state.settings.measure_window, now
        )
        verdict = slo_verdict(measurement, spec.get("slo") or {})
        if measurement.failure is None:
            fields = measured_fields(measurement, previous)
    changes: dict[str, Any] = {}
    if fields is not None and _sample_due(watch, now, state.settings.measure_window):
        changes = await _calibrate(state, key, body, indexes, api, fields, now, watch, logger)
    if not changes:  # a calibration re-plan already used this window's demand
        try:
            changes = await demand.follow(
                state, client, key, body, measurement, indexes, now, logger
            )
        except inputs.Waiting:
            changes = {}  # an input the spec names went away: the resync loop reports it
    verdict = demand_status.slo_override({**previous, **changes}, verdict)
    if fields is not None and _differs(previous.get("measured") or {}, fields):
        changes["measured"] = fields
    before = changes.get("conditions") or previous.get("conditions") or []
    conditions = mdstatus.set_condition(
        before, "SLOMet", verdict.status, verdict.reason,
        verdict.message, generation=previous.get("observedGeneration"), now=now,
    )
    if conditions != (previous.get("conditions") or []):
        changes["conditions"] = conditions
    if changes and not await _write_status(api, key, body, changes):
        state.fingerprints.pop(key, None)  # a re-plan's status may be lost: resync redoes it
    _post_events(watch, body, verdict, fields, state.settings.measure_window, now)
    state.metrics.observe_measured(key[0], key[1], placement, fields)
    state.metrics.accrue(key[0], key[1])  # memplace_cost_usd_total grows every window


async def _ensure_scaled_object(
    state: State, api: kube.Kube, key: Key, body: Mapping[str, Any],
    indexes: Mapping[str, Any], logger: Any,
) -> None:
    """The deployment's KEDA objects, pointed at the Deployment that serves now (``keda.keep``)."""
    try:
        await keda.keep(state, api, body, indexed.serving_name(indexes, key))
    except asyncio.CancelledError:
        raise
    except Exception as error:  # noqa: BLE001 — measuring goes on; the next window retries
        logger.warning(f"No ScaledObject for {key[0]}/{key[1]}: {kube.message(error)}")


def _sample_due(watch: Watch, now: datetime.datetime, window: str) -> bool:
    """One calibration sample per non-overlapping window (``calibrate``)."""
    if watch.sampled_at is None:
        return True
    return (now - watch.sampled_at).total_seconds() >= promql.duration_seconds(window)


async def _calibrate(
    state: State,
    key: Key,
    body: Mapping[str, Any],
    indexes: Mapping[str, Any],
    api: kube.Kube,
    fields: Mapping[str, Any],
    now: datetime.datetime,
    watch: Watch,
    logger: Any,
) -> dict[str, Any]:
    """Feed the window to the PerformanceProfile; the re-plan's status changes, if it re-planned."""
    measured = {**((body.get("status") or {}).get("measured") or {}), **fields}
    learned = await calibrate.learn(api, body, indexes, measured, now)
    if learned is None:
        return {}
    watch.sampled_at = now
    status = body.get("status") or {}
    streak = ((body.get("metadata") or {}).get("generation"), status.get("placement"))
    try:
        replanned = await calibrate.replan_if_missed(
            state, key, body, learned, indexes, now, logger, quiet=watch.kept == streak
        )
    except inputs.Waiting:
        return {}  # an input the spec names went away: the resync loop reports it
    kept = replanned is not None and calibrate.kept(status, replanned)
    watch.kept = streak if kept else None
    return dict(replanned or {})


def _differs(old: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    """Whether the engine figures moved (a newer ``observedAt`` alone rewrites nothing)."""
    return any(old.get(name) != value for name, value in new.items() if name != "observedAt")


def _post_events(
    watch: Watch, body: Mapping[str, Any], verdict: Any, fields: Mapping[str, Any] | None,
    window: str, now: datetime.datetime,
) -> None:
    """SLOAtRisk once the SLO is missed in two consecutive windows: missed at some instant and
    still missed a whole window later (the two windows then share no request), once per run of
    misses; an Unknown window neither ends nor extends the run."""
    if verdict.missed:
        watch.missed_since = watch.missed_since or now
        lasted = (now - watch.missed_since).total_seconds()
        if lasted >= promql.duration_seconds(window) and not watch.warned:
            events.slo_at_risk(body, verdict.message, window)
            watch.warned = True
    elif verdict.status == "True":
        watch.missed_since, watch.warned = None, False
    if fields is None:
        return
    off = drifted(fields.get("estimateError"))
    fresh = {name: ratio for name, ratio in off.items() if name not in watch.drifting}
    if fresh:
        events.estimate_drift(body, fresh, window)
    watch.drifting = frozenset(off)


async def _write_status(
    api: kube.Kube, key: Key, body: Mapping[str, Any], changes: Mapping[str, Any]
) -> bool:
    """Merge-patch ``status`` as of the indexed ``resourceVersion``; False on a 409 (someone
    wrote status since the index was read: the next window redoes it)."""
    url = kube.path(MODEL_DEPLOYMENT.api_version, MODEL_DEPLOYMENT.plural, *key) + "/status"
    patch: dict[str, Any] = {"status": dict(changes)}
    version = (body.get("metadata") or {}).get("resourceVersion")
    if version:
        patch["metadata"] = {"resourceVersion": version}
    try:
        await api.merge_patch(url, patch)
    except kube.NotFound:
        return True  # deleted meanwhile: nothing to redo
    except kube.Conflict:
        return False
    return True

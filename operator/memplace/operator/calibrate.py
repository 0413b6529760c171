"""From a measurement window to a PerformanceProfile, and from the profile to a re-plan.

The measurement loop (``measure``) calls :func:`learn` after each window of a placed deployment.
Once per *non-overlapping* window (``--measure-window`` since the last sample: overlapping windows
would count one stretch of serving several times, ``calibration.MIN_SAMPLES``), it:

1. divides what was measured by what the planner predicted for the running placement, before
   any factor (``calibration.observe``): the median time per output token and to first token
   (the mean where the engine exports no histogram); memory only for llama.cpp server, whose
   allocation is what the estimate models: vLLM and TGI reserve a share of the GPU up front
   (``--gpu-memory-utilization``, ``--cuda-memory-fraction``), which says nothing about the model;
2. creates the deployment's PerformanceProfile (``status.estimate.calibration.profile``, named
   from the key: architecture, GPU, precision, KV dtype, engine, GPUs per replica, tier) when it
   does not exist, and merge-patches its status as of the indexed ``resourceVersion``: two
   deployments sharing a profile never overwrite each other's sample (a 409 drops this one);
3. recalibrates the running estimate with the profile's new factors and asks
   ``replan.should_replan``; when the calibrated estimate misses the SLO (and the last move is
   older than ``--min-move-interval``), it re-plans through the normal path,
   ``reconcile.plan_and_apply``, which moves without a gap or keeps the placement (with a
   Warning) when nothing better exists.

While the calibrated estimate misses the SLO and nothing better exists, every window re-plans
(a pool added, room freed or a factor that eases is acted on at once) and keeps the placement;
each such plan's message names the profile's new sample count, so its PlacementKept Warning
would differ from the last and be posted every window. The measurement loop therefore keeps a
*streak* (``measure.Watch.kept``): from the first re-plan that keeps the placement of a
generation until one that does not, or a window whose calibrated estimate meets the SLO, the
re-plans post no PlacementKept (``quiet``, ``events.muted``); status still shows the latest
message, with its count.

A wildly wrong window (1000× the prediction) moves nothing on its own: the factor is a median
of recent samples, clamped, and used only from ``MIN_SAMPLES`` samples on (``calibration``).
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any

from memplace.api import (
    PERFORMANCE_PROFILE,
    EstimateStatus,
    PerformanceProfile,
    PerformanceProfileStatus,
    PlacementStatus,
    SloSpec,
)
from memplace.planning import calibration, replan

from . import events, kube, reconcile
from .state import Key, State

__all__ = ["MEASURES_MEMORY", "kept", "learn", "replan_if_missed"]

MEASURES_MEMORY = frozenset({"llamacpp"})
"""Engines whose GPU memory is the model's, not a reserved share (see the module docstring)."""


async def learn(
    api: kube.Kube,
    body: Mapping[str, Any],
    indexes: Mapping[str, Any],
    measured: Mapping[str, Any],
    now: datetime.datetime,
) -> tuple[calibration.ProfileKey, PerformanceProfileStatus] | None:
    """Record one window into the deployment's PerformanceProfile; the key and the new status,
    or None when nothing was recorded (no calibration key, nothing measured, a lost race)."""
    status = body.get("status") or {}
    try:
        estimate = EstimateStatus.model_validate(status.get("estimate") or {})
        placement = PlacementStatus.model_validate(status.get("placement") or {})
    except ValueError:
        return None
    if estimate.calibration is None:
        return None
    engine = ((body.get("spec") or {}).get("runtime") or {}).get("engine") or "vllm"
    key = calibration.ProfileKey.for_placement(placement, engine, estimate.calibration.architecture)
    if key is None:
        return None
    tpot, ttft = _typical(measured.get("timePerOutputTokenMs")), _typical(
        measured.get("timeToFirstTokenMs"))
    memory = None
    replica_bytes = measured.get("gpuMemoryBytesPerReplica")
    if engine in MEASURES_MEMORY and replica_bytes:
        memory = replica_bytes / max(placement.gpus_per_replica, 1)
    if tpot is None and ttft is None and memory is None:
        return None
    stored, version = _indexed_profile(indexes, key.name)
    at = now.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    learned = calibration.observe(stored.status if stored else None, estimate, at,
                                  tpot_ms=tpot, ttft_ms=ttft, memory_bytes_per_gpu=memory)
    url = kube.path(PERFORMANCE_PROFILE.api_version, PERFORMANCE_PROFILE.plural, None, key.name)
    if stored is None:
        model = ((body.get("spec") or {}).get("model") or {}).get("name")
        profile = {"apiVersion": PERFORMANCE_PROFILE.api_version, "kind": PERFORMANCE_PROFILE.kind,
                   "metadata": {"name": key.name}, "spec": key.spec(model).to_wire()}
        try:
            created = await api.create(url.rsplit("/", 1)[0], profile)
        except kube.Conflict:
            return None  # another deployment created it meanwhile: next window, from the index
        version = (created.get("metadata") or {}).get("resourceVersion")
    patch: dict[str, Any] = {"status": learned.to_wire()}
    if version:
        patch["metadata"] = {"resourceVersion": version}
    try:
        await api.merge_patch(url + "/status", patch)
    except (kube.Conflict, kube.NotFound):
        return None
    return key, learned


async def replan_if_missed(
    state: State,
    key: Key,
    body: Mapping[str, Any],
    profile: tuple[calibration.ProfileKey, PerformanceProfileStatus],
    indexes: Mapping[str, Any],
    now: datetime.datetime,
    logger: Any,
    *,
    quiet: bool = False,
) -> dict[str, Any] | None:
    """Re-plan when the running estimate, recalibrated with ``profile``, misses the SLO; the
    status fields the re-plan wants written, or None when it was not needed.

    ``quiet``: an earlier re-plan of this streak kept the placement already and said so; this
    one posts no PlacementKept (the module docstring)."""
    profile_key, learned = profile
    status = body.get("status") or {}
    spec = body.get("spec") or {}
    estimate = EstimateStatus.model_validate(status.get("estimate") or {})
    profile_object = PerformanceProfile.model_validate({
        "metadata": {"name": profile_key.name},
        "spec": profile_key.spec().to_wire(),
        "status": learned.to_wire(),
    })
    factors = calibration.Calibration([profile_object]).factors(profile_key)
    if not factors.applied:
        return None  # below MIN_SAMPLES: nothing to act on yet
    decision = replan.should_replan(
        calibration.recalibrated(estimate, factors),
        SloSpec.model_validate(spec.get("slo") or {}),
        last_move_at=status.get("lastMoveTime"),
        min_move_interval_s=state.settings.min_move_interval_seconds,
        now=now.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    )
    if not decision.replan:
        logger.debug(f"{key[0]}/{key[1]}: no re-plan: {decision.message}")
        return None
    logger.info(f"{key[0]}/{key[1]}: {decision.message}")
    async with state.planning:
        with events.muted(*(("PlacementKept",) if quiet else ())):
            return await reconcile.plan_and_apply(
                state, decision.message, body, spec, status, body.get("metadata") or {}, key,
                logger, state.kopf_settings, indexes,
            )


def kept(status: Mapping[str, Any], changes: Mapping[str, Any]) -> bool:
    """Whether a re-plan from ``status`` that wants ``changes`` written kept the running
    placement because nothing better exists (its Placed condition's reason PlacementKept)."""
    conditions = changes.get("conditions") or status.get("conditions") or []
    placed = next((c for c in conditions if c.get("type") == "Placed"), {})
    return placed.get("reason") == "PlacementKept"


def _indexed_profile(
    indexes: Mapping[str, Any], name: str
) -> tuple[PerformanceProfile | None, str | None]:
    """The profile as the index holds it, and the resourceVersion to patch it as of."""
    profile = next(iter((indexes.get("profiles") or {}).get(name) or []), None)
    version = next(iter((indexes.get("profile_versions") or {}).get(name) or []), None)
    return profile, version


def _typical(latency: Mapping[str, float] | None) -> float | None:
    if not latency:
        return None
    return latency.get("p50", latency.get("mean"))

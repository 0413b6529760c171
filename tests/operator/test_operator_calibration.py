"""The real operator plans with the PerformanceProfiles it watches (KMock's emulator)."""

from __future__ import annotations

import pytest
from operator_support import add_pool, eventually, md_url, model_deployment, status_of

from memplace.planning.calibration import MIN_SAMPLES, ProfileKey, record

PROFILES_URL = "/apis/memplace.io/v1alpha1/performanceprofiles"
AT = "2026-12-01T22:00:00Z"


def profile_for(key: ProfileKey, decode: float, samples: int) -> dict:
    status = None
    for _ in range(samples):
        status = record(status, AT, decode=decode)
    return {
        "apiVersion": "memplace.io/v1alpha1",
        "kind": "PerformanceProfile",
        "metadata": {"name": key.name},
        "spec": key.spec(model="Qwen/Qwen3-8B").to_wire(),
        "status": status.to_wire() if status is not None else {},
    }


async def test_a_replan_reads_the_learned_factors_and_a_malformed_profile_is_skipped(
    cluster, operator
):
    await add_pool(cluster, "a100", 30.0)
    await cluster.create(PROFILES_URL, {  # skipped with a log line; it stops nothing
        "apiVersion": "memplace.io/v1alpha1", "kind": "PerformanceProfile",
        "metadata": {"name": "broken"}, "spec": {"architecture": "not-hex"}})
    await cluster.create(md_url(), model_deployment("summarizer"))
    status = await eventually(lambda: status_of(cluster, "summarizer").get("estimate") and
                              status_of(cluster, "summarizer"), what="the first plan")
    first = status["estimate"]
    assert first["calibration"]["samples"] == 0
    placement = status["placement"]
    key = ProfileKey.for_placement(
        _placement(placement), "vllm", first["calibration"]["architecture"])
    assert key is not None and key.name == first["calibration"]["profile"]

    await cluster.create(PROFILES_URL, profile_for(key, decode=1.5, samples=MIN_SAMPLES))
    await cluster.merge_patch(md_url(name="summarizer"), {"spec": {"workload": {"minReplicas": 2}}})

    calibrated = await eventually(
        lambda: (s := status_of(cluster, "summarizer")).get("observedGeneration") == 2
        and s["estimate"]["calibration"]["samples"] == MIN_SAMPLES and s["estimate"],
        what="the calibrated re-plan")
    assert calibrated["calibration"]["decodeFactor"] == 1.5
    assert calibrated["calibration"]["message"].startswith(f"calibrated from {MIN_SAMPLES}")
    assert calibrated["timePerOutputTokenMs"] == pytest.approx(
        first["timePerOutputTokenMs"] * 1.5, abs=0.01)


def _placement(fields: dict):
    from memplace.api import PlacementStatus

    return PlacementStatus.model_validate(fields)

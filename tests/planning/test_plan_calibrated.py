"""The planner on calibrated estimates: a learned factor moves a placement, and says so."""

from __future__ import annotations

import itertools

import pytest
from planning_clusters import a100_nodes, h100_nodes, l4_nodes
from test_plan import request, spec

from memplace.api import PerformanceProfile
from memplace.planning.architecture import architecture_from_config
from memplace.planning.calibration import MIN_SAMPLES, Calibration, ProfileKey, fingerprint, record
from memplace.planning.discovery import build_cluster
from memplace.planning.plan import plan_cluster, plan_deployment

AT = "2026-12-01T22:00:00Z"


@pytest.fixture
def cluster():
    return build_cluster(nodes=l4_nodes(2) + a100_nodes(1) + h100_nodes(1))


def qwen3_8b() -> str:
    return fingerprint(architecture_from_config(request().spec.model.config))


def profile(
    key: ProfileKey, samples: int, decode: float = 1.0, **more: float
) -> PerformanceProfile:
    status = None
    for _ in range(samples):
        status = record(status, AT, decode=decode, **more)
    body = {"metadata": {"name": key.name}, "spec": key.spec(model="Qwen/Qwen3-8B").to_wire()}
    if status is not None:
        body["status"] = status.to_wire()
    return PerformanceProfile.model_validate(body)


def chosen_key(plan, engine: str = "vllm") -> ProfileKey:
    key = ProfileKey.for_placement(plan.placement, engine, plan.estimate.calibration.architecture)
    assert key is not None
    return key


def test_an_uncalibrated_plan_names_its_profile_and_architecture(cluster):
    plan = plan_deployment(request(), cluster)
    calibration = plan.estimate.calibration
    assert calibration.architecture == qwen3_8b()
    assert calibration.profile == chosen_key(plan).name
    assert calibration.samples == 0 and calibration.decode_factor is None
    assert calibration.message.startswith("not calibrated: 0 of 5 samples")


def test_a_profile_that_slows_decode_2x_moves_the_deployment(cluster):
    before = plan_deployment(request(), cluster)
    slow = chosen_key(before)
    calibration = Calibration([profile(slow, MIN_SAMPLES, decode=2.0)])
    after = plan_deployment(request(calibration=calibration), cluster)
    assert after.phase == "Placed"
    moved = chosen_key(after)
    assert moved != slow
    assert (moved.gpu_model, moved.precision, moved.gpus_per_replica) != (
        slow.gpu_model,
        slow.precision,
        slow.gpus_per_replica,
    )
    assert after.estimate.time_per_output_token_ms <= 60
    assert after.cost.per_hour >= before.cost.per_hour


def test_a_slow_gpu_model_sends_the_deployment_elsewhere_and_the_reason_shows_the_figure(cluster):
    tight = spec(slo={"timePerOutputTokenMs": 30})
    before = plan_deployment(request(spec=tight), cluster)
    assert before.placement.gpu_model == "L4"
    every_l4 = [
        ProfileKey(qwen3_8b(), "L4", precision, kv, "vllm", gpus)
        for precision, kv, gpus in itertools.product(
            ("bf16", "fp16", "fp8", "int8", "int4", "nvfp4", "mxfp4"),
            ("bf16", "fp16", "fp8"),
            (1, 2, 4, 8),
        )
    ]
    calibration = Calibration([profile(k, MIN_SAMPLES + 2, decode=2.0) for k in every_l4])
    after = plan_deployment(request(spec=tight, calibration=calibration), cluster)
    assert after.placement.gpu_model != "L4"
    (l4,) = [a for a in after.alternatives if a.pool == "l4"]
    assert l4.code == "TooSlow"
    assert "(calibrated: TPOT ×2.00, 7 samples)" in l4.reason
    tpot = float(l4.reason.split("TPOT ")[1].split(" ms")[0])
    assert tpot > 30


def test_too_few_samples_change_nothing(cluster):
    before = plan_deployment(request(), cluster)
    calibration = Calibration([profile(chosen_key(before), MIN_SAMPLES - 1, decode=3.0)])
    after = plan_deployment(request(calibration=calibration), cluster)
    assert after.placement == before.placement
    assert after.estimate.time_per_output_token_ms == before.estimate.time_per_output_token_ms
    assert after.estimate.calibration.message.startswith("not calibrated: 4 of 5 samples")


def test_a_calibrated_placement_says_from_how_many_samples(cluster):
    before = plan_deployment(request(), cluster)
    key = chosen_key(before)
    calibration = Calibration([profile(key, 9, decode=0.8, prefill=1.5, memory=1.1)])
    after = plan_deployment(request(calibration=calibration), cluster)
    assert chosen_key(after) == key
    status = after.estimate.calibration
    assert (status.samples, status.decode_factor, status.prefill_factor, status.memory_factor) == (
        9,
        0.8,
        1.5,
        1.1,
    )
    assert status.message == f"calibrated from 9 samples (PerformanceProfile {key.name})"
    b, a = before.estimate, after.estimate
    assert a.time_per_output_token_ms == pytest.approx(b.time_per_output_token_ms * 0.8, abs=0.02)
    assert a.time_to_first_token_ms == pytest.approx(b.time_to_first_token_ms * 1.5, abs=0.2)
    assert a.output_tokens_per_second_per_replica == pytest.approx(
        b.output_tokens_per_second_per_replica / 0.8, abs=0.2
    )
    assert a.total_bytes_per_gpu == pytest.approx(b.total_bytes_per_gpu * 1.1, rel=1e-6)
    assert a.weights_bytes == b.weights_bytes


def test_a_profile_for_another_engine_does_not_apply(cluster):
    before = plan_deployment(request(), cluster)
    other = ProfileKey(**{**chosen_key(before).__dict__, "engine": "tgi"})
    after = plan_deployment(
        request(calibration=Calibration([profile(other, MIN_SAMPLES, decode=3.0)])), cluster
    )
    assert after.status_fields() == before.status_fields()


def test_the_memo_keys_the_factors_both_ways(cluster):
    """One cluster (one memo) planned without, with, then again without a profile."""
    plain = plan_deployment(request(), cluster).status_fields()
    slow = Calibration([profile(chosen_key(plan_deployment(request(), cluster)), 5, decode=2.0)])
    slower = plan_deployment(request(calibration=slow), cluster).status_fields()
    assert slower["placement"] != plain["placement"]
    assert plan_deployment(request(), cluster).status_fields() == plain
    assert plan_deployment(request(calibration=slow), cluster).status_fields() == slower
    fresh = build_cluster(nodes=l4_nodes(2) + a100_nodes(1) + h100_nodes(1))
    assert plan_deployment(request(calibration=slow), fresh).status_fields() == slower


def test_plan_cluster_calibrates_each_request(cluster):
    slow = Calibration([profile(chosen_key(plan_deployment(request(), cluster)), 5, decode=2.0)])
    plans = plan_cluster([request("a"), request("b", calibration=slow)], cluster)
    assert plans[0].estimate.calibration.samples == 0
    assert plans[1].placement != plans[0].placement


def test_a_memory_factor_can_make_a_model_stop_fitting_and_says_so():
    l4_only = build_cluster(nodes=l4_nodes(1))
    long = spec(
        workload={"contextTokens": 32768, "concurrency": 8, "outputTokensPerSecond": 0},
        placement={"tiers": ["gpu"]},
    )
    every_l4 = [
        ProfileKey(qwen3_8b(), "L4", precision, kv, "vllm", gpus)
        for precision, kv, gpus in itertools.product(
            ("bf16", "fp16", "fp8", "int8", "int4", "nvfp4", "mxfp4"),
            ("bf16", "fp16", "fp8"),
            (1, 2, 4),
        )
    ]
    calibration = Calibration([profile(k, MIN_SAMPLES, memory=3.0) for k in every_l4])
    assert plan_deployment(request(spec=long), l4_only).phase == "Placed"
    after = plan_deployment(request(spec=long, calibration=calibration), l4_only)
    assert after.phase == "Unschedulable"
    assert "0 fit in memory" in after.message
    (l4,) = [a for a in after.alternatives if a.pool == "l4"]
    assert l4.code == "DoesNotFit"
    assert l4.reason.endswith("(calibrated: memory ×3.00, 5 samples)")


def test_two_profiles_with_one_key_and_as_many_samples_the_first_name_wins():
    k = ProfileKey(qwen3_8b(), "L4", "fp8", "fp8", "vllm", 1)
    one, two = profile(k, 5, decode=2.0), profile(k, 5, decode=1.5)
    one = one.model_copy(update={"metadata": one.metadata.model_copy(update={"name": "b"})})
    two = two.model_copy(update={"metadata": two.metadata.model_copy(update={"name": "a"})})
    assert Calibration([one, two]).factors(k).decode == 1.5
    assert Calibration([two, one]).factors(k).decode == 1.5

"""The PerformanceProfile estimator and key: robust, clamped, counted, deterministic."""

from __future__ import annotations

import math
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from memplace.api import (
    RECENT_RATIOS_KEPT,
    CalibrationStatus,
    EstimateStatus,
    LearnedFactor,
    PerformanceProfile,
    PlacementStatus,
)
from memplace.planning.architecture import architecture_from_config, architecture_from_parameters
from memplace.planning.calibration import (
    FACTOR_MAX,
    FACTOR_MIN,
    MIN_SAMPLES,
    Calibration,
    Factors,
    ProfileKey,
    calibrate_memory,
    calibrate_speed,
    factors_of,
    fingerprint,
    learn,
    observe,
    predicted,
    record,
    usable,
)
from memplace.planning.latency import SpeedEstimate
from memplace.planning.memory import MemoryEstimate

AT = "2026-12-01T22:00:00Z"

QWEN3_8B = {  # Qwen/Qwen3-8B config.json (the fields the planner reads)
    "architectures": ["Qwen3ForCausalLM"],
    "model_type": "qwen3",
    "hidden_size": 4096,
    "intermediate_size": 12288,
    "num_hidden_layers": 36,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "head_dim": 128,
    "vocab_size": 151936,
    "tie_word_embeddings": False,
    "torch_dtype": "bfloat16",
}


def learned(*ratios: float) -> LearnedFactor | None:
    state = None
    for i, r in enumerate(ratios):
        state = learn(state, r, f"2026-12-01T22:{i % 60:02d}:00Z")
    return state


# --- the estimator ---------------------------------------------------------------------------


def test_one_sample_starts_the_window() -> None:
    state = learn(None, 2.0, AT)
    assert state is not None
    assert (state.factor, state.samples, state.recent_ratios, state.last_updated) == (
        2.0,
        1,
        [2.0],
        AT,
    )


def test_one_1000x_sample_does_not_move_a_settled_factor() -> None:
    state = learned(*[1.2] * 10, 1000.0)
    assert state is not None
    assert state.factor == pytest.approx(1.2)
    assert state.samples == 11


def test_a_minority_of_wild_samples_does_not_move_it() -> None:
    state = learned(1.5, 1000.0, 1.5, 0.001, 1.5)
    assert state is not None and state.factor == pytest.approx(1.5)


def test_it_converges_on_a_changed_ratio_within_half_a_window() -> None:
    state = learned(*[1.0] * RECENT_RATIOS_KEPT)
    assert state is not None and state.factor == pytest.approx(1.0)
    steps = 0
    while state.factor != pytest.approx(2.0):
        state = learn(state, 2.0, AT)
        steps += 1
        assert state is not None
    assert steps == RECENT_RATIOS_KEPT // 2 + 1


def test_noisy_samples_converge_on_their_median() -> None:
    noisy = [2.0 * (1 + 0.2 * math.sin(i)) for i in range(40)]
    state = learned(*noisy)
    assert state is not None
    assert state.factor == pytest.approx(2.0, rel=0.15)


def test_the_window_is_bounded_and_keeps_the_newest() -> None:
    state = learned(*[float(i + 1) / 10 for i in range(40)])
    assert state is not None
    assert len(state.recent_ratios) == RECENT_RATIOS_KEPT
    assert state.recent_ratios[-1] == pytest.approx(4.0)
    assert state.samples == 40


def test_the_factor_is_clamped_but_the_ratios_are_kept_as_measured() -> None:
    high = learned(*[10.0] * 6)
    low = learned(*[0.01] * 6)
    assert high is not None and low is not None
    assert high.factor == pytest.approx(FACTOR_MAX)
    assert low.factor == pytest.approx(FACTOR_MIN, rel=1e-3)
    assert high.recent_ratios[-1] == 10.0
    # a window that recovers leaves the bound as soon as its median does
    recovered = learned(*[10.0] * 6, *[1.1] * 10)
    assert recovered is not None and recovered.factor == pytest.approx(1.1)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, 0.0, -2.0, True, "2", None])
def test_invalid_ratios_are_ignored(bad: object) -> None:
    assert learn(None, bad, AT) is None  # type: ignore[arg-type]
    state = learned(1.3, 1.3)
    assert learn(state, bad, "2026-12-02T00:00:00Z") == state  # type: ignore[arg-type]


def test_a_factor_is_usable_only_from_the_minimum_sample_count() -> None:
    state = None
    for n in range(1, MIN_SAMPLES + 1):
        state = learn(state, 2.0, AT)
        assert usable(state) == (2.0 if n >= MIN_SAMPLES else None), n
    assert usable(None) is None


def test_a_1000x_measurement_is_clamped_even_when_it_is_all_there_is() -> None:
    state = learned(*[1000.0] * MIN_SAMPLES)
    assert usable(state) == pytest.approx(FACTOR_MAX)


@given(st.lists(st.floats(min_value=1e-6, max_value=1e6), min_size=1, max_size=60))
def test_the_factor_is_always_within_the_bounds_and_the_ratios_seen(ratios: list[float]) -> None:
    state = learned(*ratios)
    assert state is not None
    assert FACTOR_MIN - 1e-4 <= state.factor <= FACTOR_MAX + 1e-4
    window = state.recent_ratios
    def clamp(x: float) -> float:
        return min(FACTOR_MAX, max(FACTOR_MIN, x))

    lo, hi = clamp(min(window)), clamp(max(window))
    assert lo * 0.999 - 1e-4 <= state.factor <= hi * 1.001 + 1e-4
    assert state.samples == len(ratios)


def test_record_learns_each_given_figure_and_leaves_the_rest() -> None:
    status = record(None, AT, decode=2.0, memory=math.nan)
    assert status.decode is not None and status.decode.samples == 1
    assert status.prefill is None and status.memory is None
    again = record(status, AT, prefill=0.5)
    assert again.decode == status.decode
    assert again.prefill is not None and again.prefill.factor == 0.5


# --- the key ---------------------------------------------------------------------------------


def test_the_fingerprint_is_the_shape_not_the_name() -> None:
    a = architecture_from_config(QWEN3_8B)
    renamed = architecture_from_config({**QWEN3_8B, "_name_or_path": "my-org/finetune"})
    wider = architecture_from_config({**QWEN3_8B, "intermediate_size": 14336})
    assert re.fullmatch("[0-9a-f]{12}", fingerprint(a))
    assert fingerprint(a) == fingerprint(renamed)
    assert fingerprint(a) != fingerprint(wider)
    assert fingerprint(architecture_from_parameters(8e9)) != fingerprint(
        architecture_from_parameters(7e9)
    )


def key(**kw: object) -> ProfileKey:
    base = {
        "architecture": "0123456789ab",
        "gpu_model": "A100-SXM4-80GB",
        "precision": "int4",
        "kv_cache_dtype": "fp8",
        "engine": "vllm",
        "gpus_per_replica": 1,
    }
    return ProfileKey(**(base | kw))  # type: ignore[arg-type]


def test_the_name_derives_from_the_key_and_is_a_label() -> None:
    assert key().name == "0123456789ab-a100-sxm4-80gb-int4-kvfp8-vllm-x1"
    assert key(tier="offload").name.endswith("-x1-offload")
    long = key(gpu_model="RTX PRO 6000 Blackwell Server Edition (Max-Q) " * 2)
    other = key(gpu_model="RTX PRO 6000 Blackwell Server Edition (Max-Q) " * 3)
    for k in (key(), long, other):
        assert len(k.name) <= 63 and re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", k.name)
    assert long.name != other.name
    assert key().name == key().name


def test_a_key_round_trips_through_the_profile_spec() -> None:
    k = key(tier="offload", gpus_per_replica=2)
    profile = PerformanceProfile.model_validate(
        {"metadata": {"name": k.name}, "spec": k.spec(model="Qwen/Qwen3-8B").to_wire()}
    )
    assert ProfileKey.of(profile.spec) == k


def test_a_running_placement_has_a_key_except_on_the_cpu_tier() -> None:
    placed = PlacementStatus(
        pool="a100",
        gpu_model="A100-SXM4-80GB",
        precision="int4",
        kv_cache_dtype="fp8",
        tier="gpu",
        gpus_per_replica=1,
        replicas=2,
    )
    assert ProfileKey.for_placement(placed, "vllm", "0123456789ab") == key()
    cpu = placed.model_copy(update={"tier": "cpu", "gpu_model": None, "gpus_per_replica": 0})
    assert ProfileKey.for_placement(cpu, "vllm", "0123456789ab") is None


# --- applying it -----------------------------------------------------------------------------


def profile(k: ProfileKey, decode: list[float], name: str | None = None) -> PerformanceProfile:
    status = record(None, AT)
    for r in decode:
        status = record(status, AT, decode=r, prefill=r)
    return PerformanceProfile.model_validate(
        {
            "metadata": {"name": name or k.name},
            "spec": k.spec().to_wire(),
            "status": status.to_wire(),
        }
    )


def test_calibration_applies_a_profile_only_with_enough_samples() -> None:
    ready, young = key(), key(precision="fp8")
    cal = Calibration([profile(ready, [2.0] * MIN_SAMPLES), profile(young, [2.0] * 2)])
    assert cal.factors(ready) == Factors(
        profile=ready.name, decode=2.0, prefill=2.0, samples=MIN_SAMPLES, most_samples=5
    )
    assert not cal.factors(young).applied
    assert cal.factors(young).message.startswith(f"not calibrated: 2 of {MIN_SAMPLES} samples")
    assert cal.factors(key(engine="tgi")) == Factors(profile=key(engine="tgi").name)
    assert cal.relevant(["0123456789ab"], "vllm") == ((ready, cal.factors(ready)),)
    assert cal.relevant(["0123456789ab"], "tgi") == ()


def test_two_profiles_with_one_key_the_better_sampled_wins() -> None:
    k = key()
    cal = Calibration([profile(k, [3.0] * 5, name="mine"), profile(k, [1.5] * 9)])
    assert cal.factors(k).decode == 1.5


MEM = MemoryEstimate(
    weights_bytes=16_000,
    kv_cache_bytes=4_000,
    state_bytes=0,
    activation_bytes=1_000,
    overhead_bytes=2_000,
    gpus=2,
    weights_bytes_per_gpu=8_000,
    kv_cache_bytes_per_gpu=2_000,
    state_bytes_per_gpu=0,
    activation_bytes_per_gpu=500,
)


def test_memory_is_scaled_per_gpu_with_the_weights_kept() -> None:
    f = Factors(profile="p", memory=1.2, samples=5)
    m = calibrate_memory(MEM, f)
    assert m.weights_bytes_per_gpu == MEM.weights_bytes_per_gpu
    assert m.total_bytes_per_gpu == pytest.approx(MEM.total_bytes_per_gpu * 1.2, abs=2)
    assert factors_of(m) == f
    floor = calibrate_memory(MEM, Factors(profile="p", memory=FACTOR_MIN, samples=5))
    assert floor.total_bytes_per_gpu == MEM.weights_bytes_per_gpu
    assert calibrate_memory(MEM, Factors(profile="p")) is MEM


def test_speed_is_scaled_and_throughput_follows_decode() -> None:
    s = SpeedEstimate(200.0, 20.0, 400.0, "memory")
    c = calibrate_speed(s, Factors(profile="p", decode=2.0, prefill=1.5, samples=5))
    assert (c.time_to_first_token_ms, c.time_per_output_token_ms) == (300.0, 40.0)
    assert c.output_tokens_per_second_per_replica == 200.0
    assert c.bound == "memory"
    assert calibrate_speed(s, Factors(profile="p")) is s


def test_predicted_undoes_the_applied_factors() -> None:
    estimate = EstimateStatus(
        total_bytes_per_gpu=12_000,
        time_to_first_token_ms=300.0,
        time_per_output_token_ms=40.0,
        calibration=CalibrationStatus(
            profile="p",
            architecture="0123456789ab",
            samples=5,
            decode_factor=2.0,
            prefill_factor=1.5,
            memory_factor=1.2,
        ),
    )
    assert predicted(estimate) == {"decode": 20.0, "prefill": 200.0, "memory": 10_000.0}
    plain = estimate.model_copy(update={"calibration": None})
    assert predicted(plain) == {"decode": 40.0, "prefill": 300.0, "memory": 12_000.0}


def test_observe_divides_by_the_uncalibrated_prediction() -> None:
    estimate = EstimateStatus(
        total_bytes_per_gpu=10_000,
        time_to_first_token_ms=300.0,
        time_per_output_token_ms=40.0,
        calibration=CalibrationStatus(
            profile="p", architecture="0123456789ab", samples=5, decode_factor=2.0
        ),
    )
    status = observe(None, estimate, AT, tpot_ms=60.0, ttft_ms=math.nan)
    assert status.decode is not None and status.decode.recent_ratios == [3.0]  # 60 ÷ (40 ÷ 2)
    assert status.prefill is None and status.memory is None
    status = observe(status, estimate, AT, memory_bytes_per_gpu=12_000)
    assert status.memory is not None and status.memory.factor == 1.2
    unpredicted = EstimateStatus(time_per_output_token_ms=0.0)
    assert observe(status, unpredicted, AT, tpot_ms=60.0) == status

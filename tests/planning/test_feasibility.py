"""Each check alone, on hand-built evaluations (no estimates involved)."""

from types import SimpleNamespace as NS

import pytest

from memplace.planning.catalogue import default_catalogue
from memplace.planning.feasibility import (
    Evaluation,
    Requirements,
    check_all,
    does_not_fit,
    engine_unsupported,
    funnel,
    kv_cache_dtype_not_allowed,
    offload_to_disk_not_allowed,
    pool_not_allowed,
    precision_not_allowed,
    quality_too_low,
    tier_not_allowed,
    too_slow,
    unsupported_precision,
)

GIB = 1 << 30
CAT = default_catalogue()


def pool(gpu="L4", name="l4", gpus=4, measured=False, host=160 * GIB, disk=0):
    g = CAT.gpu(gpu) if gpu else None
    return NS(
        name=name,
        gpu=g,
        gpu_name=g.id if g else None,
        gpus_per_node=gpus if g else 0,
        usable_bytes_per_gpu=int(g.memory_bytes * 0.9) if g else 0,
        measured=measured,
        cpu_only=g is None,
        host_bytes_per_node=host,
        disk_bytes_per_node=disk,
        instance=NS(id="r7i.8xlarge"),
    )


def evaluation(
    precision="bf16",
    kv="bf16",
    tier="gpu",
    gpus=1,
    per_gpu=10 * GIB,
    weights=8 * GIB,
    offload=0,
    host_bytes=0,
    loss=0.0,
    variant_loss=0.0,
    native=None,
    ttft=100.0,
    tpot=20.0,
    replicas=1,
    for_demand=1,
    **pool_kw,
):
    candidate = NS(
        precision=CAT.precisions[precision],
        kv=CAT.kv_dtypes[kv],
        tier=tier,
        gpus=gpus,
        pool=pool(**pool_kw),
        variant=NS(name="v" if variant_loss else None, quality_loss=variant_loss, native=native),
    )
    memory = NS(total_bytes_per_gpu=per_gpu, weights_bytes_per_gpu=weights)
    speed = NS(time_to_first_token_ms=ttft, time_per_output_token_ms=tpot)
    return Evaluation(
        candidate,
        memory,
        speed,
        loss,
        offload,
        per_gpu - (offload or 0),
        host_bytes,
        replicas,
        for_demand,
        1.0,
        float(replicas),
    )


R = Requirements()


def test_a_pool_outside_the_allow_list_is_rejected():
    r = Requirements(pools=frozenset({"a100"}))
    assert pool_not_allowed(evaluation(), r).code == "PoolNotAllowed"
    assert pool_not_allowed(evaluation(), R) is None


def test_a_tier_outside_the_allow_list_is_rejected():
    rej = tier_not_allowed(evaluation(tier="offload"), Requirements(tiers=frozenset({"gpu"})))
    assert rej.code == "TierNotAllowed" and "offload" in rej.message


def test_precisions_and_kv_dtypes_outside_the_allow_lists_are_rejected():
    r = Requirements(precisions=frozenset({"bf16"}), kv_cache_dtypes=frozenset({"bf16"}))
    assert precision_not_allowed(evaluation(precision="int4"), r).code == "PrecisionNotAllowed"
    assert kv_cache_dtype_not_allowed(evaluation(kv="fp8"), r).code == "KvCacheDtypeNotAllowed"
    assert precision_not_allowed(evaluation(), r) is None


def test_fp8_needs_compute_capability_89_and_says_so():
    rej = unsupported_precision(evaluation(precision="fp8", gpu="A100-SXM4-80GB", name="a100"), R)
    assert rej.code == "UnsupportedPrecision" and "8.9" in rej.message and not rej.resolvable
    assert unsupported_precision(evaluation(precision="fp8", gpu="L4"), R) is None
    assert unsupported_precision(evaluation(kv="fp8", gpu="A10G"), R).code == "UnsupportedPrecision"


def test_engines_serve_only_what_memplace_can_configure():
    llama = Requirements(engine="llamacpp")
    assert engine_unsupported(evaluation(precision="fp8"), llama).code == "EngineUnsupported"
    assert engine_unsupported(evaluation(tier="offload"), Requirements(engine="tgi")) is not None
    assert engine_unsupported(evaluation(precision="fp8"), Requirements(engine="custom")) is None


def test_vllm_quantises_a_16_bit_checkpoint_to_fp8_and_int4_but_not_int8_in_flight():
    vllm = Requirements(engine="vllm")
    assert engine_unsupported(evaluation(precision="fp8"), vllm) is None
    assert engine_unsupported(evaluation(precision="int4"), vllm) is None
    rejection = engine_unsupported(evaluation(precision="int8"), vllm)
    assert rejection.code == "EngineUnsupported" and "int8 checkpoint" in rejection.message
    assert engine_unsupported(evaluation(precision="int8"), Requirements(engine="tgi")) is None


def test_a_quantised_checkpoint_serves_only_in_its_own_format():
    vllm = Requirements(engine="vllm")
    assert engine_unsupported(evaluation(precision="mxfp4", native="mxfp4"), vllm) is None
    rejection = engine_unsupported(evaluation(precision="bf16", native="mxfp4"), vllm)
    assert "published in mxfp4" in rejection.message


def test_quality_loss_over_budget_is_rejected_with_the_parts():
    e = evaluation(precision="int4", kv="fp8", loss=0.055, variant_loss=0.03)
    rej = quality_too_low(e, Requirements(max_loss=0.05))
    assert rej.code == "QualityTooLow"
    assert "0.055" in rej.message and "> budget 0.05" in rej.message
    assert quality_too_low(evaluation(loss=0.02), Requirements(max_loss=0.02)) is None


def test_memory_over_usable_gpu_memory_does_not_fit_with_numbers():
    rej = does_not_fit(evaluation(per_gpu=int(41.2 * GIB)), R)
    assert rej.code == "DoesNotFit"
    assert rej.message == "needs 41.2 GiB per GPU > 20.2 GiB usable on L4"
    assert not rej.resolvable
    assert does_not_fit(evaluation(per_gpu=20 * GIB), R) is None


def test_a_miss_against_measured_memory_may_resolve():
    rej = does_not_fit(evaluation(per_gpu=41 * GIB, measured=True), R)
    assert rej.resolvable and "measured free" in rej.message


def test_offload_that_cannot_fit_even_without_weights_does_not_fit():
    # KV cache, activations and overhead alone (32 GiB) exceed the L4's 20.2 GiB
    e = evaluation(tier="offload", offload=None, per_gpu=40 * GIB, weights=8 * GIB)
    rej = does_not_fit(e, R)
    assert rej.code == "DoesNotFit" and "without weights" in rej.message
    assert rej.message.startswith("needs 32.0 GiB per GPU without weights > 20.2 GiB")


def test_offload_is_limited_to_the_replicas_share_of_host_memory():
    e = evaluation(tier="offload", offload=50 * GIB, host_bytes=50 * GIB, host=160 * GIB)
    assert does_not_fit(e, R).code == "DoesNotFit"  # 1 of 4 GPUs: 40 GiB of host memory
    e = evaluation(tier="offload", offload=30 * GIB, host_bytes=30 * GIB, host=160 * GIB)
    assert does_not_fit(e, R) is None


def test_offload_spilling_to_disk_needs_offload_to_disk():
    e = evaluation(
        tier="offload", offload=50 * GIB, host_bytes=50 * GIB, host=160 * GIB, disk=400 * GIB
    )
    assert offload_to_disk_not_allowed(e, R).code == "OffloadToDiskNotAllowed"
    assert does_not_fit(e, R) is not None
    allowed = Requirements(offload_to_disk=True)
    assert offload_to_disk_not_allowed(e, allowed) is None and does_not_fit(e, allowed) is None


def test_cpu_replicas_must_fit_host_memory():
    e = evaluation(tier="cpu", gpu=None, gpus=0, host_bytes=200 * GIB, host=100 * GIB)
    assert "host memory" in does_not_fit(e, R).message


def test_ttft_and_tpot_over_the_slo_are_too_slow():
    r = Requirements(ttft_ms=800, tpot_ms=60)
    rej = too_slow(evaluation(ttft=1200, tpot=71), r)
    assert rej.code == "TooSlow"
    assert rej.message == "TTFT 1200 ms > SLO 800 ms; TPOT 71.0 ms > SLO 60 ms"
    assert too_slow(evaluation(ttft=800, tpot=60), r) is None


def test_demand_beyond_max_replicas_is_too_slow():
    r = Requirements(max_replicas=2, demand_tokens_per_second=400)
    assert "maxReplicas 2" in too_slow(evaluation(for_demand=3, replicas=2), r).message


def test_every_check_runs_and_the_funnel_names_the_stage_that_emptied_the_list():
    r = Requirements(tpot_ms=10, pools=frozenset({"l4"}))
    slow = evaluation(tpot=50)
    big_and_slow = evaluation(tpot=50, per_gpu=40 * GIB)
    assert [x.code for x in check_all(big_and_slow, r)] == ["DoesNotFit", "TooSlow"]
    slow.rejections = check_all(slow, r)
    big_and_slow.rejections = check_all(big_and_slow, r)
    steps = dict(funnel([slow, big_and_slow]))
    assert steps["candidates"] == 2
    assert steps["fit in memory"] == 1
    assert steps["meet the SLO"] == 0


@pytest.mark.parametrize(
    "check",
    [
        pool_not_allowed,
        tier_not_allowed,
        quality_too_low,
        does_not_fit,
        too_slow,
        unsupported_precision,
    ],
)
def test_a_comfortable_candidate_passes_every_check(check):
    assert check(evaluation(), R) is None

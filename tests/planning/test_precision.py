"""Hardware support rules and quality arithmetic for weight and KV-cache precisions."""

from __future__ import annotations

import pytest

from memplace.planning.catalogue import default_catalogue
from memplace.planning.precision import (
    PRECISION_ORDER,
    compute_key,
    kv_unsupported,
    ordered_precisions,
    quality_loss,
    unsupported,
)


@pytest.fixture(scope="module")
def cat():
    return default_catalogue()


def test_fp8_is_rejected_on_a100_with_the_numbers(cat):
    reason = unsupported(cat.precisions["fp8"], cat.gpu("A100-SXM4-80GB"))
    assert reason is not None
    assert "8.9" in reason and "8.0" in reason and "A100-SXM4-80GB" in reason


@pytest.mark.parametrize("gpu", ["L4", "L40S", "H100-SXM5-80GB", "H200-SXM-141GB", "B200"])
def test_fp8_runs_on_ada_and_later(cat, gpu):
    assert unsupported(cat.precisions["fp8"], cat.gpu(gpu)) is None


def test_nvfp4_runs_only_on_blackwell(cat):
    runs = {g.id for g in cat.gpus.values() if unsupported(cat.precisions["nvfp4"], g) is None}
    assert runs == {"B200", "RTX-5090"}
    reason = unsupported(cat.precisions["nvfp4"], cat.gpu("H100-SXM5-80GB"))
    assert reason == "nvfp4 weights needs compute capability >= 10.0; H100-SXM5-80GB has 9.0"


def test_bf16_is_rejected_on_t4_and_fp16_is_not(cat):
    t4 = cat.gpu("T4")
    assert "7.5" in unsupported(cat.precisions["bf16"], t4)
    assert unsupported(cat.precisions["fp16"], t4) is None
    assert unsupported(cat.precisions["bf16"], cat.gpu("A10G")) is None


def test_int8_and_int4_run_from_turing(cat):
    t4 = cat.gpu("T4")
    assert unsupported(cat.precisions["int8"], t4) is None
    assert unsupported(cat.precisions["int4"], t4) is None


def test_mxfp4_needs_ampere(cat):
    assert unsupported(cat.precisions["mxfp4"], cat.gpu("T4")) is not None
    assert unsupported(cat.precisions["mxfp4"], cat.gpu("A10G")) is None


def test_fp8_kv_cache_needs_ada(cat):
    fp8 = cat.kv_dtypes["fp8"]
    assert "KV cache" in kv_unsupported(fp8, cat.gpu("A100-SXM4-80GB"))
    assert kv_unsupported(fp8, cat.gpu("L4")) is None
    assert kv_unsupported(cat.kv_dtypes["bf16"], cat.gpu("T4")) is not None
    assert kv_unsupported(cat.kv_dtypes["fp16"], cat.gpu("T4")) is None
    assert fp8.vllm_kv_cache_dtype == "fp8"
    assert cat.kv_dtypes["bf16"].vllm_kv_cache_dtype == "auto"


def test_every_precision_computes_at_a_key_its_gpus_have(cat):
    for precision in cat.precisions.values():
        for gpu in cat.gpus.values():
            if unsupported(precision, gpu) is None:
                assert compute_key(precision, gpu) is not None, (precision.id, gpu.id)


def test_weight_only_int4_computes_in_fp16_on_t4(cat):
    assert compute_key(cat.precisions["int4"], cat.gpu("T4")) == "fp16"
    assert compute_key(cat.precisions["int4"], cat.gpu("L4")) == "bf16"
    assert compute_key(cat.precisions["nvfp4"], cat.gpu("B200")) == "fp4"


@pytest.mark.parametrize(
    ("precision", "bits"),
    [("bf16", 16), ("fp8", 8), ("int8", 8), ("int4", 4.25), ("nvfp4", 4.5), ("mxfp4", 4.25)],
)
def test_bits_per_weight(cat, precision, bits):
    assert cat.precisions[precision].bits_per_weight == pytest.approx(bits)


def test_quality_losses_add(cat):
    int4, fp8_kv = cat.precisions["int4"], cat.kv_dtypes["fp8"]
    total = quality_loss(int4, fp8_kv, variant_loss=0.03)
    assert total == pytest.approx(int4.quality_loss + fp8_kv.quality_loss + 0.03)
    assert quality_loss(cat.precisions["bf16"], cat.kv_dtypes["bf16"]) == 0.0


def test_serving_a_model_in_its_native_precision_costs_nothing(cat):
    mxfp4, bf16_kv = cat.precisions["mxfp4"], cat.kv_dtypes["bf16"]
    assert quality_loss(mxfp4, bf16_kv, native="mxfp4") == 0.0
    assert quality_loss(mxfp4, bf16_kv) == mxfp4.quality_loss > 0


def test_lower_precisions_lose_at_least_as_much_as_fp8(cat):
    fp8 = cat.precisions["fp8"].quality_loss
    for pid in ("int8", "int4", "nvfp4", "mxfp4"):
        assert cat.precisions[pid].quality_loss >= fp8


def test_precisions_are_ordered_from_most_bits(cat):
    ordered = ordered_precisions(cat)
    assert tuple(p.id for p in ordered) == PRECISION_ORDER
    assert [p.weight_bits for p in ordered] == sorted(
        (p.weight_bits for p in ordered), reverse=True
    )

"""The roofline speed model: a worked example and the directions it must move in."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from memplace.planning.architecture import architecture_from_config
from memplace.planning.catalogue import default_catalogue
from memplace.planning.efficiency import Efficiency
from memplace.planning.latency import estimate_speed
from memplace.planning.memory import kv_bytes_per_sequence, weights_bytes

CONFIGS = Path(__file__).parent.parent / "fixtures" / "configs"
CATALOGUE = default_catalogue()
P, KV = CATALOGUE.precisions, CATALOGUE.kv_dtypes
H100 = CATALOGUE.gpu("H100-SXM5-80GB")
L4 = CATALOGUE.gpu("L4")


def arch(name: str):
    return architecture_from_config(json.loads((CONFIGS / f"{name}.json").read_text()))


LLAMA = arch("llama-3.1-8b")
MOE = arch("qwen3-30b-a3b")


def speed(a=LLAMA, precision="bf16", gpu=H100, kv="bf16", **kw):
    args = dict(tier="gpu", gpu=gpu, concurrency=8, context_tokens=8192, prompt_tokens=1024)
    return estimate_speed(a, P[precision], KV[kv], **(args | kw))


EFF = Efficiency(bandwidth=0.6, compute=0.4, step_overhead_s=2e-3, source="test")


def test_llama_decode_is_weights_plus_kv_over_achieved_bandwidth():
    s = speed(efficiency=EFF)
    step_bytes = weights_bytes(LLAMA, P["bf16"]) + 8 * kv_bytes_per_sequence(
        LLAMA, KV["bf16"], 8192
    )
    expected = step_bytes / (H100.memory_bandwidth_bytes_per_s * EFF.bandwidth)
    assert s.bound == "memory"
    # the embedding table is read one row per token, not whole: a little under `expected`
    assert s.time_per_output_token_ms / 1e3 == pytest.approx(
        expected + EFF.step_overhead_s, rel=0.05
    )
    assert s.output_tokens_per_second_per_replica == pytest.approx(
        8 / (s.time_per_output_token_ms / 1e3)
    )


def test_the_engine_changes_the_speed_through_its_table_entry():
    vllm = speed(precision="int4", concurrency=1, gpu=CATALOGUE.gpu("A100-PCIE-80GB"))
    llamacpp = speed(
        precision="int4", concurrency=1, gpu=CATALOGUE.gpu("A100-PCIE-80GB"), engine="llamacpp"
    )
    assert llamacpp.weight_format == "gguf-q4_k_m"
    assert "llamacpp" in llamacpp.efficiency_source
    assert vllm.weight_format == "int4"
    assert llamacpp.time_per_output_token_ms != vllm.time_per_output_token_ms


def test_llamacpp_reaches_less_of_hbm_bandwidth_than_of_gddr():
    """The issue's finding, as the fitted table has it: single-stream llama.cpp int4 is about
    bandwidth-proportional on a consumer card but well below it on an A100 PCIe (HBM)."""

    def rate(gpu_id):
        gpu = CATALOGUE.gpu(gpu_id)
        s = speed(precision="int4", engine="llamacpp", gpu=gpu, concurrency=1, kv="fp16")
        return 1000 / s.time_per_output_token_ms / gpu.memory_bandwidth_bytes_per_s

    assert rate("A100-PCIE-80GB") < 0.8 * rate("RTX-3090")


def test_an_unknown_weight_format_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown weight format 'q3_k'"):
        speed(weight_format="q3_k")


def test_prefill_of_a_long_prompt_is_compute_bound():
    short = speed(prompt_tokens=128)
    long = speed(prompt_tokens=8192)
    # 64 times the tokens: a compute-bound prefill takes (far) more than 20 times as long
    assert long.prefill_ms > 20 * short.prefill_ms


def test_time_to_first_token_adds_the_request_overhead_once():
    eff = Efficiency(0.6, 0.4, 2e-3, "test", request_overhead_s=0.05)
    with_overhead = speed(efficiency=eff)
    without = speed(efficiency=Efficiency(0.6, 0.4, 2e-3, "test"))
    assert with_overhead.time_to_first_token_ms - without.time_to_first_token_ms == (
        pytest.approx(50.0)
    )
    assert with_overhead.time_per_output_token_ms == without.time_per_output_token_ms


def test_moe_decode_reads_only_the_routed_experts():
    one = speed(MOE, concurrency=1, efficiency=EFF)
    dense_like_read = weights_bytes(MOE, P["bf16"]) / (
        H100.memory_bandwidth_bytes_per_s * EFF.bandwidth
    )
    assert one.time_per_output_token_ms / 1e3 < dense_like_read / 5


def test_offloaded_weights_cross_pcie_every_step():
    gpu_tier = speed()
    offload = speed(tier="offload", offloaded_bytes_per_gpu=4 * 2**30)
    extra = 4 * 2**30 / H100.host_link_bytes_per_s
    assert offload.time_per_output_token_ms / 1e3 == pytest.approx(
        gpu_tier.time_per_output_token_ms / 1e3 + extra, rel=1e-6
    )
    assert offload.bound == "host-link"


def test_cpu_tier_uses_host_bandwidth():
    host = CATALOGUE.instances[next(i for i, t in CATALOGUE.instances.items() if t.gpu is None)]
    cpu = speed(tier="cpu", gpu=None, host=host, precision="int4", concurrency=1)
    gpu = speed(precision="int4", concurrency=1)
    assert cpu.time_per_output_token_ms > 5 * gpu.time_per_output_token_ms


def test_cpu_tier_without_host_figures_is_an_error():
    with pytest.raises(ValueError, match="host"):
        speed(tier="cpu", gpu=None)


def test_tensor_parallel_splits_the_bytes_but_pays_for_all_reduce():
    one = speed(arch("llama-3.1-70b"), precision="fp8")
    four = speed(arch("llama-3.1-70b"), precision="fp8", gpus_per_replica=4)
    assert four.time_per_output_token_ms < one.time_per_output_token_ms / 2
    assert four.time_per_output_token_ms > one.time_per_output_token_ms / 4


def test_t4_runs_weight_only_int4_in_fp16():
    t4 = CATALOGUE.gpu("T4")
    assert speed(precision="int4", gpu=t4).time_to_first_token_ms > 0


@settings(max_examples=150, deadline=None)
@given(
    st.sampled_from(["bf16", "fp8", "int4"]),
    st.integers(1, 64),
    st.integers(1, 64),
    st.integers(64, 65536),
)
def test_more_concurrency_never_lowers_tpot_nor_throughput(precision, n1, n2, context):
    lo, hi = sorted((n1, n2))
    a = speed(MOE, precision=precision, concurrency=lo, context_tokens=context)
    b = speed(MOE, precision=precision, concurrency=hi, context_tokens=context)
    assert b.time_per_output_token_ms >= a.time_per_output_token_ms
    assert b.output_tokens_per_second_per_replica >= a.output_tokens_per_second_per_replica * 0.999


@settings(max_examples=100, deadline=None)
@given(st.integers(64, 131072), st.integers(64, 131072))
def test_longer_context_never_speeds_decode(c1, c2):
    lo, hi = sorted((c1, c2))
    assert (
        speed(context_tokens=hi).time_per_output_token_ms
        >= speed(context_tokens=lo).time_per_output_token_ms
    )


def test_faster_memory_decodes_faster():
    assert speed(gpu=H100).time_per_output_token_ms < speed(gpu=L4).time_per_output_token_ms

"""The memory model: anchors a user can check, formulas, and properties."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from memplace.planning.architecture import architecture_from_config
from memplace.planning.catalogue import default_catalogue
from memplace.planning.memory import (
    CUDA_CONTEXT_BYTES,
    CUDA_GRAPH_BYTES,
    estimate_memory,
    offload_bytes_needed,
    usable_gpu_bytes,
    weights_bytes,
    weights_bytes_by_group,
)

CONFIGS = Path(__file__).parent.parent / "fixtures" / "configs"
CATALOGUE = default_catalogue()
P = CATALOGUE.precisions
KV = CATALOGUE.kv_dtypes
GiB = 2**30
ARCHS = {
    path.stem: architecture_from_config(json.loads(path.read_text()))
    for path in sorted(CONFIGS.glob("*.json"))
}


def test_llama_3_8b_bf16_weights_are_what_vllm_reports():
    # vLLM logs "Loading weights took 14.96 GiB" for Llama-3-8B in bf16.
    assert weights_bytes(ARCHS["llama-3.1-8b"], P["bf16"]) / GiB == pytest.approx(14.96, abs=0.01)


def test_llama_3_8b_kv_cache_is_128_kib_per_token():
    one_token = estimate_memory(
        ARCHS["llama-3.1-8b"], P["bf16"], KV["bf16"], context_tokens=16, concurrency=1
    )
    assert one_token.kv_cache_bytes == 16 * 128 * 1024  # one 16-token block


def test_fp8_kv_cache_halves_it():
    a = ARCHS["llama-3.1-8b"]
    bf16 = estimate_memory(a, P["bf16"], KV["bf16"], context_tokens=4096, concurrency=4)
    fp8 = estimate_memory(a, P["bf16"], KV["fp8"], context_tokens=4096, concurrency=4)
    assert fp8.kv_cache_bytes * 2 == bf16.kv_cache_bytes


def test_int4_pays_for_scales_and_keeps_embeddings_in_16_bits():
    a = ARCHS["llama-3.1-8b"]
    sizes = weights_bytes_by_group(a, P["int4"])
    assert sizes["embeddings"] == a.parameters_in("embeddings") * 2
    assert sizes["lm_head"] == a.parameters_in("lm_head") * 2
    mlp = a.parameters_in("mlp")
    assert sizes["mlp"] == int(mlp * 4 / 8 + mlp / 128 * (16 + 16) / 8)


def test_fp8_stores_one_scale_per_output_channel():
    a = ARCHS["llama-3.1-8b"]
    group = next(g for g in a.groups if g.category == "attention")
    assert weights_bytes_by_group(a, P["fp8"])["attention"] == group.parameters + group.rows * 4


def test_gpt_oss_120b_in_mxfp4_fits_one_80_gb_gpu_as_openai_says():
    # gpt-oss model card: "gpt-oss-120b … fits into a single 80 GB GPU" in MXFP4.
    weights = weights_bytes(ARCHS["gpt-oss-120b"], P["mxfp4"])
    assert 55 * GiB < weights < usable_gpu_bytes(80 * GiB)


def test_sliding_window_layers_stop_growing_at_the_window():
    a = ARCHS["gpt-oss-20b"]
    short = estimate_memory(a, P["bf16"], KV["bf16"], context_tokens=1024, concurrency=1)
    long = estimate_memory(a, P["bf16"], KV["bf16"], context_tokens=2048, concurrency=1)
    per_full_layer_token = a.kv_values_per_token * 2
    assert long.kv_cache_bytes - short.kv_cache_bytes == 1024 * a.kv_layers * per_full_layer_token


def test_hybrid_state_is_constant_in_context():
    a = ARCHS["qwen3-next-80b-a3b-thinking"]
    short = estimate_memory(a, P["bf16"], KV["bf16"], context_tokens=1024, concurrency=4)
    long = estimate_memory(a, P["bf16"], KV["bf16"], context_tokens=65536, concurrency=4)
    assert short.state_bytes == long.state_bytes == 4 * a.state_values_per_sequence * 2


def test_mla_cache_is_replicated_across_tensor_parallel_gpus():
    a = ARCHS["deepseek-v3"]
    one = estimate_memory(a, P["fp8"], KV["bf16"], context_tokens=8192, concurrency=1)
    eight = estimate_memory(
        a, P["fp8"], KV["bf16"], context_tokens=8192, concurrency=1, gpus_per_replica=8
    )
    assert eight.kv_cache_bytes_per_gpu == one.kv_cache_bytes_per_gpu


def test_kv_heads_are_replicated_when_gpus_outnumber_them():
    a = ARCHS["qwen3-30b-a3b"]  # 4 KV heads
    four = estimate_memory(
        a, P["bf16"], KV["bf16"], context_tokens=4096, concurrency=1, gpus_per_replica=4
    )
    eight = estimate_memory(
        a, P["bf16"], KV["bf16"], context_tokens=4096, concurrency=1, gpus_per_replica=8
    )
    assert eight.kv_cache_bytes_per_gpu == four.kv_cache_bytes_per_gpu


def test_each_gpu_pays_its_own_context_and_graphs():
    a = ARCHS["llama-3.1-70b"]
    m = estimate_memory(
        a, P["bf16"], KV["bf16"], context_tokens=4096, concurrency=1, gpus_per_replica=4
    )
    assert m.overhead_bytes == 4 * (CUDA_CONTEXT_BYTES + CUDA_GRAPH_BYTES)


def test_offload_moves_just_the_excess_and_refuses_what_cannot_fit():
    a = ARCHS["llama-3.1-8b"]
    m = estimate_memory(a, P["bf16"], KV["bf16"], context_tokens=8192, concurrency=8)
    assert offload_bytes_needed(m, m.total_bytes_per_gpu) == 0
    assert offload_bytes_needed(m, m.total_bytes_per_gpu - GiB) == GiB
    assert offload_bytes_needed(m, m.kv_cache_bytes_per_gpu) is None


@pytest.mark.parametrize("bad", [{"context_tokens": 0}, {"concurrency": 0}])
def test_nonsense_sizes_are_refused(bad):
    args = {"context_tokens": 1024, "concurrency": 1} | bad
    with pytest.raises(ValueError):
        estimate_memory(ARCHS["qwen3-8b"], P["bf16"], KV["bf16"], **args)


models = st.sampled_from(sorted(ARCHS))
contexts = st.integers(min_value=1, max_value=262_144)
concurrencies = st.integers(min_value=1, max_value=256)
gpus = st.sampled_from([1, 2, 4, 8])


@settings(max_examples=200, deadline=None)
@given(models, contexts, contexts, concurrencies)
def test_memory_grows_with_context(model, c1, c2, n):
    a = ARCHS[model]
    lo, hi = sorted((c1, c2))
    small = estimate_memory(a, P["bf16"], KV["bf16"], context_tokens=lo, concurrency=n)
    large = estimate_memory(a, P["bf16"], KV["bf16"], context_tokens=hi, concurrency=n)
    assert large.total_bytes >= small.total_bytes
    assert large.kv_cache_bytes >= small.kv_cache_bytes


@settings(max_examples=200, deadline=None)
@given(models, contexts, concurrencies, concurrencies)
def test_memory_grows_with_concurrency(model, c, n1, n2):
    a = ARCHS[model]
    lo, hi = sorted((n1, n2))
    small = estimate_memory(a, P["bf16"], KV["bf16"], context_tokens=c, concurrency=lo)
    large = estimate_memory(a, P["bf16"], KV["bf16"], context_tokens=c, concurrency=hi)
    assert large.total_bytes >= small.total_bytes


@settings(max_examples=100, deadline=None)
@given(models)
def test_fewer_bits_never_need_more_weight_memory(model):
    a = ARCHS[model]
    ordered = [weights_bytes(a, P[p]) for p in ("bf16", "fp8", "int4")]
    assert ordered == sorted(ordered, reverse=True)
    assert weights_bytes(a, P["nvfp4"]) <= weights_bytes(a, P["fp8"])


@settings(max_examples=200, deadline=None)
@given(models, contexts, concurrencies, gpus)
def test_tensor_parallel_shards_add_up(model, c, n, g):
    a = ARCHS[model]
    m = estimate_memory(
        a, P["fp8"], KV["bf16"], context_tokens=c, concurrency=n, gpus_per_replica=g
    )
    assert m.weights_bytes_per_gpu * g >= m.weights_bytes > (m.weights_bytes_per_gpu - 1) * g
    assert m.kv_cache_bytes == m.kv_cache_bytes_per_gpu * g
    assert m.total_bytes_per_gpu * g >= m.total_bytes - g  # rounding of the ceil'd shards
    one = estimate_memory(a, P["fp8"], KV["bf16"], context_tokens=c, concurrency=n)
    assert m.total_bytes_per_gpu <= one.total_bytes_per_gpu

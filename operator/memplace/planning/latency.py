"""How fast a replica serves: a roofline for time-to-first-token and time-per-output-token.

A decode step produces one token for each of ``concurrency`` sequences. It must read the weights
it uses (MoE: only the experts the batch routes to) and every sequence's KV cache, and do about
2 FLOPs per parameter per token plus attention over the context. Its time is the larger of
bytes ÷ achieved bandwidth and FLOPs ÷ achieved compute, plus what does not overlap: weights
offloaded to host memory streaming over PCIe, and tensor-parallel all-reduces.

Prefill of a ``prompt_tokens`` prompt is the same roofline at ``prompt_tokens`` tokens, which
makes it compute-bound on GPUs. Time-to-first-token is that prefill plus one decode step of the
running batch, which the new request waits for (continuous batching admits it between steps).

Worked example, Llama-3-8B bf16 on one H100 SXM (3.35 TB/s, 989 dense bf16 TFLOPS), 8
sequences at 8,192 tokens: a step reads 16.06 GB of weights + 8 × 1.07 GB of KV = 24.6 GB;
at 75 % of 3.35 TB/s that is 9.8 ms, against 0.13 TFLOP of compute (0.25 ms): memory-bound,
so TPOT ≈ 9.8 ms and the replica emits 8 / 9.8 ms ≈ 816 tokens/s.

The context is taken at its longest (``context_tokens``): the SLO is judged at the end of the
longest sequence served, the worst step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, Protocol

from memplace.planning.architecture import Architecture, expected_distinct_experts
from memplace.planning.catalogue import Gpu, KvDtype, Precision
from memplace.planning.memory import kv_bytes_per_sequence, kv_share_per_gpu, weights_bytes_by_group
from memplace.planning.precision import compute_key

__all__ = [
    "ALLREDUCE_LATENCY_S",
    "CPU_BANDWIDTH_EFFICIENCY",
    "CPU_COMPUTE_EFFICIENCY",
    "DECODE_BANDWIDTH_EFFICIENCY",
    "GPU_COMPUTE_EFFICIENCY",
    "STEP_OVERHEAD_S",
    "Host",
    "SpeedEstimate",
    "Tier",
    "estimate_speed",
]

Tier = Literal["gpu", "offload", "cpu"]

DECODE_BANDWIDTH_EFFICIENCY = 0.75
"""Fraction of peak HBM bandwidth a decode step achieves (model bandwidth utilisation). Tuned
CUDA stacks (vLLM, TensorRT-LLM) reach 70–85 % (open-source-ai.tech glossary "model bandwidth
utilization", a rule of thumb); we take 0.75, the lower middle."""

GPU_COMPUTE_EFFICIENCY = 0.5
"""Fraction of dense Tensor Core peak that prefill GEMMs and attention achieve (model FLOPs
utilisation). Production systems report 30–50 % while decoding and more in prefill; 0.5 is the
top of that band and a fair figure for large prefill GEMMs."""

CPU_BANDWIDTH_EFFICIENCY = 0.6
"""llama.cpp-style CPU decoding reaches roughly 60 % of the theoretical DRAM bandwidth of a
socket (channels × transfer rate × 8 bytes); NUMA and the memory controller take the rest."""

CPU_COMPUTE_EFFICIENCY = 0.3
"""CPU GEMMs (AMX / AVX-512 through oneDNN) at a third of the derived peak: prefill on a CPU is
slow and this keeps the estimate from flattering it."""

ALLREDUCE_LATENCY_S = 10e-6
"""Fixed cost of one small NCCL all-reduce inside a node (~10 µs over NVLink or PCIe); tensor
parallelism does two per layer per step."""

STEP_OVERHEAD_S = 1e-3
"""Per-step scheduling, sampling and launch overhead of the serving engine (~1 ms with CUDA
graphs); it dominates only for tiny models."""


class Host(Protocol):
    """What the cpu tier needs of a node (``catalogue.InstanceType`` provides it)."""

    cpu_memory_bandwidth_bytes_per_s: float
    cpu_bf16_tflops: float


@dataclass(frozen=True)
class SpeedEstimate:
    time_to_first_token_ms: float
    time_per_output_token_ms: float
    output_tokens_per_second_per_replica: float
    bound: str
    """What limits decode: "memory", "compute", "host-link" (offload) or "interconnect"."""


@dataclass(frozen=True)
class _Machine:
    bandwidth: float  # bytes/s achieved
    flops: float  # FLOP/s achieved
    host_link: float
    """Bytes/s for offloaded weights: the catalogue's practical PCIe rate (0.8 × theoretical).
    vLLM's ``--cpu-offload-gb`` streams offloaded weights into the GPU on every forward pass
    (vLLM issue #3563, the cpu-offload-weight design; vllm.config.offload, UVA backend), so
    this time is added to each step, not overlapped."""
    interconnect: float  # bytes/s, for tensor-parallel all-reduce


def _peak_tflops(gpu: Gpu, precision: Precision) -> float:
    key = compute_key(precision, gpu) or ("fp16" if "fp16" in gpu.dense_tflops else "fp32")
    return gpu.dense_tflops[key]


def _machine(tier: Tier, gpu: Gpu | None, host: Host | None, precision: Precision) -> _Machine:
    if tier == "cpu":
        if host is None:
            raise ValueError("the cpu tier needs the host's memory bandwidth and TFLOPS")
        return _Machine(
            bandwidth=host.cpu_memory_bandwidth_bytes_per_s * CPU_BANDWIDTH_EFFICIENCY,
            flops=host.cpu_bf16_tflops * 1e12 * CPU_COMPUTE_EFFICIENCY,
            host_link=math.inf,
            interconnect=math.inf,
        )
    if gpu is None:
        raise ValueError(f"the {tier} tier needs a GPU")
    return _Machine(
        bandwidth=gpu.memory_bandwidth_bytes_per_s * DECODE_BANDWIDTH_EFFICIENCY,
        flops=_peak_tflops(gpu, precision) * 1e12 * GPU_COMPUTE_EFFICIENCY,
        host_link=gpu.host_link_bytes_per_s,
        interconnect=gpu.interconnect_bytes_per_s,
    )


def _weights_read(arch: Architecture, sizes: dict[str, int], tokens: int) -> float:
    """Weight bytes one forward pass over ``tokens`` tokens reads."""
    experts = sizes.get("experts", 0)
    fraction = expected_distinct_experts(arch, tokens) / arch.experts if arch.experts else 0.0
    embeddings = sizes.get("embeddings", 0)
    rows = min(1.0, tokens / arch.vocab_size) if arch.vocab_size else 1.0
    rest = sum(sizes.values()) - experts - embeddings - sizes.get("vision", 0)
    return rest + experts * fraction + embeddings * rows


def _attended_tokens(arch: Architecture, context: float) -> float:
    """Cached tokens one new token attends to, summed over KV layers."""
    window = min(context, arch.sliding_window or context)
    return arch.kv_layers * context + arch.window_layers * window


def _allreduce_s(arch: Architecture, tokens: int, gpus: int, machine: _Machine) -> float:
    if gpus == 1:
        return 0.0
    message = tokens * arch.hidden_size * 2 * 2 * (gpus - 1) / gpus  # ring: 2(n-1)/n, bf16
    return 2 * arch.layers * (ALLREDUCE_LATENCY_S + message / machine.interconnect)


def estimate_speed(
    arch: Architecture,
    precision: Precision,
    kv: KvDtype,
    *,
    tier: Tier,
    gpu: Gpu | None,
    host: Host | None = None,
    gpus_per_replica: int = 1,
    concurrency: int,
    context_tokens: int,
    prompt_tokens: int,
    offloaded_bytes_per_gpu: int = 0,
) -> SpeedEstimate:
    """TTFT, TPOT and output tokens/s of one replica (see the module docstring)."""
    if min(concurrency, context_tokens, prompt_tokens, gpus_per_replica) < 1:
        raise ValueError("concurrency, context, prompt and GPUs must be ≥ 1")
    gpus = 1 if tier == "cpu" else gpus_per_replica
    machine = _machine(tier, gpu, host, precision)
    sizes = weights_bytes_by_group(arch, precision)
    stream_s = offloaded_bytes_per_gpu / machine.host_link if tier == "offload" else 0.0
    read_params = arch.active_parameters_read_per_token

    # decode: one token for each of `concurrency` sequences at full context
    kv_bytes = kv_bytes_per_sequence(arch, kv, context_tokens) * kv_share_per_gpu(arch, gpus)
    state_bytes = 2 * arch.state_values_per_sequence * arch.state_bytes_per_value / gpus
    step_bytes = _weights_read(arch, sizes, concurrency) / gpus + concurrency * (
        kv_bytes + state_bytes
    )
    step_flops = (
        concurrency
        * (
            2 * read_params
            + arch.attention_flops_per_context_token * _attended_tokens(arch, context_tokens)
        )
        / gpus
    )
    memory_s = step_bytes / machine.bandwidth
    compute_s = step_flops / machine.flops
    comm_s = _allreduce_s(arch, concurrency, gpus, machine)
    tpot_s = max(memory_s, compute_s) + comm_s + stream_s + STEP_OVERHEAD_S
    parts = {
        "memory": memory_s,
        "compute": compute_s,
        "interconnect": comm_s,
        "host-link": stream_s,
    }
    bound = max(parts, key=parts.get)

    # prefill of one prompt (causal: each token attends to half the prompt on average)
    prefill_bytes = _weights_read(arch, sizes, prompt_tokens) / gpus
    prefill_flops = (
        prompt_tokens
        * (
            2 * read_params
            + arch.attention_flops_per_context_token * _attended_tokens(arch, prompt_tokens / 2)
        )
        / gpus
    )
    prefill_s = (
        max(prefill_bytes / machine.bandwidth, prefill_flops / machine.flops)
        + _allreduce_s(arch, prompt_tokens, gpus, machine)
        + stream_s
        + STEP_OVERHEAD_S
    )
    ttft_s = prefill_s + tpot_s
    return SpeedEstimate(
        time_to_first_token_ms=ttft_s * 1e3,
        time_per_output_token_ms=tpot_s * 1e3,
        output_tokens_per_second_per_replica=concurrency / tpot_s,
        bound=bound,
    )

"""How fast a replica serves: a roofline for time-to-first-token and time-per-output-token.

A decode step produces one token for each of ``concurrency`` sequences. It must read the weights
it uses (MoE: only the experts the batch routes to) and every sequence's KV cache, and do about
2 FLOPs per parameter per token plus attention over the context. Its time is the larger of
bytes ÷ achieved bandwidth and FLOPs ÷ achieved compute, plus what does not overlap: weights
offloaded to host memory streaming over PCIe, tensor-parallel all-reduces and the engine's
fixed per-step overhead (launches, sampling, scheduling) and its per-sequence overhead times
the sequences in the step (each sequence's scheduling, sampling and detokenising on the CPU).

"Achieved" is the datasheet peak times a fraction that depends on the serving engine, the GPU
architecture, the weight format and the batch regime: ``efficiency.py`` holds that table,
fitted to public measurements (``tests/data/speed/``, ``bench/speed_fit.py``). ``StepCost``
keeps the two apart: the step's seconds at the datasheet peak, before any efficiency, so
the fit and the estimate share one formula (``StepCost.seconds``).

Prefill of a ``prompt_tokens`` prompt is the same roofline at ``prompt_tokens`` tokens, which
makes it compute-bound on GPUs. Time-to-first-token is the engine's fixed per-request overhead
(HTTP, tokenisation, admission), that prefill, and one decode step of the running batch, which
the new request waits for (continuous batching admits it between steps). Queueing behind other
requests' prefills is not modelled: it is what an SLO on concurrency prevents.

Worked example, Llama-3-8B bf16 with vLLM on one H100 SXM (3.35 TB/s, 989 dense bf16
TFLOPS), 8 sequences at 8,192 tokens: a step reads 16.06 GB of weights + 8 × 1.07 GB of KV =
24.6 GB, 7.3 ms at the datasheet peak; at the table's bandwidth fraction b it takes 7.3 / b ms
plus the engine's step overhead, against 0.13 TFLOP of compute (0.13 ms at peak):
memory-bound.

The context is taken at its longest (``context_tokens``): the SLO is judged at the end of the
longest sequence served, the worst step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, Protocol

from memplace.planning.architecture import Architecture, expected_distinct_experts
from memplace.planning.catalogue import Gpu, KvDtype, Precision
from memplace.planning.efficiency import Efficiency, EfficiencyTable, WeightFormat, default_table
from memplace.planning.memory import kv_bytes_per_sequence, kv_share_per_gpu, weights_bytes_by_group
from memplace.planning.precision import compute_key

__all__ = [
    "ALLREDUCE_LATENCY_S",
    "CPU_BANDWIDTH_EFFICIENCY",
    "CPU_COMPUTE_EFFICIENCY",
    "CPU_STEP_OVERHEAD_S",
    "Host",
    "SpeedEstimate",
    "StepCost",
    "Tier",
    "decode_step",
    "estimate_speed",
    "prefill_step",
    "weights_read_by_group",
]

Tier = Literal["gpu", "offload", "cpu"]

CPU_BANDWIDTH_EFFICIENCY = 0.6
"""llama.cpp-style CPU decoding reaches roughly 60 % of the theoretical DRAM bandwidth of a
socket (channels × transfer rate × 8 bytes); NUMA and the memory controller take the rest.
Not fitted: the speed dataset has no CPU rows."""

CPU_COMPUTE_EFFICIENCY = 0.3
"""CPU GEMMs (AMX / AVX-512 through oneDNN) at a third of the derived peak: prefill on a CPU is
slow and this keeps the estimate from flattering it. Not fitted (no CPU rows)."""

CPU_STEP_OVERHEAD_S = 1e-3
"""Per-step overhead on the cpu tier (~1 ms: thread wake-up and sampling); not fitted."""

ALLREDUCE_LATENCY_S = 10e-6
"""Fixed cost of one small NCCL all-reduce inside a node (~10 µs over NVLink or PCIe); tensor
parallelism does two per layer per step."""


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
    prefill_ms: float = 0.0
    """The prompt's prefill alone (time-to-first-token less the decode step it waits for)."""
    weight_format: str = ""
    """The format the engine serves the precision in (llama.cpp int4: "gguf-q4_k_m")."""
    efficiency_source: str = ""
    """Which efficiency-table entry (or fallback) the fractions came from."""


@dataclass(frozen=True)
class StepCost:
    """One forward pass at the datasheet peak: seconds if bandwidth alone (``memory_s``) or
    compute alone (``compute_s``) bounded it, plus what does not overlap (``fixed_s``:
    all-reduces and weights streamed from host memory)."""

    memory_s: float
    compute_s: float
    fixed_s: float = 0.0
    comm_s: float = 0.0
    stream_s: float = 0.0
    sequences: int = 1
    """Sequences the step serves: the engine's per-sequence work (``sequence_overhead_s``)."""

    def seconds(self, eff: Efficiency) -> float:
        return (
            max(self.memory_s / eff.bandwidth, self.compute_s / eff.compute)
            + self.fixed_s
            + eff.step_overhead_s
            + eff.sequence_overhead_s * self.sequences
        )


@dataclass(frozen=True)
class _Peak:
    bandwidth: float  # bytes/s, datasheet
    flops: float  # FLOP/s, dense datasheet
    host_link: float
    """Bytes/s for offloaded weights: the catalogue's practical PCIe rate (0.8 × theoretical).
    vLLM's ``--cpu-offload-gb`` streams offloaded weights into the GPU on every forward pass
    (vLLM issue #3563, the cpu-offload-weight design; vllm.config.offload, UVA backend), so
    this time is added to each step, not overlapped."""
    interconnect: float  # bytes/s, for tensor-parallel all-reduce


def _peak_tflops(gpu: Gpu, precision: Precision) -> float:
    key = compute_key(precision, gpu) or ("fp16" if "fp16" in gpu.dense_tflops else "fp32")
    return gpu.dense_tflops[key]


def _peak(tier: Tier, gpu: Gpu | None, host: Host | None, precision: Precision) -> _Peak:
    if tier == "cpu":
        if host is None:
            raise ValueError("the cpu tier needs the host's memory bandwidth and TFLOPS")
        return _Peak(
            bandwidth=host.cpu_memory_bandwidth_bytes_per_s,
            flops=host.cpu_bf16_tflops * 1e12,
            host_link=math.inf,
            interconnect=math.inf,
        )
    if gpu is None:
        raise ValueError(f"the {tier} tier needs a GPU")
    return _Peak(
        bandwidth=gpu.memory_bandwidth_bytes_per_s,
        flops=_peak_tflops(gpu, precision) * 1e12,
        host_link=gpu.host_link_bytes_per_s,
        interconnect=gpu.interconnect_bytes_per_s,
    )


def weights_read_by_group(
    arch: Architecture, precision: Precision, fmt: WeightFormat | None = None
) -> dict[str, float]:
    """Weight bytes per tensor group as the engine holds them: the catalogue precision's own
    accounting, or the format's whole-model bits per weight (GGUF quantises every tensor,
    embeddings included: Llama-3-8B Q4_K_M is 8.03 B × 4.90 bits = 4.92 GB)."""
    if fmt is None or not fmt.bits_per_weight:
        return {k: float(v) for k, v in weights_bytes_by_group(arch, precision).items()}
    return {g.category: g.parameters * fmt.bits_per_weight / 8 for g in arch.groups}


def _weights_read(arch: Architecture, sizes: dict[str, float], tokens: int) -> float:
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


def _allreduce_s(arch: Architecture, tokens: int, gpus: int, peak: _Peak) -> float:
    if gpus == 1:
        return 0.0
    message = tokens * arch.hidden_size * 2 * 2 * (gpus - 1) / gpus  # ring: 2(n-1)/n, bf16
    return 2 * arch.layers * (ALLREDUCE_LATENCY_S + message / peak.interconnect)


def decode_step(
    arch: Architecture,
    precision: Precision,
    kv: KvDtype,
    *,
    tier: Tier,
    gpu: Gpu | None,
    host: Host | None = None,
    fmt: WeightFormat | None = None,
    gpus_per_replica: int = 1,
    concurrency: int,
    context_tokens: float,
    offloaded_bytes_per_gpu: int = 0,
) -> StepCost:
    """One decode step of ``concurrency`` sequences at ``context_tokens``, at peak."""
    gpus = 1 if tier == "cpu" else gpus_per_replica
    peak = _peak(tier, gpu, host, precision)
    sizes = weights_read_by_group(arch, precision, fmt)
    stream_s = offloaded_bytes_per_gpu / peak.host_link if tier == "offload" else 0.0
    kv_bytes = kv_bytes_per_sequence(arch, kv, math.ceil(context_tokens))
    kv_bytes *= kv_share_per_gpu(arch, gpus)
    state_bytes = 2 * arch.state_values_per_sequence * arch.state_bytes_per_value / gpus
    step_bytes = _weights_read(arch, sizes, concurrency) / gpus + concurrency * (
        kv_bytes + state_bytes
    )
    attention = arch.attention_flops_per_context_token * _attended_tokens(arch, context_tokens)
    step_flops = concurrency * (2 * arch.active_parameters_read_per_token + attention) / gpus
    comm_s = _allreduce_s(arch, concurrency, gpus, peak)
    return StepCost(
        memory_s=step_bytes / peak.bandwidth,
        compute_s=step_flops / peak.flops,
        fixed_s=comm_s + stream_s,
        comm_s=comm_s,
        stream_s=stream_s,
        sequences=concurrency,
    )


def prefill_step(
    arch: Architecture,
    precision: Precision,
    *,
    tier: Tier,
    gpu: Gpu | None,
    host: Host | None = None,
    fmt: WeightFormat | None = None,
    gpus_per_replica: int = 1,
    prompt_tokens: int,
    sequences: int = 1,
    offloaded_bytes_per_gpu: int = 0,
) -> StepCost:
    """Prefill of ``sequences`` prompts of ``prompt_tokens`` (causal: each token attends to
    half its prompt on average), at peak."""
    gpus = 1 if tier == "cpu" else gpus_per_replica
    peak = _peak(tier, gpu, host, precision)
    sizes = weights_read_by_group(arch, precision, fmt)
    stream_s = offloaded_bytes_per_gpu / peak.host_link if tier == "offload" else 0.0
    tokens = prompt_tokens * sequences
    attention = arch.attention_flops_per_context_token * _attended_tokens(arch, prompt_tokens / 2)
    flops = tokens * (2 * arch.active_parameters_read_per_token + attention) / gpus
    comm_s = _allreduce_s(arch, tokens, gpus, peak)
    return StepCost(
        memory_s=_weights_read(arch, sizes, tokens) / gpus / peak.bandwidth,
        compute_s=flops / peak.flops,
        fixed_s=comm_s + stream_s,
        comm_s=comm_s,
        stream_s=stream_s,
        sequences=sequences,
    )


def _efficiency(
    tier: Tier, gpu: Gpu | None, engine: str, fmt: WeightFormat, concurrency: int, table
) -> Efficiency:
    if tier == "cpu" or gpu is None:
        return Efficiency(
            CPU_BANDWIDTH_EFFICIENCY,
            CPU_COMPUTE_EFFICIENCY,
            CPU_STEP_OVERHEAD_S,
            "cpu tier constants (latency.CPU_*)",
        )
    return table.lookup(engine, gpu, fmt.id, concurrency)


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
    engine: str = "vllm",
    weight_format: str | None = None,
    efficiency: Efficiency | None = None,
    table: EfficiencyTable | None = None,
) -> SpeedEstimate:
    """TTFT, TPOT and output tokens/s of one replica served by ``engine`` (module docstring).

    ``weight_format`` names how the engine holds ``precision`` (default: the table's choice
    for the engine, e.g. GGUF Q4_K_M for llama.cpp int4); ``efficiency`` overrides the table's
    fractions (the fit uses it); ``table`` replaces the shipped table.
    """
    if min(concurrency, context_tokens, prompt_tokens, gpus_per_replica) < 1:
        raise ValueError("concurrency, context, prompt and GPUs must be ≥ 1")
    table = table or default_table()
    if weight_format and weight_format not in table.formats:
        raise ValueError(f"unknown weight format {weight_format!r}; known: {sorted(table.formats)}")
    fmt = (
        table.formats[weight_format] if weight_format else table.weight_format(engine, precision.id)
    )
    eff = efficiency or _efficiency(tier, gpu, engine, fmt, concurrency, table)
    common = dict(
        tier=tier,
        gpu=gpu,
        host=host,
        fmt=fmt,
        gpus_per_replica=gpus_per_replica,
        offloaded_bytes_per_gpu=offloaded_bytes_per_gpu,
    )
    decode = decode_step(
        arch, precision, kv, concurrency=concurrency, context_tokens=context_tokens, **common
    )
    prefill = prefill_step(arch, precision, prompt_tokens=prompt_tokens, **common)
    tpot_s = decode.seconds(eff)
    parts = {
        "memory": decode.memory_s / eff.bandwidth,
        "compute": decode.compute_s / eff.compute,
        "interconnect": decode.comm_s,
        "host-link": decode.stream_s,
    }
    prefill_s = prefill.seconds(eff)
    return SpeedEstimate(
        time_to_first_token_ms=(eff.request_overhead_s + prefill_s + tpot_s) * 1e3,
        time_per_output_token_ms=tpot_s * 1e3,
        output_tokens_per_second_per_replica=concurrency / tpot_s,
        bound=max(parts, key=parts.get),
        prefill_ms=prefill_s * 1e3,
        weight_format=fmt.id,
        efficiency_source=eff.source,
    )

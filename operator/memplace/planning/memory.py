"""How much GPU memory a replica needs: weights + KV cache + state + activations + overhead.

Worked example, Llama-3-8B in bf16, 8,192-token context, 8 sequences, one GPU:

* weights: 8.03 B parameters × 2 bytes = 16.06 GB = 14.96 GiB (what vLLM logs as
  "Loading weights took 14.96 GiB");
* KV cache: 65,536 values per token × 2 bytes = 128 KiB per token; × 8,192 tokens × 8
  sequences = 8 GiB;
* activations: 8,192 batched tokens × (4 × 4,096 + 2 × 14,336) values × 2 bytes ≈ 0.7 GiB, plus
  8 × 128,256 fp32 logits;
* overhead: CUDA context and CUDA graphs, 1 GiB.

Quantised weights keep what real quantisers keep in 16 bits (``Precision.kept_16bit``) and pay
for their scales: int4 with a 16-bit scale and zero point per 128 weights costs 4.25 bits.
Tensor parallelism shards weights, KV heads and state across GPUs; each GPU pays its own
context and graphs; MLA's single latent KV head is replicated on every GPU (as vLLM does).

llama.cpp stores a quantised model as GGUF, whose layout differs: the token embeddings and the
output matrix are quantised too, and a format's block scales are part of its bits per weight
(``gguf_bits_per_weight``). Llama-3-8B in Q8_0: 8.03 B × 8.5 bits = 7.95 GiB, what llama.cpp
prints; the vLLM-style int8 estimate (16-bit embeddings) would say 8.46 GiB.

Both are checked against published start-up logs in tests/planning/test_runtime_logs.py.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from memplace.planning.architecture import Architecture
from memplace.planning.catalogue import KvDtype, Precision
from memplace.planning.efficiency import default_table

__all__ = [
    "ACTIVATION_BATCH_TOKENS",
    "CUDA_CONTEXT_BYTES",
    "CUDA_GRAPH_BYTES",
    "gguf_bits_per_weight",
    "GPU_MEMORY_UTILIZATION",
    "KV_BLOCK_TOKENS",
    "MemoryEstimate",
    "estimate_memory",
    "offload_bytes_needed",
    "usable_gpu_bytes",
    "weights_bytes",
    "weights_bytes_by_group",
    "weights_source",
    "kv_bytes_per_sequence",
    "kv_share_per_gpu",
]

GiB = 1 << 30

CUDA_CONTEXT_BYTES = GiB // 2
"""CUDA context, cuBLAS workspaces and NCCL buffers per GPU process: about 0.5 GiB. vLLM counts
this as "non-torch memory" in its memory profile (docs.vllm.ai, "Conserving Memory"; its startup
log prints "non-torch memory" of 0.3–0.9 GiB on A100/H100 for single-GPU models)."""

CUDA_GRAPH_BYTES = GiB // 2
"""CUDA graphs vLLM captures for decode batch sizes: its log line "Graph capturing finished …
took 0.5 GiB" is typical for 7–8 B models (docs.vllm.ai "Conserving Memory" suggests
``--enforce-eager`` to save exactly this)."""

ACTIVATION_BATCH_TOKENS = 8192
"""Tokens per scheduler step that vLLM's memory profile sizes activations for: its default
``--max-num-batched-tokens`` for the OpenAI server on data-centre GPUs (vLLM engine arguments,
"Optimization and Tuning": chunked prefill with 8192 batched tokens)."""

GPU_MEMORY_UTILIZATION = 0.9
"""Fraction of a GPU's memory a replica may plan to use: vLLM's default
``--gpu-memory-utilization`` (0.9, vLLM engine arguments). The rest is headroom for other
processes, fragmentation and estimate error."""

KV_BLOCK_TOKENS = 16
"""vLLM pages the KV cache in blocks of 16 tokens (``--block-size`` default on CUDA)."""

def gguf_bits_per_weight(precision_id: str) -> float | None:
    """Bits per weight of the GGUF file llama.cpp serves for a quantised precision, block scales
    included, over every weight matrix and the embeddings (norms stay f32); None where llama.cpp
    keeps the vLLM layout (16-bit stays 16-bit).

    The figures live in one place, the weight formats of ``data/efficiency.yaml``, where each
    carries its source (llama-bench's printed file sizes): int8 is Q8_0 (blocks of 32 int8 and
    one fp16 scale, 34 bytes per 32 weights = 8.5 bits); int4 is Q4_K_M, a mixture of Q4_K and
    Q6_K matrices (4.90 bits over Llama-3-8B)."""
    bits = default_table().weight_format("llamacpp", precision_id).bits_per_weight
    return bits if bits is not None and bits < 16 else None


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes one replica needs, whole (``total_bytes``) and on each of its GPUs."""

    weights_bytes: int
    kv_cache_bytes: int
    state_bytes: int
    activation_bytes: int
    overhead_bytes: int
    gpus: int
    weights_bytes_per_gpu: int
    kv_cache_bytes_per_gpu: int
    state_bytes_per_gpu: int
    activation_bytes_per_gpu: int
    adapter_bytes: int = 0
    """LoRA: what the engine holds for adapters, all GPUs of the replica (``adapters``)."""
    adapter_bytes_per_gpu: int = 0

    @property
    def overhead_bytes_per_gpu(self) -> int:
        return self.overhead_bytes // self.gpus

    @property
    def total_bytes(self) -> int:
        return (
            self.weights_bytes
            + self.kv_cache_bytes
            + self.state_bytes
            + self.activation_bytes
            + self.overhead_bytes
            + self.adapter_bytes
        )

    @property
    def total_bytes_per_gpu(self) -> int:
        return (
            self.weights_bytes_per_gpu
            + self.kv_cache_bytes_per_gpu
            + self.state_bytes_per_gpu
            + self.activation_bytes_per_gpu
            + self.overhead_bytes_per_gpu
            + self.adapter_bytes_per_gpu
        )


def weights_bytes_by_group(
    arch: Architecture, precision: Precision, engine: str = "vllm"
) -> dict[str, int]:
    """Bytes per tensor group in ``precision``, scales and zero points included, in the layout
    ``engine`` loads (llama.cpp: GGUF, see ``gguf_bits_per_weight``).

    At the precision a checkpoint is published in, an engine that loads the safetensors files
    loads the checkpoint's own bytes (``planning.checkpoint``: an architecture that carries one);
    otherwise they are computed from the parameter counts."""
    gguf = gguf_bits_per_weight(precision.id) if engine == "llamacpp" else None
    if gguf is not None:
        return {g.category: _gguf_bytes(g, gguf) for g in arch.groups}
    published = getattr(arch, "checkpoint", None)
    if published is not None and published.serves(precision.id):
        return dict(published.loaded_bytes_by_group)
    kept = set(precision.kept_16bit)
    sizes: dict[str, int] = {}
    for group in arch.groups:
        if not group.quantizable or group.category in kept or precision.weight_bits >= 16:
            sizes[group.category] = group.parameters * 2
            continue
        size = group.parameters * precision.weight_bits / 8
        metadata_bits = precision.scale_bits + precision.zero_point_bits
        if precision.block_size:
            size += math.ceil(group.parameters / precision.block_size) * metadata_bits / 8
        else:  # per-channel: one scale per output row
            size += group.rows * metadata_bits / 8
        sizes[group.category] = int(size)
    return sizes


def _gguf_bytes(group, bits: float) -> int:
    if group.category == "norms":
        return group.parameters * 4  # f32 in GGUF files
    if group.category == "vision":
        return group.parameters * 2  # the projector file (mmproj) stays 16-bit
    return int(group.parameters * bits / 8)


def weights_bytes(arch: Architecture, precision: Precision, engine: str = "vllm") -> int:
    """Bytes of the checkpoint in ``precision``, as ``engine`` loads it."""
    return sum(weights_bytes_by_group(arch, precision, engine).values())


def weights_source(arch: Architecture, precision: Precision, native: str | None) -> str:
    """Where the weights at ``precision`` come from, most trusted first (DESIGN.md):
    ``checkpoint`` (its safetensors headers), ``quantizationConfig`` (config.json declares the
    format, the bytes are computed), ``config`` (computed from the architecture) or
    ``parameters`` (``spec.model.parameters`` alone)."""
    published = getattr(arch, "checkpoint", None)
    if published is not None and published.serves(precision.id):
        return "checkpoint"
    if arch.model_type == "parameters":
        return "parameters"
    if native is not None and precision.id == native:
        return "quantizationConfig"
    return "config"


def kv_bytes_per_sequence(arch: Architecture, kv: KvDtype, context_tokens: int) -> float:
    tokens = math.ceil(context_tokens / KV_BLOCK_TOKENS) * KV_BLOCK_TOKENS
    window = min(tokens, arch.sliding_window or tokens)
    values = arch.kv_values_per_token * (arch.kv_layers * tokens + arch.window_layers * window)
    return values * kv.bits / 8


def kv_share_per_gpu(arch: Architecture, gpus: int) -> float:
    """Fraction of the KV cache each GPU holds: KV heads split across GPUs, replicated when
    there are fewer heads than GPUs; MLA's latent is replicated on every GPU."""
    if arch.mla:
        return 1.0
    heads = max(1, arch.kv_heads)
    return math.ceil(heads / gpus) / heads


def estimate_memory(
    arch: Architecture,
    precision: Precision,
    kv: KvDtype,
    *,
    context_tokens: int,
    concurrency: int,
    gpus_per_replica: int = 1,
    engine: str = "vllm",
) -> MemoryEstimate:
    """The footprint of one replica serving ``concurrency`` sequences of ``context_tokens``."""
    if context_tokens < 1 or concurrency < 1 or gpus_per_replica < 1:
        raise ValueError("context_tokens, concurrency and gpus_per_replica must be ≥ 1")
    gpus = gpus_per_replica
    weights = weights_bytes(arch, precision, engine)
    kv_per_gpu = kv_bytes_per_sequence(arch, kv, context_tokens) * concurrency
    kv_per_gpu *= kv_share_per_gpu(arch, gpus)
    state = arch.state_values_per_sequence * arch.state_bytes_per_value * concurrency
    batch_tokens = min(ACTIVATION_BATCH_TOKENS, max(context_tokens, concurrency))
    hidden_values = batch_tokens * 4 * arch.hidden_size
    mlp_values = batch_tokens * 2 * arch.max_intermediate_size / gpus
    logits_bytes = concurrency * arch.vocab_size * 4
    activations_per_gpu = int((hidden_values + mlp_values) * 2 + logits_bytes)
    return MemoryEstimate(
        weights_bytes=weights,
        kv_cache_bytes=int(kv_per_gpu) * gpus,
        state_bytes=state,
        activation_bytes=activations_per_gpu * gpus,
        overhead_bytes=(CUDA_CONTEXT_BYTES + CUDA_GRAPH_BYTES) * gpus,
        gpus=gpus,
        weights_bytes_per_gpu=math.ceil(weights / gpus),
        kv_cache_bytes_per_gpu=int(kv_per_gpu),
        state_bytes_per_gpu=math.ceil(state / gpus),
        activation_bytes_per_gpu=activations_per_gpu,
    )


def usable_gpu_bytes(capacity_bytes: int) -> int:
    """What a plan may fill on a GPU of ``capacity_bytes`` (catalogue capacity)."""
    return int(capacity_bytes * GPU_MEMORY_UTILIZATION)


def offload_bytes_needed(estimate: MemoryEstimate, usable_bytes_per_gpu: int) -> int | None:
    """Weight bytes per GPU that must live in host memory for the rest to fit.

    0 when the replica fits as it is; None when it cannot fit even with every weight offloaded
    (KV cache, state, activations and overhead must stay on the GPU)."""
    excess = estimate.total_bytes_per_gpu - usable_bytes_per_gpu
    if excess <= 0:
        return 0
    if excess > estimate.weights_bytes_per_gpu:
        return None
    return excess

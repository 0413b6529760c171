"""Feasibility: one check per reason, each ``check(evaluation, requirements) -> Rejection | None``.

Like Karpenter's ``filterInstanceTypesByRequirements``, every check runs on every candidate and
nothing short-circuits, so when no candidate survives the planner can say which check emptied
the list (``funnel``), not just that the list is empty. Like kube-scheduler's filter plugins a
check says yes or no with the numbers behind it; cost never enters here (it only ranks, in
``choose``).

A ``Rejection`` is data: a stable ``RejectionCode``, a message with numbers ("needs 41.2 GiB per
GPU > 21.6 GiB usable on L4"), and whether it may resolve without the spec changing (kube-
scheduler's ``Unschedulable`` vs ``UnschedulableAndUnresolvable``): measured memory and free
capacity can change; compute capability and the SLO arithmetic cannot.

Checks run in ``STAGES`` order; a candidate's first rejection is the one people see.

Each rule is defined once, as a predicate over plain values (``pool_allowed``,
``engine_refusal``, ``memory_need``, ``meets_slo`` …). The check functions ask the predicate and
explain a "no" with numbers; the planner's fast path (``evaluation._evaluate_all``) asks the same
predicates once per group of candidates that share pool, tier, precision, KV dtype and variant,
and per candidate only what differs inside a group (memory, speed, replicas).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .calibration import calibrated_note
from .inventory import gib

__all__ = [
    "ENGINE_SUPPORT",
    "TENSOR_PARALLEL_ENGINES",
    "STAGES",
    "Evaluation",
    "Rejection",
    "Requirements",
    "check_all",
    "does_not_fit",
    "excess",
    "engine_refusal",
    "engine_unsupported",
    "funnel",
    "hardware_refusal",
    "host_share",
    "kv_cache_dtype_allowed",
    "kv_cache_dtype_not_allowed",
    "meets_slo",
    "memory_need",
    "offload_to_disk_not_allowed",
    "pool_allowed",
    "pool_not_allowed",
    "precision_allowed",
    "precision_not_allowed",
    "quality_too_low",
    "slo_excess",
    "spec_allows",
    "tensor_parallel_refusal",
    "tensor_parallel_unsupported",
    "tier_allowed",
    "tier_not_allowed",
    "too_slow",
    "unsupported_precision",
    "within_budget",
]


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why one candidate cannot be used."""

    code: str
    """A ``RejectionCode``."""
    message: str
    resolvable: bool = False
    """True when it may pass later with the same spec (memory frees up, a pool drains)."""
    excess: float = field(default=0.0, compare=False)
    """How far over the limit, for picking the nearest miss: needed ÷ available memory
    (DoesNotFit), estimate ÷ SLO (TooSlow); 0 for the other codes."""


@dataclass(frozen=True)
class Requirements:
    """What the spec asks, flattened for the checks (from ``ModelDeploymentSpec``)."""

    pools: frozenset[str] = frozenset()
    """Allowed pools; empty = all."""
    tiers: frozenset[str] = frozenset({"gpu", "offload", "cpu"})
    precisions: frozenset[str] | None = None
    kv_cache_dtypes: frozenset[str] | None = None
    max_loss: float = 0.0
    ttft_ms: float | None = None
    tpot_ms: float | None = None
    context_tokens: int = 4096
    concurrency: int = 1
    prompt_tokens: int = 1024
    demand_tokens_per_second: float = 0.0
    min_replicas: int = 1
    max_replicas: int | None = None
    offload_to_disk: bool = False
    engine: str = "vllm"
    lora: Any = None
    """``adapters.LoraSlots``: the LoRA adapters loaded beside the model; None = none."""

    @property
    def group_rules(self) -> tuple:
        """What the first three stages (spec, hardware and engine, quality) read: candidates
        that share pool, tier, precision, KV dtype and variant get the same verdicts from
        requirements with the same ``group_rules``."""
        return (
            self.pools,
            self.tiers,
            self.precisions,
            self.kv_cache_dtypes,
            self.engine,
            self.max_loss,
        )

    @classmethod
    def from_spec(cls, spec: Any) -> Requirements:
        w, s, q, p = spec.workload, spec.slo, spec.quality, spec.placement
        return cls(
            pools=frozenset(p.pools),
            tiers=frozenset(p.tiers),
            precisions=frozenset(q.precisions) if q.precisions else None,
            kv_cache_dtypes=frozenset(q.kv_cache_dtypes) if q.kv_cache_dtypes else None,
            max_loss=q.max_loss,
            ttft_ms=s.time_to_first_token_ms,
            tpot_ms=s.time_per_output_token_ms,
            context_tokens=w.context_tokens,
            concurrency=w.concurrency,
            prompt_tokens=w.prompt_tokens,
            demand_tokens_per_second=w.output_tokens_per_second,
            min_replicas=w.min_replicas,
            max_replicas=w.max_replicas,
            offload_to_disk=p.offload_to_disk,
            engine=spec.runtime.engine,
        )


@dataclass(slots=True)
class Evaluation:
    """A candidate with its estimates, replica count and cost; ``rejections`` empty = feasible."""

    candidate: Any
    memory: Any
    """``memory.MemoryEstimate``."""
    speed: Any
    """``latency.SpeedEstimate``; None when it could not be estimated (does not fit at all)."""
    quality_loss: float
    offload_bytes_per_gpu: int | None
    """Weights per GPU kept in host memory (offload tier); None: cannot fit even so."""
    resident_bytes_per_gpu: int
    """What the replica holds on each of its GPUs (cpu tier: in host memory)."""
    host_bytes: int
    """Host memory the replica needs: offloaded weights, or everything on the cpu tier."""
    replicas: int
    replicas_for_demand: int
    per_replica_hour: float
    per_hour: float
    rejections: tuple[Rejection, ...] = ()
    sort_key: tuple = ()

    @property
    def feasible(self) -> bool:
        return not self.rejections


Check = Callable[[Evaluation, Requirements], "Rejection | None"]


def _listed(values: frozenset[str]) -> str:
    return "[" + ", ".join(sorted(values)) + "]"


# --- the spec's rules ------------------------------------------------------------------------


def pool_allowed(pool: str, r: Requirements) -> bool:
    return not r.pools or pool in r.pools


def tier_allowed(tier: str, r: Requirements) -> bool:
    return tier in r.tiers


def precision_allowed(precision: str, r: Requirements) -> bool:
    return r.precisions is None or precision in r.precisions


def kv_cache_dtype_allowed(kv: str, r: Requirements) -> bool:
    return r.kv_cache_dtypes is None or kv in r.kv_cache_dtypes


def spec_allows(pool: str, tier: str, precision: str, kv: str, r: Requirements) -> bool:
    """All of the spec's allow-lists at once (the first stage)."""
    return (
        pool_allowed(pool, r)
        and tier_allowed(tier, r)
        and precision_allowed(precision, r)
        and kv_cache_dtype_allowed(kv, r)
    )


def pool_not_allowed(e: Evaluation, r: Requirements) -> Rejection | None:
    pool = e.candidate.pool.name
    if pool_allowed(pool, r):
        return None
    return Rejection(
        "PoolNotAllowed", f"pool {pool} not in spec.placement.pools {_listed(r.pools)}"
    )


def tier_not_allowed(e: Evaluation, r: Requirements) -> Rejection | None:
    tier = e.candidate.tier
    if tier_allowed(tier, r):
        return None
    return Rejection(
        "TierNotAllowed", f"tier {tier} not in spec.placement.tiers {_listed(r.tiers)}"
    )


def precision_not_allowed(e: Evaluation, r: Requirements) -> Rejection | None:
    precision = e.candidate.precision.id
    if precision_allowed(precision, r):
        return None
    return Rejection(
        "PrecisionNotAllowed",
        f"{precision} not in spec.quality.precisions {_listed(r.precisions or frozenset())}",
    )


def kv_cache_dtype_not_allowed(e: Evaluation, r: Requirements) -> Rejection | None:
    kv = e.candidate.kv.id
    if kv_cache_dtype_allowed(kv, r):
        return None
    listed = _listed(r.kv_cache_dtypes or frozenset())
    return Rejection(
        "KvCacheDtypeNotAllowed", f"{kv} KV cache not in spec.quality.kvCacheDtypes {listed}"
    )


# --- hardware and engine ---------------------------------------------------------------------

ENGINE_SUPPORT: dict[str, dict[str, frozenset[str]]] = {
    "vllm": {
        "tiers": frozenset({"gpu", "offload", "cpu"}),
        "precisions": frozenset({"bf16", "fp16", "fp8", "int8", "int4", "nvfp4", "mxfp4"}),
        "in_flight": frozenset({"bf16", "fp16", "fp8", "int4"}),
        "kv": frozenset({"bf16", "fp16", "fp8"}),
    },
    "llamacpp": {
        "tiers": frozenset({"gpu", "offload", "cpu"}),
        "precisions": frozenset({"bf16", "fp16", "int8", "int4", "mxfp4"}),
        "in_flight": frozenset({"bf16", "fp16", "int8", "int4", "mxfp4"}),
        "kv": frozenset({"bf16", "fp16"}),
    },
    "tgi": {
        "tiers": frozenset({"gpu"}),
        "precisions": frozenset({"bf16", "fp16", "fp8", "int8", "int4"}),
        "in_flight": frozenset({"bf16", "fp16", "fp8", "int8", "int4"}),
        "kv": frozenset({"bf16", "fp16", "fp8"}),
    },
}
"""What memplace knows how to configure per engine (not everything each engine can do):
vLLM serves every format and offloads with ``--cpu-offload-gb``; llama.cpp serves GGUF
(Q8_0, Q4_K, MXFP4) and offloads layers with ``--n-gpu-layers``; TGI has no CPU offload.
``custom`` is not checked: memplace passes it no arguments.

``in_flight``: what the engine can make of a 16-bit checkpoint while loading it. vLLM quantises
to fp8 dynamically (``--quantization fp8``) and to 4 bits with bitsandbytes ("Inflight
quantization: load as 4bit", docs.vllm.ai features/quantization/bnb); int8 W8A8, nvfp4 and
mxfp4 need a checkpoint already in that format (its ``quantization_config`` says so: give it as
a variant). TGI quantises in flight with ``--quantize fp8 | bitsandbytes | bitsandbytes-nf4``.
llama.cpp loads GGUF files whose quantisation is chosen by the repository the source names.
A checkpoint published in a quantised format serves in that format only."""


def hardware_refusal(precision: Any, kv: Any, gpu: Any) -> str | None:
    """Why ``gpu`` cannot run these weights or this KV cache, or None (always None on the cpu
    tier, whose formats are fixed by ``candidates.CPU_PRECISIONS``)."""
    from .precision import unsupported

    if gpu is None:
        return None
    return unsupported(precision, gpu) or unsupported(kv, gpu)


def engine_refusal(
    engine: str, tier: str, precision: str, kv: str, native: str | None
) -> str | None:
    """Why ``engine`` cannot serve this tier, precision and KV dtype from a checkpoint published
    in ``native`` (None: 16-bit), or None when it can (see ``ENGINE_SUPPORT``)."""
    support = ENGINE_SUPPORT.get(engine)
    if support is None:
        return None
    if tier not in support["tiers"]:
        return f"{engine} cannot serve the {tier} tier"
    if precision not in support["precisions"]:
        return f"{engine} cannot serve {precision} weights"
    if kv not in support["kv"]:
        return f"{engine} cannot keep a {kv} KV cache"
    if native is not None and precision != native:
        return f"the checkpoint is published in {native}; it serves as {native}"
    if native is None and precision not in support["in_flight"]:
        return (
            f"{engine} cannot make {precision} from a 16-bit checkpoint while loading; "
            f"add a variant whose source is a {precision} checkpoint"
        )
    return None


TENSOR_PARALLEL_ENGINES = frozenset({"vllm", "tgi"})
"""Engines that split attention heads across the GPUs of a replica. vLLM refuses a tensor-
parallel size that does not divide the attention heads ("Total number of attention heads (32)
must be divisible by tensor parallel size (3)", ``ModelConfig.verify_with_parallel_config`` in
vllm/config/model.py) and splits or replicates KV heads only by whole factors
(``QKVParallelLinear`` in vllm/model_executor/layers/linear.py: ``divide(tp_size, kv_heads)``
or ``divide(kv_heads, tp_size)``); TGI's sharded layers raise "`num_heads` must be divisible by
`num_shards`". llama.cpp splits by layers (``--split-mode layer``), so any GPU count works."""


def tensor_parallel_refusal(engine: str, arch: Any, gpus: int) -> str | None:
    """Why ``engine`` cannot split ``arch`` over ``gpus`` GPUs, or None. Only for shapes read
    from a config: a shape assumed from a parameter count has no heads to check."""
    heads = getattr(arch, "attention_heads", 0)
    if gpus <= 1 or engine not in TENSOR_PARALLEL_ENGINES or not heads:
        return None
    if heads % gpus:
        return (
            f"{engine} cannot split {heads} attention heads over {gpus} GPUs "
            "(the tensor-parallel size must divide them)"
        )
    kv = arch.kv_heads
    if not arch.mla and kv % gpus and gpus % kv:
        return f"{engine} cannot split {kv} KV heads over {gpus} GPUs"
    return None


def tensor_parallel_unsupported(e: Evaluation, r: Requirements) -> Rejection | None:
    c = e.candidate
    why = tensor_parallel_refusal(r.engine, getattr(c.variant, "architecture", None), c.gpus)
    return Rejection("EngineUnsupported", why) if why else None


def unsupported_precision(e: Evaluation, r: Requirements) -> Rejection | None:
    c = e.candidate
    why = hardware_refusal(c.precision, c.kv, c.pool.gpu)
    return Rejection("UnsupportedPrecision", why) if why else None


def engine_unsupported(e: Evaluation, r: Requirements) -> Rejection | None:
    c = e.candidate
    why = engine_refusal(r.engine, c.tier, c.precision.id, c.kv.id, c.variant.native)
    return Rejection("EngineUnsupported", why) if why else None


# --- quality ---------------------------------------------------------------------------------


def within_budget(loss: float, r: Requirements) -> bool:
    return loss <= r.max_loss + 1e-12


def quality_too_low(e: Evaluation, r: Requirements) -> Rejection | None:
    if within_budget(e.quality_loss, r):
        return None
    c = e.candidate
    parts = []
    weights = e.quality_loss - c.kv.quality_loss - c.variant.quality_loss
    if weights > 1e-12:
        parts.append(f"{c.precision.id} {weights:.3g}")
    if c.kv.quality_loss:
        parts.append(f"{c.kv.id} KV {c.kv.quality_loss:.3g}")
    if c.variant.quality_loss:
        parts.append(f"{c.variant.name} {c.variant.quality_loss:.3g}")
    detail = f" ({' + '.join(parts)})" if len(parts) > 1 else ""
    return Rejection(
        "QualityTooLow", f"quality loss {e.quality_loss:.3g}{detail} > budget {r.max_loss:.3g}"
    )


# --- memory ----------------------------------------------------------------------------------


def host_share(pool: Any, gpus: int) -> tuple[int, int]:
    """Host memory and local disk a replica of ``gpus`` GPUs may use: its GPUs' share of the
    node (the whole node on the cpu tier)."""
    if pool.cpu_only or not pool.gpus_per_node:
        return pool.host_bytes_per_node, 0
    share = gpus / pool.gpus_per_node
    return int(pool.host_bytes_per_node * share), int(pool.disk_bytes_per_node * share)


def memory_need(
    tier: str,
    bytes_per_gpu: int,
    weights_bytes_per_gpu: int,
    usable_bytes_per_gpu: int,
    offload_bytes_per_gpu: int | None,
    host_bytes: int,
    host: int,
    disk: int,
    offload_to_disk: bool,
) -> tuple[int, int]:
    """(needed, available) bytes of the memory that limits this tier; it fits when needed ≤
    available. gpu: per GPU; cpu: the node's host memory; offload: per GPU without the weights
    when even that is too much (``offload_bytes_per_gpu`` None), else the offloaded weights in
    the replica's share of host memory (and of local disk with ``offloadToDisk``)."""
    if tier == "cpu":
        return host_bytes, host
    if tier == "gpu":
        return bytes_per_gpu, usable_bytes_per_gpu
    if offload_bytes_per_gpu is None:
        return bytes_per_gpu - weights_bytes_per_gpu, usable_bytes_per_gpu
    return host_bytes, host + (disk if offload_to_disk else 0)


def excess(needed: float, available: float) -> float:
    """needed ÷ available (inf when nothing is available): how far a miss is from fitting."""
    return needed / available if available > 0 else math.inf


def does_not_fit(e: Evaluation, r: Requirements) -> Rejection | None:
    c, pool = e.candidate, e.candidate.pool
    host, disk = host_share(pool, c.gpus)
    m = e.memory
    need, have = memory_need(
        c.tier,
        m.total_bytes_per_gpu,
        m.weights_bytes_per_gpu,
        pool.usable_bytes_per_gpu,
        e.offload_bytes_per_gpu,
        e.host_bytes,
        host,
        disk,
        r.offload_to_disk,
    )
    if need <= have:
        return None
    over = excess(need, have)
    source = "measured free" if pool.measured else "usable"
    if c.tier == "cpu":
        where = pool.instance.id if pool.instance is not None else pool.name
        message = f"needs {gib(need)} > {gib(have)} host memory on {where}"
        return Rejection("DoesNotFit", message, excess=over)
    if c.tier == "gpu":
        message = f"needs {gib(need)} per GPU > {gib(have)} {source} on {pool.gpu_name}"
    elif e.offload_bytes_per_gpu is None:
        message = (
            f"needs {gib(need)} per GPU without weights > {gib(have)} {source} on {pool.gpu_name}"
        )
    else:
        what = "host memory" + (" and local disk" if r.offload_to_disk else "")
        message = (
            f"offloads {gib(need)} > {gib(have)} {what} for {c.gpus} of {pool.gpus_per_node} GPUs"
        )
        return Rejection("DoesNotFit", message + calibrated_note(m), excess=over)
    message += calibrated_note(m)
    return Rejection("DoesNotFit", message, resolvable=pool.measured, excess=over)


def offload_to_disk_not_allowed(e: Evaluation, r: Requirements) -> Rejection | None:
    if e.candidate.tier != "offload" or r.offload_to_disk or e.offload_bytes_per_gpu is None:
        return None
    host, disk = host_share(e.candidate.pool, e.candidate.gpus)
    if host < e.host_bytes <= host + disk:
        return Rejection(
            "OffloadToDiskNotAllowed",
            f"offloads {gib(e.host_bytes)}, {gib(e.host_bytes - host)} more than host memory "
            "holds, onto local disk; spec.placement.offloadToDisk is false",
        )
    return None


# --- speed -----------------------------------------------------------------------------------


def meets_slo(ttft_ms: float, tpot_ms: float, replicas_for_demand: int, r: Requirements) -> bool:
    """Whether the estimates meet the SLO, and the demand needs no more than maxReplicas."""
    return (
        (r.ttft_ms is None or ttft_ms <= r.ttft_ms)
        and (r.tpot_ms is None or tpot_ms <= r.tpot_ms)
        and (r.max_replicas is None or replicas_for_demand <= r.max_replicas)
    )


def slo_excess(ttft_ms: float, tpot_ms: float, replicas_for_demand: int, r: Requirements) -> float:
    """The largest estimate ÷ limit: how far a too-slow candidate is from the SLO."""
    ratios = [0.0]
    if r.ttft_ms is not None:
        ratios.append(excess(ttft_ms, r.ttft_ms))
    if r.tpot_ms is not None:
        ratios.append(excess(tpot_ms, r.tpot_ms))
    if r.max_replicas is not None:
        ratios.append(excess(replicas_for_demand, r.max_replicas))
    return max(ratios)


def too_slow(e: Evaluation, r: Requirements) -> Rejection | None:
    s = e.speed
    if s is None:
        return None
    ttft, tpot, for_demand = (
        s.time_to_first_token_ms,
        s.time_per_output_token_ms,
        e.replicas_for_demand,
    )
    if meets_slo(ttft, tpot, for_demand, r):
        return None
    misses = []  # the message names each limit missed
    if r.ttft_ms is not None and ttft > r.ttft_ms:
        misses.append(f"TTFT {ttft:.0f} ms > SLO {r.ttft_ms:g} ms")
    if r.tpot_ms is not None and tpot > r.tpot_ms:
        misses.append(f"TPOT {tpot:.1f} ms > SLO {r.tpot_ms:g} ms")
    if r.max_replicas is not None and for_demand > r.max_replicas:
        misses.append(
            f"needs {for_demand} replicas for {r.demand_tokens_per_second:g} tok/s "
            f"> maxReplicas {r.max_replicas}"
        )
    message = "; ".join(misses) + calibrated_note(s)
    return Rejection("TooSlow", message, excess=slo_excess(ttft, tpot, for_demand, r))


# --- all of them -----------------------------------------------------------------------------

STAGES: tuple[tuple[str, tuple[Check, ...]], ...] = (
    (
        "allowed by the spec",
        (pool_not_allowed, tier_not_allowed, precision_not_allowed, kv_cache_dtype_not_allowed),
    ),
    (
        "supported by hardware and engine",
        (unsupported_precision, engine_unsupported, tensor_parallel_unsupported),
    ),
    ("within the quality budget", (quality_too_low,)),
    ("fit in memory", (does_not_fit, offload_to_disk_not_allowed)),
    ("meet the SLO", (too_slow,)),
)
"""Checks grouped in the order people read them; ``funnel`` counts survivors stage by stage."""

CHECKS: tuple[Check, ...] = tuple(check for _, checks in STAGES for check in checks)
_STAGE_OF_CODE = {
    "PoolNotAllowed": 0,
    "TierNotAllowed": 0,
    "PrecisionNotAllowed": 0,
    "KvCacheDtypeNotAllowed": 0,
    "UnsupportedPrecision": 1,
    "EngineUnsupported": 1,
    "QualityTooLow": 2,
    "DoesNotFit": 3,
    "OffloadToDiskNotAllowed": 3,
    "TooSlow": 4,
    "NoCapacity": 5,
}


def check_all(e: Evaluation, r: Requirements) -> tuple[Rejection, ...]:
    """Every check on one candidate, in stage order (none skipped)."""
    return tuple(rej for check in CHECKS if (rej := check(e, r)) is not None)


def stage_of(rejection: Rejection) -> int:
    return _STAGE_OF_CODE.get(rejection.code, len(STAGES))


def funnel(
    evaluations: Sequence[Evaluation], capacity_ok: Callable[[Evaluation], bool] | None = None
) -> list[tuple[str, int]]:
    """Survivors after each stage: [("candidates", 1440), ("allowed by the spec", 960), …].

    A candidate survives a stage when none of its rejections belongs to it or an earlier one;
    the last step ("have free capacity") applies ``capacity_ok`` to the feasible ones."""
    counts = [0] * (len(STAGES) + 1)
    for e in evaluations:
        first = min((stage_of(r) for r in e.rejections), default=len(STAGES))
        for s in range(min(first, len(STAGES))):
            counts[s] += 1
        if first >= len(STAGES) and (capacity_ok is None or capacity_ok(e)):
            counts[len(STAGES)] += 1
    steps = [("candidates", len(evaluations))]
    steps += [(name, counts[i]) for i, (name, _) in enumerate(STAGES)]
    steps.append(("have free capacity", counts[len(STAGES)]))
    return steps

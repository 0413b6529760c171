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
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from .inventory import gib

__all__ = [
    "ENGINE_SUPPORT",
    "STAGES",
    "Evaluation",
    "Rejection",
    "Requirements",
    "check_all",
    "does_not_fit",
    "engine_unsupported",
    "funnel",
    "kv_cache_dtype_not_allowed",
    "offload_to_disk_not_allowed",
    "pool_not_allowed",
    "precision_not_allowed",
    "quality_too_low",
    "tier_not_allowed",
    "too_slow",
    "unsupported_precision",
]


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why one candidate cannot be used."""

    code: str
    """A ``RejectionCode``."""
    message: str
    resolvable: bool = False
    """True when it may pass later with the same spec (memory frees up, a pool drains)."""


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


def pool_not_allowed(e: Evaluation, r: Requirements) -> Rejection | None:
    pool = e.candidate.pool.name
    if r.pools and pool not in r.pools:
        return Rejection(
            "PoolNotAllowed", f"pool {pool} not in spec.placement.pools {_listed(r.pools)}"
        )
    return None


def tier_not_allowed(e: Evaluation, r: Requirements) -> Rejection | None:
    tier = e.candidate.tier
    if tier not in r.tiers:
        return Rejection(
            "TierNotAllowed", f"tier {tier} not in spec.placement.tiers {_listed(r.tiers)}"
        )
    return None


def precision_not_allowed(e: Evaluation, r: Requirements) -> Rejection | None:
    precision = e.candidate.precision.id
    if r.precisions is not None and precision not in r.precisions:
        return Rejection(
            "PrecisionNotAllowed",
            f"{precision} not in spec.quality.precisions {_listed(r.precisions)}",
        )
    return None


def kv_cache_dtype_not_allowed(e: Evaluation, r: Requirements) -> Rejection | None:
    kv = e.candidate.kv.id
    if r.kv_cache_dtypes is not None and kv not in r.kv_cache_dtypes:
        return Rejection(
            "KvCacheDtypeNotAllowed",
            f"{kv} KV cache not in spec.quality.kvCacheDtypes {_listed(r.kv_cache_dtypes)}",
        )
    return None


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


def unsupported_precision(e: Evaluation, r: Requirements) -> Rejection | None:
    from .precision import unsupported

    c = e.candidate
    if c.pool.gpu is None:
        return None  # the cpu tier's formats are fixed by candidates.CPU_PRECISIONS
    why = unsupported(c.precision, c.pool.gpu) or unsupported(c.kv, c.pool.gpu)
    return Rejection("UnsupportedPrecision", why) if why else None


def engine_unsupported(e: Evaluation, r: Requirements) -> Rejection | None:
    support = ENGINE_SUPPORT.get(r.engine)
    if support is None:
        return None
    c = e.candidate
    if c.tier not in support["tiers"]:
        return Rejection("EngineUnsupported", f"{r.engine} cannot serve the {c.tier} tier")
    if c.precision.id not in support["precisions"]:
        return Rejection("EngineUnsupported", f"{r.engine} cannot serve {c.precision.id} weights")
    if c.kv.id not in support["kv"]:
        return Rejection("EngineUnsupported", f"{r.engine} cannot keep a {c.kv.id} KV cache")
    native = c.variant.native
    if native is not None and c.precision.id != native:
        return Rejection(
            "EngineUnsupported", f"the checkpoint is published in {native}; it serves as {native}"
        )
    if native is None and c.precision.id not in support["in_flight"]:
        return Rejection(
            "EngineUnsupported",
            f"{r.engine} cannot make {c.precision.id} from a 16-bit checkpoint while loading; "
            f"add a variant whose source is a {c.precision.id} checkpoint",
        )
    return None


# --- quality ---------------------------------------------------------------------------------


def quality_too_low(e: Evaluation, r: Requirements) -> Rejection | None:
    if e.quality_loss <= r.max_loss + 1e-12:
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


def _host_share(e: Evaluation) -> tuple[int, int]:
    """Host memory and local disk the replica may use: its GPUs' share of the node."""
    pool = e.candidate.pool
    if pool.cpu_only or not pool.gpus_per_node:
        return pool.host_bytes_per_node, 0
    share = e.candidate.gpus / pool.gpus_per_node
    return int(pool.host_bytes_per_node * share), int(pool.disk_bytes_per_node * share)


def does_not_fit(e: Evaluation, r: Requirements) -> Rejection | None:
    c, pool = e.candidate, e.candidate.pool
    source = "measured free" if pool.measured else "usable"
    if c.tier == "cpu":
        host, _ = _host_share(e)
        if e.host_bytes > host:
            where = pool.instance.id if pool.instance is not None else pool.name
            return Rejection(
                "DoesNotFit", f"needs {gib(e.host_bytes)} > {gib(host)} host memory on {where}"
            )
        return None
    per_gpu = e.memory.total_bytes_per_gpu
    usable = pool.usable_bytes_per_gpu
    if c.tier == "gpu":
        if per_gpu > usable:
            return Rejection(
                "DoesNotFit",
                f"needs {gib(per_gpu)} per GPU > {gib(usable)} {source} on {pool.gpu_name}",
                resolvable=pool.measured,
            )
        return None
    # offload
    if e.offload_bytes_per_gpu is None:
        rest = per_gpu - e.memory.weights_bytes_per_gpu
        return Rejection(
            "DoesNotFit",
            f"needs {gib(rest)} per GPU without weights > {gib(usable)} {source} "
            f"on {pool.gpu_name}",
            resolvable=pool.measured,
        )
    host, disk = _host_share(e)
    budget = host + (disk if r.offload_to_disk else 0)
    if e.host_bytes > budget:
        what = "host memory" + (" and local disk" if r.offload_to_disk else "")
        return Rejection(
            "DoesNotFit",
            f"offloads {gib(e.host_bytes)} > {gib(budget)} {what} for {c.gpus} of "
            f"{pool.gpus_per_node} GPUs",
        )
    return None


def offload_to_disk_not_allowed(e: Evaluation, r: Requirements) -> Rejection | None:
    if e.candidate.tier != "offload" or r.offload_to_disk or e.offload_bytes_per_gpu is None:
        return None
    host, disk = _host_share(e)
    if host < e.host_bytes <= host + disk:
        return Rejection(
            "OffloadToDiskNotAllowed",
            f"offloads {gib(e.host_bytes)}, {gib(e.host_bytes - host)} more than host memory "
            "holds, onto local disk; spec.placement.offloadToDisk is false",
        )
    return None


# --- speed -----------------------------------------------------------------------------------


def too_slow(e: Evaluation, r: Requirements) -> Rejection | None:
    if e.speed is None:
        return None
    misses = []
    if r.ttft_ms is not None and e.speed.time_to_first_token_ms > r.ttft_ms:
        misses.append(f"TTFT {e.speed.time_to_first_token_ms:.0f} ms > SLO {r.ttft_ms:g} ms")
    if r.tpot_ms is not None and e.speed.time_per_output_token_ms > r.tpot_ms:
        misses.append(f"TPOT {e.speed.time_per_output_token_ms:.1f} ms > SLO {r.tpot_ms:g} ms")
    if r.max_replicas is not None and e.replicas_for_demand > r.max_replicas:
        misses.append(
            f"needs {e.replicas_for_demand} replicas for {r.demand_tokens_per_second:g} tok/s "
            f"> maxReplicas {r.max_replicas}"
        )
    return Rejection("TooSlow", "; ".join(misses)) if misses else None


# --- all of them -----------------------------------------------------------------------------

STAGES: tuple[tuple[str, tuple[Check, ...]], ...] = (
    (
        "allowed by the spec",
        (pool_not_allowed, tier_not_allowed, precision_not_allowed, kv_cache_dtype_not_allowed),
    ),
    ("supported by hardware and engine", (unsupported_precision, engine_unsupported)),
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

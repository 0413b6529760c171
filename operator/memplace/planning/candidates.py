"""Candidates: every way the planner could serve a deployment, before it judges any of them.

variant × precision × KV-cache dtype × tier × pool × GPUs per replica, where

* variant: the model itself (``None``) and each ``spec.model.variants`` entry;
* precision / KV dtype: every one the catalogue knows (``precision.ordered_precisions``), fp16
  only on GPUs without bf16 (T4): elsewhere it is bf16 with fewer exponent bits at the same
  size and speed, a duplicate;
* tier: ``gpu`` and ``offload`` on GPU pools, ``cpu`` on CPU-only pools (a CPU replica on a
  GPU node would strand the node's GPUs); the cpu tier serves bf16, int8 and int4 weights with
  a bf16 KV cache (llama.cpp's Q8_0 / Q4_K and vLLM's CPU backend);
* GPUs per replica: 1, 2, 4, 8 up to the pool's GPUs per node (tensor parallelism stays
  inside one node).

Nothing here is filtered by the spec: disallowed precisions, tiers and pools stay candidates
so that ``feasibility`` can say which rule excluded them.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "CPU_KV_DTYPES",
    "CPU_PRECISIONS",
    "GPU_COUNTS",
    "Candidate",
    "Variant",
    "enumerate_candidates",
]

GPU_COUNTS = (1, 2, 4, 8)
CPU_PRECISIONS = ("bf16", "int8", "int4")
CPU_KV_DTYPES = ("bf16",)


@dataclass(frozen=True)
class Variant:
    """The model or one of its variants, sized."""

    name: str | None
    """None = the model itself."""
    architecture: Any
    quality_loss: float = 0.0
    native: str | None = None
    """The precision the checkpoint is published in, when it is not 16-bit (gpt-oss: mxfp4)."""


@dataclass(frozen=True, slots=True)
class Candidate:
    """One way to serve the deployment."""

    variant: Variant
    precision: Any
    """catalogue ``Precision``."""
    kv: Any
    """catalogue ``KvDtype``."""
    tier: str
    pool: Any
    """inventory ``Pool``."""
    gpus: int
    """GPUs per replica; 0 on the cpu tier."""

    def describe(self) -> str:
        where = f"{self.pool.name}" + (f" {self.gpus}×{self.pool.gpu_name}" if self.gpus else "")
        variant = f"{self.variant.name} " if self.variant.name else ""
        return f"{variant}{self.precision.id}/{self.kv.id} {self.tier} on {where}"


def _gpu_counts(pool: Any) -> tuple[int, ...]:
    return tuple(g for g in GPU_COUNTS if g <= max(pool.gpus_per_node, 0))


def enumerate_candidates(
    variants: Sequence[Variant], pools: Sequence[Any], catalogue: Any
) -> Iterator[Candidate]:
    """Every candidate, in a fixed order (variant, pool, tier, precision, KV dtype, GPUs)."""
    from .precision import ordered_precisions

    precisions = ordered_precisions(catalogue)
    kvs = [catalogue.kv_dtypes[k] for k in ("bf16", "fp16", "fp8") if k in catalogue.kv_dtypes]
    kvs += [v for k, v in sorted(catalogue.kv_dtypes.items()) if k not in ("bf16", "fp16", "fp8")]
    cpu_precisions = [p for p in precisions if p.id in CPU_PRECISIONS]
    cpu_kvs = [k for k in kvs if k.id in CPU_KV_DTYPES]
    for variant in variants:
        for pool in pools:
            if pool.cpu_only:
                for precision in cpu_precisions:
                    for kv in cpu_kvs:
                        yield Candidate(variant, precision, kv, "cpu", pool, 0)
                continue
            has_bf16 = "bf16" in pool.gpu.dense_tflops
            counts = _gpu_counts(pool)
            for tier in ("gpu", "offload"):
                for precision in precisions:
                    if precision.id == "fp16" and has_bf16:
                        continue
                    for kv in kvs:
                        if kv.id == "fp16" and has_bf16:
                            continue
                        for gpus in counts:
                            yield Candidate(variant, precision, kv, tier, pool, gpus)

"""Which GPU runs which precision, and what a precision costs in quality.

Checks are named for their rejection (STYLE.md): `unsupported()` returns the reason a GPU cannot
run a format, or None. A "no" here is permanent for that GPU model (more memory will not give an
A100 fp8 Tensor Cores), unlike the memory checks elsewhere.
"""

from __future__ import annotations

from memplace.planning.catalogue import Catalogue, Gpu, KvDtype, Precision

__all__ = [
    "PRECISION_ORDER",
    "compute_key",
    "kv_unsupported",
    "ordered_precisions",
    "quality_loss",
    "unsupported",
]

PRECISION_ORDER: tuple[str, ...] = ("bf16", "fp16", "fp8", "int8", "int4", "nvfp4", "mxfp4")
"""Most bits first, so enumeration (and ties) come out the same on every run."""


def _cc(cc: tuple[int, int]) -> str:
    return f"{cc[0]}.{cc[1]}"


def _needs(what: str, need: tuple[int, int], gpu: Gpu) -> str | None:
    if gpu.compute_capability >= need:
        return None
    return (
        f"{what} needs compute capability >= {_cc(need)}; "
        f"{gpu.id} has {_cc(gpu.compute_capability)}"
    )


def unsupported(precision: Precision | KvDtype, gpu: Gpu) -> str | None:
    """Why `gpu` cannot run `precision` (weights or KV cache), or None when it can.

    >>> unsupported(fp8, a100)   # doctest: +SKIP
    'fp8 needs compute capability >= 8.9; A100-SXM4-80GB has 8.0'
    """
    kind = "KV cache" if isinstance(precision, KvDtype) else "weights"
    return _needs(f"{precision.id} {kind}", precision.min_compute_capability, gpu)


def kv_unsupported(kv: KvDtype, gpu: Gpu) -> str | None:
    """Why `gpu` cannot hold its KV cache in `kv`, or None (same rule as `unsupported`)."""
    return unsupported(kv, gpu)


def compute_key(precision: Precision, gpu: Gpu) -> str | None:
    """The `dense_tflops` key the matmuls run at on this GPU, or None if it has none.

    Weight-only formats compute in bf16; a GPU without bf16 (T4) runs them in fp16, which is
    what vLLM's AWQ/GPTQ kernels do there.
    """
    for key in (precision.compute, "fp16") if precision.compute == "bf16" else (precision.compute,):
        if key in gpu.dense_tflops:
            return key
    return None


def quality_loss(
    precision: Precision,
    kv: KvDtype,
    variant_loss: float = 0.0,
    *,
    native: str | None = None,
) -> float:
    """Combined relative quality loss of a variant served in `precision` with a `kv` cache.

    Losses add: 0.02 (int4) + 0.005 (fp8 KV) + 0.03 (distilled variant) = 0.055. Adding is
    conservative: errors from weight and KV quantization partly overlap, so the true combined
    loss is usually below the sum, never (in the studies cited in precisions.yaml) above it.
    `native` names the precision the checkpoint was published in (gpt-oss: "mxfp4"); serving it
    in that precision costs nothing, since its published scores already include it.
    """
    weights = 0.0 if native is not None and precision.id == native else precision.quality_loss
    return weights + kv.quality_loss + variant_loss


def ordered_precisions(catalogue: Catalogue) -> tuple[Precision, ...]:
    """The catalogue's precisions in `PRECISION_ORDER`, then any others by id."""
    known = [catalogue.precisions[p] for p in PRECISION_ORDER if p in catalogue.precisions]
    rest = sorted(set(catalogue.precisions) - set(PRECISION_ORDER))
    return (*known, *(catalogue.precisions[p] for p in rest))

"""Learned corrections to the estimates: the PerformanceProfile estimator, and applying it.

The roofline (``latency``) and the memory model (``memory``) rest on a few efficiency constants
(``DECODE_BANDWIDTH_EFFICIENCY`` 0.75, ``GPU_COMPUTE_EFFICIENCY`` 0.5, a fixed runtime overhead)
that no single figure makes right for every (architecture, GPU, precision, KV dtype, engine, GPUs
per replica, tier). The running pods measure what the estimate predicted; the ratio measured ÷
predicted, learned per such key (a ``PerformanceProfile``), is the correction.

Interface (all pure; timestamps are RFC 3339 strings the caller supplies):

- the key: ``fingerprint(architecture)``; ``ProfileKey`` (``.name`` is the object's name,
  ``.spec(model)`` the spec to create it with, ``ProfileKey.of(spec)`` the way back);
  ``ProfileKey.for_placement(placement, engine, fingerprint)`` for a running deployment, whose
  fingerprint the planner writes to ``status.estimate.calibration.architecture``;
- learning: ``learn(previous, ratio, at) -> LearnedFactor | None`` for one figure, ``record(status,
  at, decode=…, prefill=…, memory=…) -> PerformanceProfileStatus`` for a profile; a ratio that is
  NaN, infinite or ≤ 0 is ignored (the state comes back unchanged);
- what the measurements are divided by: ``predicted(estimate)``, the estimate *before* any factor
  (else each window would compound the last one's correction); ``observe(status, estimate, at,
  tpot_ms=…, ttft_ms=…, memory_bytes_per_gpu=…)`` divides and records in one step;
- using it: ``usable(factor)`` (None below ``MIN_SAMPLES``); ``Calibration(profiles)``
  → ``factors(key)``; the planner calls ``calibrate_memory`` / ``calibrate_speed``.

The estimator: the median of the log-ratios of the last ``RECENT_RATIOS_KEPT`` (15) samples,
clamped to [``FACTOR_MIN``, ``FACTOR_MAX``]. A median ignores a minority of outliers outright (one
1000× sample among five moves it by at most one rank), forgets a changed engine within half a
window (8 samples), and needs no tuning constant, unlike a Huber update's scale. The log makes a
2× and a ½× error symmetric (for an odd window the median of logs is the log of the median).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, fields
from typing import Any

from memplace.api import (
    RECENT_RATIOS_KEPT,
    CalibrationStatus,
    EstimateStatus,
    LearnedFactor,
    PerformanceProfile,
    PerformanceProfileSpec,
    PerformanceProfileStatus,
    PlacementStatus,
)

from .architecture import Architecture
from .latency import SpeedEstimate
from .memory import MemoryEstimate

__all__ = [
    "FACTOR_MAX",
    "FACTOR_MIN",
    "MIN_SAMPLES",
    "CalibratedMemory",
    "CalibratedSpeed",
    "Calibration",
    "Factors",
    "ProfileKey",
    "calibrate_memory",
    "calibrate_speed",
    "calibrated_note",
    "factors_of",
    "fingerprint",
    "learn",
    "observe",
    "predicted",
    "recalibrated",
    "record",
    "usable",
]

MIN_SAMPLES = 5
"""Samples a factor needs before the planner uses it: with five, the median already ignores two
wild ones, and at one sample per 5-minute window it is 25 minutes of serving, shorter than the
default ``--min-move-interval`` (30 min), so a move waits for the rate limit, not for the
estimator. Feed one sample per *non-overlapping* window: samples of overlapping windows count
one stretch of serving several times, and five of them are not five observations."""

FACTOR_MIN = 1 / 3
FACTOR_MAX = 3.0
"""Bounds on a factor: a policy, not a measurement. The roofline assumes 75 % of peak HBM
bandwidth for decode (``latency.DECODE_BANDWIDTH_EFFICIENCY``, from the open-source-ai.tech
glossary "model bandwidth utilization": 70–85 % for vLLM / TensorRT-LLM, lower for portable
runtimes) and 50 % of dense peak for prefill. A decode factor of 3 means 25 % of peak, below what
those sources report for a working GPU engine, even at batch 1, where a study of 44
configurations of 7–8B models on H100, A100, L40S and L4 found the achieved fraction falling as
peak bandwidth rises (hackobar.com summary of "Memory-bound but not bandwidth-limited", Hugging
Face papers, May 2026); a factor of 1/3 means 225 % of peak, which no engine reaches. A ratio
beyond the bounds is not an efficiency the estimate got wrong but a measurement of something
else (requests queueing behind a saturated replica, a metric in the wrong unit, a throttled
GPU): the factor then corrects as far as an efficiency could, and the rest shows as estimate
error in ``status.measured``. The same bounds serve memory, whose estimate misses by far less."""


# --- the key ---------------------------------------------------------------------------------

_FINGERPRINT_FIELDS = (
    "model_type",
    "layers",
    "hidden_size",
    "vocab_size",
    "kv_layers",
    "window_layers",
    "sliding_window",
    "kv_values_per_token",
    "kv_heads",
    "mla",
    "attention_flops_per_context_token",
    "state_values_per_sequence",
    "state_bytes_per_value",
    "experts",
    "experts_per_token",
    "moe_layers",
    "max_intermediate_size",
)
_FINGERPRINT_SCHEME = 1
"""Bumped when the fields hashed change, so that old profiles stop matching rather than match
the wrong architecture."""


def fingerprint(arch: Architecture) -> str:
    """12 hex digits identifying an architecture by its shape: the fields above and the
    parameter counts of each tensor group. The display name and ``notes`` stay out, so two
    deployments of one checkpoint (or of two fine-tunes of one base) share a profile; a distilled
    variant, being another shape, gets its own. 48 bits: a collision among a cluster's few hundred
    architectures has odds below 1 in 10⁹."""
    shape: dict[str, Any] = {f: getattr(arch, f) for f in _FINGERPRINT_FIELDS}
    shape["groups"] = sorted((g.category, g.parameters, g.active_parameters) for g in arch.groups)
    shape["scheme"] = _FINGERPRINT_SCHEME
    text = json.dumps(shape, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


_NOT_IN_A_NAME = re.compile(r"[^a-z0-9-]+")


@dataclass(frozen=True)
class ProfileKey:
    """What one PerformanceProfile describes (its spec without the display fields)."""

    architecture: str
    gpu_model: str
    precision: str
    kv_cache_dtype: str
    engine: str
    gpus_per_replica: int
    tier: str = "gpu"

    @classmethod
    def of(cls, spec: PerformanceProfileSpec) -> ProfileKey:
        return cls(
            spec.architecture,
            spec.gpu_model,
            spec.precision,
            spec.kv_cache_dtype,
            spec.engine,
            spec.gpus_per_replica,
            spec.tier,
        )

    @classmethod
    def for_placement(
        cls, placement: PlacementStatus, engine: str, architecture: str
    ) -> ProfileKey | None:
        """The key of a running placement (None on the CPU tier, which is not calibrated)."""
        if placement.tier == "cpu" or not placement.gpu_model:
            return None
        return cls(
            architecture,
            placement.gpu_model,
            placement.precision,
            placement.kv_cache_dtype,
            engine,
            placement.gpus_per_replica,
            placement.tier,
        )

    @property
    def name(self) -> str:
        """The object's name, a DNS-1123 label derived from the key alone, e.g.
        ``3f2a9c01b7de-a100-sxm4-80gb-int4-kvfp8-vllm-x1`` (``-offload`` on that tier). A name
        too long for 63 characters keeps its readable start and ends in a hash of the key."""
        gpu = _NOT_IN_A_NAME.sub("-", self.gpu_model.lower()).strip("-")
        parts = [
            self.architecture,
            gpu,
            self.precision,
            f"kv{self.kv_cache_dtype}",
            self.engine,
            f"x{self.gpus_per_replica}",
        ]
        if self.tier != "gpu":
            parts.append(self.tier)
        name = re.sub("-+", "-", "-".join(parts))
        if len(name) <= 63:
            return name
        digest = hashlib.sha256(repr(self).encode()).hexdigest()[:8]
        return f"{name[:54].rstrip('-')}-{digest}"

    def spec(self, model: str | None = None) -> PerformanceProfileSpec:
        """The spec to create this key's profile with; ``model`` is for people only."""
        return PerformanceProfileSpec(
            architecture=self.architecture,
            gpu_model=self.gpu_model,
            precision=self.precision,  # type: ignore[arg-type]
            kv_cache_dtype=self.kv_cache_dtype,  # type: ignore[arg-type]
            engine=self.engine,  # type: ignore[arg-type]
            gpus_per_replica=self.gpus_per_replica,
            tier=self.tier,  # type: ignore[arg-type]
            model=model,
        )


# --- learning --------------------------------------------------------------------------------


def _valid(ratio: Any) -> bool:
    return (
        isinstance(ratio, (int, float))
        and not isinstance(ratio, bool)
        and math.isfinite(ratio)
        and ratio > 0
    )


def _clamped(value: float) -> float:
    return min(FACTOR_MAX, max(FACTOR_MIN, value))


def _median_of_logs(ratios: Iterable[float]) -> float:
    logs = sorted(math.log(r) for r in ratios)
    mid = len(logs) // 2
    middle = logs[mid] if len(logs) % 2 else (logs[mid - 1] + logs[mid]) / 2
    return math.exp(middle)


def learn(previous: LearnedFactor | None, ratio: float, at: str) -> LearnedFactor | None:
    """``previous`` with one more measured ÷ predicted ``ratio``, measured at ``at``.

    An invalid ratio (NaN, ±inf, ≤ 0, not a number) is ignored: ``previous`` comes back as it
    was (None stays None). The window keeps the last ``RECENT_RATIOS_KEPT`` ratios as measured;
    only the factor is clamped, so a window that recovers is not stuck at the bound."""
    if not _valid(ratio):
        return previous
    recent = [*(previous.recent_ratios if previous is not None else ()), float(ratio)]
    recent = recent[-RECENT_RATIOS_KEPT:]
    samples = (previous.samples if previous is not None else 0) + 1
    return LearnedFactor(
        factor=round(_clamped(_median_of_logs(recent)), 4),
        samples=samples,
        recent_ratios=[round(r, 6) for r in recent],
        last_updated=at,
    )


def record(
    status: PerformanceProfileStatus | None,
    at: str,
    *,
    decode: float | None = None,
    prefill: float | None = None,
    memory: float | None = None,
) -> PerformanceProfileStatus:
    """A profile's status with one window's ratios learned (a None ratio leaves its factor)."""
    status = status or PerformanceProfileStatus()
    update: dict[str, LearnedFactor | None] = {}
    for figure, ratio in (("decode", decode), ("prefill", prefill), ("memory", memory)):
        if ratio is not None:
            update[figure] = learn(getattr(status, figure), ratio, at)
    return status.model_copy(update=update)


def observe(
    status: PerformanceProfileStatus | None,
    estimate: EstimateStatus,
    at: str,
    *,
    tpot_ms: float | None = None,
    ttft_ms: float | None = None,
    memory_bytes_per_gpu: float | None = None,
) -> PerformanceProfileStatus:
    """``record`` one window's measurements of the placement ``estimate`` describes: each divided
    by the uncalibrated prediction (``predicted``). What the measurement loop calls; a figure not
    measured (None), or predicted as 0 or not at all, is left as it was."""
    expected = predicted(estimate)

    def ratio(measured: float | None, figure: str) -> float | None:
        base = expected[figure]
        if measured is None or not base:
            return None
        return measured / base

    return record(
        status,
        at,
        decode=ratio(tpot_ms, "decode"),
        prefill=ratio(ttft_ms, "prefill"),
        memory=ratio(memory_bytes_per_gpu, "memory"),
    )


def usable(factor: LearnedFactor | None) -> float | None:
    """The factor the planner may apply, or None while it has fewer than ``MIN_SAMPLES``."""
    if factor is None or factor.samples < MIN_SAMPLES:
        return None
    return _clamped(factor.factor)


def predicted(estimate: EstimateStatus) -> dict[str, float | None]:
    """The figures measurements are to be divided by: ``estimate`` without the factors applied to
    it (``estimate.calibration``), so that what is learned is always measured ÷ roofline.

    Keys: ``decode`` (TPOT ms), ``prefill`` (TTFT ms), ``memory`` (bytes per GPU: compare the
    GPU memory a replica's processes use ÷ its GPUs, without what the engine preallocates for
    KV cache beyond the estimate, e.g. vLLM's ``--gpu-memory-utilization`` share)."""
    applied = estimate.calibration

    def undo(value: float | None, factor: float | None) -> float | None:
        return None if value is None else value / (factor or 1.0)

    return {
        "decode": undo(estimate.time_per_output_token_ms, applied and applied.decode_factor),
        "prefill": undo(estimate.time_to_first_token_ms, applied and applied.prefill_factor),
        "memory": undo(estimate.total_bytes_per_gpu, applied and applied.memory_factor),
    }


def recalibrated(estimate: EstimateStatus, f: Factors) -> EstimateStatus:
    """A running placement's ``estimate`` as if planned with ``f`` now: its factors undone
    (``predicted``), ``f``'s applied to TTFT, TPOT and throughput, and ``calibration`` saying so.
    Memory figures are left as they were planned (they size the reservation, which only a
    re-plan changes). What ``replan.should_replan`` reads."""
    raw = predicted(estimate)
    old = estimate.calibration
    decode, prefill = f.decode or 1.0, f.prefill or 1.0
    tps = estimate.output_tokens_per_second_per_replica
    if tps is not None:
        tps = tps * ((old.decode_factor or 1.0) if old else 1.0) / decode

    def scaled(value: float | None, factor: float, digits: int) -> float | None:
        return None if value is None else round(value * factor, digits)

    return estimate.model_copy(
        update={
            "time_per_output_token_ms": scaled(raw["decode"], decode, 2),
            "time_to_first_token_ms": scaled(raw["prefill"], prefill, 1),
            "output_tokens_per_second_per_replica": None if tps is None else round(tps, 1),
            "calibration": CalibrationStatus(
                profile=f.profile,
                architecture=old.architecture if old else "",
                samples=f.samples,
                decode_factor=f.decode,
                prefill_factor=f.prefill,
                memory_factor=old.memory_factor if old else None,
                message=f.message,
            ),
        }
    )


# --- using it --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Factors:
    """The factors one profile lets the planner apply now (None: not enough samples yet)."""

    profile: str
    decode: float | None = None
    prefill: float | None = None
    memory: float | None = None
    samples: int = 0
    """The fewest samples behind an applied factor (0: none applied)."""
    most_samples: int = 0
    """The most samples any of the profile's figures has, applied or not (for the message)."""

    @property
    def applied(self) -> bool:
        return any(f is not None for f in (self.decode, self.prefill, self.memory))

    @property
    def message(self) -> str:
        if self.applied:
            return f"calibrated from {self.samples} samples (PerformanceProfile {self.profile})"
        return (
            f"not calibrated: {self.most_samples} of {MIN_SAMPLES} samples "
            f"(PerformanceProfile {self.profile})"
        )


class Calibration:
    """Every profile's usable factors by key: what the planner reads (``DeploymentRequest``).

    Built from PerformanceProfile objects; a profile without status, or with a figure under
    ``MIN_SAMPLES``, applies nothing for that figure. Two profiles with the same key (a user
    applied one under another name): the one with more decode samples wins, then the first
    name in order."""

    def __init__(self, profiles: Iterable[PerformanceProfile] = ()) -> None:
        chosen: dict[ProfileKey, PerformanceProfile] = {}
        for p in sorted(profiles, key=_rank):
            chosen.setdefault(ProfileKey.of(p.spec), p)
        self._factors = {key: _factors_of(p) for key, p in chosen.items()}
        self._by_architecture: dict[tuple[str, str], tuple[tuple[ProfileKey, Factors], ...]] = {}
        for key, f in sorted(self._factors.items(), key=lambda kv: repr(kv[0])):
            if f.applied:
                group = (key.architecture, key.engine)
                self._by_architecture[group] = (*self._by_architecture.get(group, ()), (key, f))

    def __len__(self) -> int:
        return len(self._factors)

    def factors(self, key: ProfileKey) -> Factors:
        """What ``key``'s profile lets the planner apply (no profile: nothing)."""
        found = self._factors.get(key)
        return found if found is not None else Factors(profile=key.name)

    def relevant(self, architectures: Iterable[str], engine: str) -> tuple:
        """The applicable (key, factors) for these fingerprints and engine: hashable, for the
        planner's memo keys (a memoised ranking is reused only under the same factors)."""
        return tuple(
            item
            for a in sorted(set(architectures))
            for item in self._by_architecture.get((a, engine), ())
        )


def _rank(p: PerformanceProfile) -> tuple[int, str]:
    """Most decode samples first, then by name."""
    decode = p.status.decode if p.status is not None else None
    return (-(decode.samples if decode is not None else 0), p.metadata.name or "")


def _factors_of(p: PerformanceProfile) -> Factors:
    name = p.metadata.name or ProfileKey.of(p.spec).name
    s = p.status or PerformanceProfileStatus()
    learned = {"decode": s.decode, "prefill": s.prefill, "memory": s.memory}
    used = {figure: usable(f) for figure, f in learned.items()}
    counts = [f.samples for figure, f in learned.items() if f is not None and used[figure]]
    return Factors(
        profile=name,
        samples=min(counts) if counts else 0,
        most_samples=max((f.samples for f in learned.values() if f is not None), default=0),
        **used,
    )


@dataclass(frozen=True)
class CalibratedMemory(MemoryEstimate):
    """A memory estimate with a learned factor applied; ``factors`` says which."""

    factors: Factors | None = None


@dataclass(frozen=True)
class CalibratedSpeed(SpeedEstimate):
    """A speed estimate with learned factors applied; ``factors`` says which."""

    factors: Factors | None = None


def calibrate_memory(mem: MemoryEstimate, f: Factors) -> MemoryEstimate:
    """``mem`` × ``f.memory`` per GPU, the weights kept as computed.

    Weights are counted from the checkpoint or the architecture and rarely wrong; what the
    runtime adds around them (KV cache layout, activations, CUDA graphs, allocator slack) is where
    an estimate misses. So the factor scales the per-GPU total and the difference is spread over
    the other parts in proportion (floored at the weights alone)."""
    if f.memory is None:
        return mem
    rest = mem.total_bytes_per_gpu - mem.weights_bytes_per_gpu
    if rest <= 0:
        return mem
    target = max(0.0, mem.total_bytes_per_gpu * f.memory - mem.weights_bytes_per_gpu)
    scale = target / rest
    return CalibratedMemory(
        **_fields_of(mem)
        | {
            "kv_cache_bytes": round(mem.kv_cache_bytes * scale),
            "state_bytes": round(mem.state_bytes * scale),
            "activation_bytes": round(mem.activation_bytes * scale),
            "overhead_bytes": round(mem.overhead_bytes * scale),
            "kv_cache_bytes_per_gpu": round(mem.kv_cache_bytes_per_gpu * scale),
            "state_bytes_per_gpu": round(mem.state_bytes_per_gpu * scale),
            "activation_bytes_per_gpu": round(mem.activation_bytes_per_gpu * scale),
        },
        factors=f,
    )


def calibrate_speed(speed: SpeedEstimate, f: Factors) -> SpeedEstimate:
    """TPOT × ``f.decode`` (throughput ÷ it: a replica serves concurrency ÷ TPOT tokens per
    second), TTFT × ``f.prefill``."""
    if f.decode is None and f.prefill is None:
        return speed
    decode, prefill = f.decode or 1.0, f.prefill or 1.0
    return CalibratedSpeed(
        **_fields_of(speed)
        | {
            "time_to_first_token_ms": speed.time_to_first_token_ms * prefill,
            "time_per_output_token_ms": speed.time_per_output_token_ms * decode,
            "output_tokens_per_second_per_replica": speed.output_tokens_per_second_per_replica
            / decode,
        },
        factors=f,
    )


def _fields_of(estimate: Any) -> dict[str, Any]:
    return {f.name: getattr(estimate, f.name) for f in fields(estimate) if f.name != "factors"}


def factors_of(estimate: Any) -> Factors | None:
    """The factors a (possibly calibrated) memory or speed estimate carries, or None."""
    return getattr(estimate, "factors", None)


def calibrated_note(estimate: Any) -> str:
    """What a rejection's message adds for a calibrated estimate, e.g.
    ``" (calibrated: TPOT ×2.00, TTFT ×1.10, 12 samples)"``; "" for a plain one."""
    f = factors_of(estimate)
    if f is None:
        return ""
    if isinstance(estimate, MemoryEstimate):
        parts = [f"memory ×{f.memory:.2f}"] if f.memory is not None else []
    else:
        parts = [
            f"{figure} ×{factor:.2f}"
            for figure, factor in (("TPOT", f.decode), ("TTFT", f.prefill))
            if factor is not None
        ]
    return f" (calibrated: {', '.join(parts)}, {f.samples} samples)" if parts else ""

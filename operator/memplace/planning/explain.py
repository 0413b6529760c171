"""Step 6, the plan's words: status fields, alternatives with their reasons, the message.

What the operator writes to ``status`` and ``memplace plan`` prints: the estimate (with the
calibration that applied), the runners-up and the best option per other pool, each with one
reason (``choose.alternative_indices``' rules), the nearest misses, and the one-line message.
Alternatives are frozen values built once per distinct value (``memo``), so a 10,000-plan
batch holds a few thousand of them, not hundreds of thousands.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from typing import Any

from memplace.api import (
    Alternative,
    CalibrationStatus,
    EstimateStatus,
)

from .calibration import (
    Calibration,
    Factors,
    ProfileKey,
    factors_of,
)
from .choose import (
    RUNNERS_UP,
    Full,
    Ranking,
    is_current,
)
from .feasibility import (
    Evaluation,
    Rejection,
    stage_of,
)
from .inventory import GENERIC_CPU
from .memo import ALTERNATIVES_KEPT, ALTERNATIVES_PER_RANKING, _fingerprint, _table
from .memory import weights_source
from .plan_types import DeploymentRequest


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def _calibration_status(
    e: Evaluation, engine: str, calibration: Calibration | None, memo: dict
) -> CalibrationStatus | None:
    """Which profile describes the chosen candidate, and what of it was applied (the same
    factors on memory and speed: both come from that one profile)."""
    c = e.candidate
    if c.tier == "cpu" or c.pool.gpu is None:
        return None
    architecture = _fingerprint(memo, c.variant.architecture)
    key = ProfileKey(architecture, c.pool.gpu.id, c.precision.id, c.kv.id, engine, c.gpus, c.tier)
    applied = factors_of(e.speed) or factors_of(e.memory)
    f = applied or (calibration.factors(key) if calibration is not None else Factors(key.name))
    return CalibrationStatus(
        profile=f.profile,
        architecture=architecture,
        samples=f.samples if applied else 0,
        decode_factor=_round(applied.decode, 4) if applied else None,
        prefill_factor=_round(applied.prefill, 4) if applied else None,
        memory_factor=_round(applied.memory, 4) if applied else None,
        message=f.message,
    )


def _estimate_status(
    e: Evaluation, calibration: CalibrationStatus | None = None, lora_slots: Any = None
) -> EstimateStatus:
    m, s, arch = e.memory, e.speed, e.candidate.variant.architecture
    per_gpu = m.total_bytes if e.candidate.tier == "cpu" else m.total_bytes_per_gpu
    return EstimateStatus(
        parameters=int(arch.total_parameters),
        active_parameters=int(arch.active_parameters),
        weights_bytes=m.weights_bytes,
        weights_source=weights_source(arch, e.candidate.precision, e.candidate.variant.native),
        sizing_notes=list(arch.notes) or None,
        kv_cache_bytes=m.kv_cache_bytes,
        state_bytes=m.state_bytes,
        activation_bytes=m.activation_bytes,
        adapter_bytes=m.adapter_bytes or None,
        adapter_host_bytes=(lora_slots.host_bytes or None) if lora_slots is not None else None,
        overhead_bytes=m.overhead_bytes,
        total_bytes=m.total_bytes,
        total_bytes_per_gpu=per_gpu,
        time_to_first_token_ms=_round(s.time_to_first_token_ms, 1),
        time_per_output_token_ms=_round(s.time_per_output_token_ms, 2),
        output_tokens_per_second_per_replica=_round(s.output_tokens_per_second_per_replica, 1),
        calibration=calibration,
    )


CPU_ASSUMED = "CPU speed assumed: instance type not in the catalogue"


def _assumed_cpu(c: Any) -> bool:
    """Whether ``c`` serves on CPUs sized by the generic constants (``inventory``)."""
    return c.tier == "cpu" and getattr(c.pool.instance, "cpu", None) == GENERIC_CPU


def _alternative(e: Evaluation, code: str, reason: str, memo: dict) -> Alternative:
    """The Alternative for ``e`` losing for ``reason``: one object per distinct value."""
    return _alternative_of(e.candidate, e.replicas, e.per_hour, code, reason, memo)


def _alternative_at(ranking: Ranking, i: int, why: Any, memo: dict) -> Alternative:
    """``_alternative`` for the ranking's i-th candidate, read from its row (no Evaluation)."""
    ranked = ranking.ranked
    at, replicas, _ = ranked.rows[i]
    b = ranked.bases[at]
    return _alternative_of(
        b.candidate, replicas, b.per_replica * replicas, why.code, why.message, memo
    )


def _alternative_of(
    c: Any, replicas: int, per_hour: float, code: str, reason: str, memo: dict
) -> Alternative:
    if _assumed_cpu(c):
        reason = f"{reason} ({CPU_ASSUMED})"
    fields = (
        c.pool.name,
        c.pool.gpu_name,
        c.precision.id,
        c.kv.id,
        c.tier,
        c.variant.name,
        c.gpus,
        replicas,
        round(per_hour, 4),
        reason,
        code,
    )
    built = _table(memo, "alternative", ALTERNATIVES_KEPT)
    found = built.get(fields)
    if found is None:
        found = built.put(
            fields, Alternative(**dict(zip(_ALTERNATIVE_FIELDS, fields, strict=True)))
        )
    return found


_ALTERNATIVE_FIELDS = (
    "pool",
    "gpu_model",
    "precision",
    "kv_cache_dtype",
    "tier",
    "variant",
    "gpus_per_replica",
    "replicas",
    "per_hour",
    "reason",
    "code",
)


def _what(e: Evaluation) -> str:
    c = e.candidate
    variant = f"{c.variant.name} " if c.variant.name else ""
    if c.tier == "cpu":
        node = c.pool.instance.id if c.pool.instance is not None else "CPU"
        where = f"{e.replicas} × {node} node"
        if _assumed_cpu(c):
            where += f" ({CPU_ASSUMED})"
    else:
        where = f"{e.replicas} × {c.gpus} {c.pool.gpu_name}"
        if c.pool.gpu_memory_source:  # which of NVML, the GFD label or the catalogue was fitted
            mib = c.pool.gpu_memory_bytes >> 20
            where += f" ({mib} MiB each, from {c.pool.gpu_memory_source})"
        if c.tier == "offload":
            offloaded = e.offload_bytes_per_gpu * c.gpus / (1 << 30)
            where += f", {offloaded:.1f} GiB of weights per replica in host memory"
    return f"{variant}{c.precision.id} ({c.kv.id} KV) on {c.pool.name}: {where}"


def _unschedulable_message(steps: Sequence[tuple[str, int]]) -> str:
    parts = [f"{steps[0][1]} candidates"]
    for name, count in steps[1:]:
        parts.append(f"{count} {name}")
        if count == 0:  # this check emptied the list
            break
    if steps[0][1] == 0:
        return "no placement: no pool can run this model (no candidates)"
    return f"no placement: {', '.join(parts)}"


def _alternatives(
    ranking: Ranking, chosen: int | None, full: Full, memo: dict
) -> list[Alternative]:
    """``choose.alternative_indices`` as Alternatives, in the same order, with what does not
    change from one deployment of a spec to the next kept on the ranking
    (``memo.ALTERNATIVES_PER_RANKING``): each MoreExpensive by candidate and the chosen one's
    cost, each NoCapacity by candidate and text, and the nearest misses. Which candidates are
    listed is worked out each time (it follows the room)."""
    ranked = ranking.ranked
    winner_cost = None if chosen is None else ranked.per_hour_at(chosen)
    cache = ranking.room_memo

    def build(i: int, why: Any) -> Alternative:
        return _alternative_at(ranking, i, why, memo)

    def more_expensive(i: int) -> Any:
        cost = ranked.per_hour_at(i)
        more = cost - winner_cost  # type: ignore[operator]
        if more < 5e-7:
            return Rejection("MoreExpensive", f"${cost:.2f}/h, same cost; lost the tie-break")
        return Rejection(
            "MoreExpensive", f"${cost:.2f}/h, ${more:.2f}/h more than the chosen placement"
        )

    built = cache.get(("built",))
    if built is None or len(built) > ALTERNATIVES_PER_RANKING:
        built = cache[("built",)] = {}

    def more_expensive_alternative(i: int) -> Alternative:
        alt = built.get((i, winner_cost))
        if alt is None:
            alt = built[(i, winner_cost)] = build(i, more_expensive(i))
        return alt

    def kind(i: int) -> tuple:
        c = ranked.candidate_at(i)
        return (c.pool.name, c.precision.id, c.tier, c.variant.name)

    picked: dict[int, Alternative] = {}
    seen = set() if chosen is None else {kind(chosen)}
    feasible = ranking.feasible
    start = 0 if chosen is None else bisect.bisect_right(feasible, chosen)
    runners = 0
    for i in feasible[start:]:
        if runners >= RUNNERS_UP:
            break
        if i in full:
            continue
        k = kind(i)
        if k not in seen:
            seen.add(k)
            picked[i] = more_expensive_alternative(i)
            runners += 1
    chosen_pool = None if chosen is None else ranked.candidate_at(chosen).pool.name
    for pool, indices in ranking.feasible_by_pool.items():
        if pool == chosen_pool:
            continue
        best = full.first_free(pool, indices)
        if best is None:  # no room in the pool: its first feasible one, NoCapacity
            best = indices[0]
            if best not in picked:
                why = full[best]
                alt = built.get((best, why.message))
                if alt is None:
                    alt = built[(best, why.message)] = build(best, why)
                picked[best] = alt
        elif best not in picked:
            picked[best] = more_expensive_alternative(best)
    nearest = cache.get(("nearest",))
    if nearest is None:
        nearest = cache[("nearest",)] = [
            (pool, i, build(i, min(ranked[i].rejections, key=stage_of)))
            for pool, i in ranking.nearest_by_pool.items()
        ]
    for pool, i, alt in nearest:
        if pool != chosen_pool and i not in picked:
            picked[i] = alt
    return [picked[i] for i in sorted(picked)]


def _passed_over(
    cheaper: Evaluation, chosen: Evaluation, request: DeploymentRequest, memo: dict
) -> Alternative:
    """Why the batch took ``chosen`` over a cheaper candidate that had room: the running
    placement stays (the saving is below the consolidation threshold), or the room is left to
    another deployment of the batch that could not be placed without it."""
    saving = chosen.per_hour - cheaper.per_hour
    share = saving / chosen.per_hour if chosen.per_hour > 0 else 0.0
    if request.current is not None and is_current(chosen.candidate, request.current):
        code = "KeptRunning"
        reason = (
            f"${cheaper.per_hour:.2f}/h, saves ${saving:.2f}/h ({share:.0%}), not more than the "
            "consolidation threshold: the running placement stays"
        )
    else:
        code = "ReservedForBatch"
        reason = (
            f"${cheaper.per_hour:.2f}/h, ${saving:.2f}/h less, but its room places another "
            "deployment of the batch"
        )
    return _alternative(cheaper, code, reason, memo)

"""Should a running deployment be re-planned because its calibrated estimate misses the SLO?

Pure: the caller (the measurement loop) gives the running placement's estimate recalibrated with
the latest factors (``calibration.recalibrated``), the SLO, when the deployment last moved, the
``--min-move-interval`` and the time now; ``should_replan`` answers with a ``Replan`` whose
``reason`` is a stable code and whose ``message`` says why for people (an Event or a condition).

The order of the questions is the order of what would stop a move: nothing to go on (no
calibrated estimate yet), nothing wrong (the SLO is met), then the rate limit. Whether a better
placement exists is the planner's question, asked by the re-plan itself; the re-plan's own move
is also rate-limited where moves are made (``--min-move-interval`` in the operator), so this
check only saves a pointless re-plan.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from memplace.api import EstimateStatus, SloSpec

__all__ = ["Replan", "ReplanReason", "should_replan"]

ReplanReason = Literal["NotCalibrated", "NoSLO", "SLOMet", "MovedRecently", "SLOMissed"]
"""``SLOMissed`` alone means re-plan."""


@dataclass(frozen=True)
class Replan:
    """The answer: re-plan or not, a stable code, and a sentence."""

    replan: bool
    reason: ReplanReason
    message: str
    next_move_at: str | None = None
    """With ``MovedRecently``: when a move is allowed again (RFC 3339)."""


def _parse(text: str, what: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as error:
        raise ValueError(f"{what} {text!r} is not an RFC 3339 timestamp") from error
    if parsed.tzinfo is None:
        raise ValueError(f"{what} {text!r} has no time zone")
    return parsed


def _rfc3339(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


def should_replan(
    estimate: EstimateStatus,
    slo: SloSpec,
    *,
    last_move_at: str | None,
    min_move_interval_s: float,
    now: str,
) -> Replan:
    """Whether ``estimate`` (the running placement's, calibrated) calls for a re-plan now.

    ``last_move_at``: when the deployment last moved (None: never; its first placement is not a
    move). Timestamps are RFC 3339 with a zone; a malformed one is a ``ValueError``."""
    calibration = estimate.calibration
    if calibration is None or calibration.samples == 0:
        why = (
            calibration.message
            if calibration is not None and calibration.message
            else ("no PerformanceProfile applies to this placement")
        )
        return Replan(False, "NotCalibrated", f"estimate not calibrated ({why})")
    if slo.time_per_output_token_ms is None and slo.time_to_first_token_ms is None:
        return Replan(False, "NoSLO", "the spec sets no latency SLO")
    misses = []
    tpot, ttft = estimate.time_per_output_token_ms, estimate.time_to_first_token_ms
    tpot_slo, ttft_slo = slo.time_per_output_token_ms, slo.time_to_first_token_ms
    if tpot_slo is not None and tpot is not None and tpot > tpot_slo:
        misses.append(f"TPOT {tpot:.1f} ms > SLO {tpot_slo:g} ms")
    if ttft_slo is not None and ttft is not None and ttft > ttft_slo:
        misses.append(f"TTFT {ttft:.0f} ms > SLO {ttft_slo:g} ms")
    source = f"calibrated from {calibration.samples} samples"
    if not misses:
        return Replan(False, "SLOMet", f"the calibrated estimate meets the SLO ({source})")
    missed = "; ".join(misses)
    at = _parse(now, "now")
    if last_move_at is not None:
        allowed = _parse(last_move_at, "last move") + timedelta(seconds=min_move_interval_s)
        if at < allowed:
            return Replan(
                False,
                "MovedRecently",
                f"{missed} ({source}), but the last move was at {last_move_at}: the next is "
                f"allowed at {_rfc3339(allowed)} (--min-move-interval {min_move_interval_s:g} s)",
                next_move_at=_rfc3339(allowed),
            )
    return Replan(True, "SLOMissed", f"{missed} ({source}): re-planning")

"""The decision to re-plan a running deployment on its calibrated estimate."""

from __future__ import annotations

import pytest

from memplace.api import CalibrationStatus, EstimateStatus, SloSpec
from memplace.planning.calibration import Factors, predicted, recalibrated
from memplace.planning.replan import should_replan

SLO = SloSpec(time_to_first_token_ms=800, time_per_output_token_ms=60)
NOW = "2026-12-01T22:00:00Z"
HALF_HOUR = 1800.0


def estimate(tpot: float = 50.0, ttft: float = 300.0, samples: int = 7) -> EstimateStatus:
    calibration = CalibrationStatus(
        profile="p",
        architecture="0123456789ab",
        samples=samples,
        decode_factor=2.0 if samples else None,
        message="calibrated from 7 samples" if samples else "not calibrated: 2 of 5 samples",
    )
    return EstimateStatus(
        time_per_output_token_ms=tpot,
        time_to_first_token_ms=ttft,
        output_tokens_per_second_per_replica=160.0,
        calibration=calibration,
    )


def decide(e: EstimateStatus, slo: SloSpec = SLO, last: str | None = None, now: str = NOW):
    return should_replan(e, slo, last_move_at=last, min_move_interval_s=HALF_HOUR, now=now)


def test_a_calibrated_miss_with_no_recent_move_replans() -> None:
    answer = decide(estimate(tpot=71.0))
    assert (answer.replan, answer.reason) == (True, "SLOMissed")
    assert "TPOT 71.0 ms > SLO 60 ms" in answer.message and "7 samples" in answer.message


def test_a_ttft_miss_counts_too() -> None:
    answer = decide(estimate(ttft=900.0))
    assert answer.replan and "TTFT 900 ms > SLO 800 ms" in answer.message


def test_the_slo_met_is_no_reason() -> None:
    assert decide(estimate(tpot=59.9)).reason == "SLOMet"


def test_an_uncalibrated_miss_does_not_replan() -> None:
    answer = decide(estimate(tpot=500.0, samples=0))
    assert (answer.replan, answer.reason) == (False, "NotCalibrated")
    assert "2 of 5 samples" in answer.message
    bare = EstimateStatus(time_per_output_token_ms=500.0)
    assert decide(bare).reason == "NotCalibrated"


def test_no_slo_no_replan() -> None:
    assert decide(estimate(tpot=500.0), slo=SloSpec()).reason == "NoSLO"


@pytest.mark.parametrize(
    ("last", "replan"),
    [
        ("2026-12-01T21:45:00Z", False),  # 15 min ago
        ("2026-12-01T21:30:01Z", False),  # one second short
        ("2026-12-01T21:30:00Z", True),  # exactly the interval
        ("2026-12-01T20:00:00Z", True),
    ],
)
def test_the_rate_limit_holds(last: str, replan: bool) -> None:
    answer = decide(estimate(tpot=90.0), last=last)
    assert answer.replan is replan
    if not replan:
        assert answer.reason == "MovedRecently"
        assert answer.next_move_at is not None and answer.next_move_at in answer.message


def test_a_malformed_timestamp_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="last move 'yesterday' is not an RFC 3339"):
        decide(estimate(tpot=90.0), last="yesterday")


def test_recalibrated_replaces_the_old_factor_with_the_new() -> None:
    old = estimate(tpot=50.0, ttft=300.0)  # decode ×2 applied: roofline TPOT 25 ms
    new = recalibrated(old, Factors(profile="p", decode=3.0, prefill=1.2, samples=9))
    assert new.time_per_output_token_ms == 75.0
    assert new.time_to_first_token_ms == 360.0
    assert new.output_tokens_per_second_per_replica == pytest.approx(160.0 * 2 / 3, abs=0.1)
    assert new.calibration.samples == 9 and new.calibration.decode_factor == 3.0
    assert predicted(new)["decode"] == pytest.approx(predicted(old)["decode"])
    assert decide(new).replan

"""measurement: one window's figures → status.measured, estimateError, SLOMet and drift. Pure;
and measure.measure_one over a stand-in client (the real Prometheus is in the integration
tests)."""

from __future__ import annotations

import datetime

import pytest

from memplace.operator import measure
from memplace.operator.measurement import Measurement, drifted, measured_fields, slo_verdict
from memplace.operator.promql import NoFigure

NOW = datetime.datetime(2026, 1, 1, 12, 0, tzinfo=datetime.UTC)
GIB = 1 << 30
STATUS = {
    "placement": {"pool": "a100", "precision": "fp8", "tier": "gpu", "gpusPerReplica": 2},
    "estimate": {"timeToFirstTokenMs": 200.0, "timePerOutputTokenMs": 20.0,
                 "totalBytesPerGpu": 40 * GIB},
    "measured": {"gpuMemoryBytesPerReplica": 72 * GIB},
}


def window(**figures: float) -> Measurement:
    return Measurement("vllm", "5m", NOW, figures=figures)


def test_measured_fields_are_milliseconds_beside_the_estimate_errors():
    fields = measured_fields(window(ttft_p50=0.25, ttft_p95=0.5, tpot_p50=0.03, tpot_p95=0.045,
                                    output_tokens_per_second=812.345, kv_cache_usage=0.61234,
                                    requests_running=7.5, requests_waiting=0.0), STATUS)
    assert fields["timeToFirstTokenMs"] == {"p50": 250.0, "p95": 500.0}
    assert fields["timePerOutputTokenMs"] == {"p50": 30.0, "p95": 45.0}
    assert fields["outputTokensPerSecond"] == 812.35
    assert fields["kvCacheUsage"] == 0.6123
    assert (fields["requestsRunning"], fields["requestsWaiting"]) == (7.5, 0.0)
    assert fields["window"] == "5m" and fields["observedAt"] == "2026-01-01T12:00:00Z"
    assert fields["source"] == "prometheus vllm"
    # the median against the estimate; memory over both GPUs of a replica: 72 / (40 × 2)
    assert fields["estimateError"] == {"timeToFirstToken": 1.25, "timePerOutputToken": 1.5,
                                       "gpuMemoryPerReplica": 0.9}


def test_without_a_histogram_the_mean_is_compared_and_unmeasured_figures_are_null():
    fields = measured_fields(Measurement("llamacpp", "5m", NOW, figures={"tpot_mean": 0.024}),
                             {"estimate": {"timePerOutputTokenMs": 20.0}})
    assert fields["timePerOutputTokenMs"] == {"mean": 24.0}
    assert fields["timeToFirstTokenMs"] is None and fields["kvCacheUsage"] is None
    assert fields["estimateError"] == {"timePerOutputToken": 1.2}


def test_no_estimate_means_no_estimate_error():
    assert measured_fields(window(tpot_p50=0.03), {})["estimateError"] is None


SLO = {"timeToFirstTokenMs": 800, "timePerOutputTokenMs": 60}


def test_the_slo_is_met_when_every_p95_is_within_it():
    verdict = slo_verdict(window(ttft_p95=0.5, tpot_p95=0.045), SLO)
    assert (verdict.status, verdict.reason) == ("True", "SLOMet")
    assert verdict.message == ("p95 TTFT 500 ms <= SLO 800 ms; p95 TPOT 45 ms <= SLO 60 ms "
                               "over 5m")


def test_one_p95_over_its_slo_misses_it_and_says_which():
    verdict = slo_verdict(window(ttft_p50=0.3, ttft_p95=0.5, tpot_p50=0.05, tpot_p95=0.085), SLO)
    assert (verdict.status, verdict.reason, verdict.missed) == ("False", "SLOMissed", True)
    assert verdict.message.startswith("p95 TPOT 85 ms > SLO 60 ms; p95 TTFT 500 ms")


def test_a_figure_the_engine_cannot_give_is_named_and_the_others_still_count():
    tgi = Measurement("tgi", "5m", NOW, figures={"tpot_p95": 0.04},
                      missing={"ttft_p95": "TGI exports no time-to-first-token metric"})
    verdict = slo_verdict(tgi, SLO)
    assert verdict.status == "True"
    assert "TTFT TGI exports no time-to-first-token metric" in verdict.message


@pytest.mark.parametrize("measurement, slo, kwargs, reason", [
    (None, SLO, {"no_prometheus": "no --prometheus-url is set"}, "NoPrometheus"),
    (None, SLO, {}, "NotMeasured"),
    (Measurement("vllm", "5m", NOW, failure="Prometheus is unreachable"), SLO, {},
     "MeasurementFailed"),
    (window(tpot_p95=0.04), {}, {}, "NoSLO"),
    (Measurement("vllm", "5m", NOW, missing={"tpot_p95": "no requests in the window"}), SLO, {},
     "NoData"),
])
def test_what_cannot_be_judged_is_unknown_with_the_reason(measurement, slo, kwargs, reason):
    verdict = slo_verdict(measurement, slo, **kwargs)
    assert (verdict.status, verdict.reason) == ("Unknown", reason)
    assert not verdict.missed


def test_drift_is_more_than_a_quarter_off_either_way():
    assert drifted({"timePerOutputToken": 1.26, "timeToFirstToken": 0.74,
                    "gpuMemoryPerReplica": 1.25}) == {"timePerOutputToken": 1.26,
                                                      "timeToFirstToken": 0.74}
    assert drifted(None) == {}


class Answers:
    """A stand-in for the Prometheus client: one answer per metric name found in the query."""

    def __init__(self, answers: dict[str, float | NoFigure]):
        self.answers = answers
        self.asked: list[str] = []

    async def query(self, promql: str, at: datetime.datetime | None = None) -> float | NoFigure:
        assert at == NOW  # every query of a window is evaluated at the same instant
        self.asked.append(promql)
        for name, answer in self.answers.items():
            if name in promql:
                return answer
        return NoFigure("no samples in the window")


async def test_measure_one_collects_figures_and_the_reasons_for_the_rest():
    client = Answers({"vllm:inter_token_latency_seconds": 0.04,
                      "vllm:generation_tokens_total": 300.0})
    found = await measure.measure_one(client, "vllm", "ml", ["a-1"], "5m", NOW)
    assert found.failure is None
    assert found.figures == {"tpot_p50": 0.04, "tpot_p95": 0.04, "output_tokens_per_second": 300}
    assert found.missing["ttft_p95"] == "no samples in the window"
    assert all('pod=~"a-1"' in promql for promql in client.asked)


async def test_an_unreachable_server_fails_the_whole_window_with_its_reason():
    down = NoFigure("Prometheus is unreachable at http://p:9090: refused", unreachable=True)
    found = await measure.measure_one(Answers({"vllm": down}), "vllm", "ml", ["a-1"], "5m", NOW)
    assert found.failure == down.reason and not found.figures


async def test_llamacpp_says_why_it_has_no_ttft_and_no_quantiles():
    found = await measure.measure_one(Answers({"llamacpp:tokens_predicted": 0.02}), "llamacpp",
                                      "ml", ["a-1"], "5m", NOW)
    assert found.figures["tpot_mean"] == 0.02
    assert found.missing["ttft_p95"] == "llama.cpp server exports no time-to-first-token metric"
    assert "mean only" in found.missing["tpot_p95"]


@pytest.mark.parametrize("engine, pods, said", [
    ("vllm", [], "no pods"), ("custom", ["a-1"], "no metrics of engine 'custom'"),
])
async def test_no_pods_or_an_unreadable_engine_is_a_failure_not_a_crash(engine, pods, said):
    found = await measure.measure_one(Answers({}), engine, "ml", pods, "5m", NOW)
    assert said in found.failure


def test_slo_at_risk_waits_a_whole_window_and_warns_once_per_streak(monkeypatch):
    from memplace.operator import events
    from memplace.operator.measurement import Verdict

    posted: list[str] = []
    monkeypatch.setattr(events, "slo_at_risk", lambda body, message, window: posted.append(
        message))
    missed = Verdict("False", "SLOMissed", "p95 TPOT 85 ms > SLO 60 ms over 5m")
    met = Verdict("True", "SLOMet", "p95 TPOT 40 ms <= SLO 60 ms over 5m")
    unknown = Verdict("Unknown", "MeasurementFailed", "Prometheus is unreachable")
    watch = measure.Watch()

    def window(verdict: Verdict, minutes: float) -> None:
        measure._post_events(watch, {}, verdict, None, "5m",
                             NOW + datetime.timedelta(minutes=minutes))

    window(missed, 0)
    window(missed, 4.5)  # overlapping windows: the same requests, not yet two windows
    assert posted == []
    window(unknown, 4.8)  # neither ends nor extends the streak
    window(missed, 5)
    assert posted == [missed.message]
    window(missed, 11)
    assert len(posted) == 1  # once per streak
    window(met, 12)
    window(missed, 13)
    window(missed, 18)
    assert len(posted) == 2  # a new streak warns again

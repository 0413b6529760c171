"""The real operator against KMock with a real Prometheus scraping the fake vLLM exporter:
status.measured, SLOMet, SLOAtRisk and EstimateDrift; Prometheus down; no Prometheus at all.
And the closed loop: a PerformanceProfile learned from the pods and used by the next plan, which
moves the serving deployment without a gap.
The Prometheus tests skip, saying why, without a prometheus binary (CI installs it)."""

from __future__ import annotations

import asyncio
from typing import Any

from operator_support import (
    DEPLOYMENTS,
    MDS,
    NS,
    SERVICES,
    add_pool,
    events_for,
    eventually,
    md_url,
    model_deployment,
    status_of,
)
from test_operator_moves import WORKLOAD, owned, selected, set_ready

from memplace.operator.metrics import REGISTRY
from memplace.operator.prometheus import PrometheusConfig
from memplace.planning.calibration import FACTOR_MAX, MIN_SAMPLES

SLO = {"timeToFirstTokenMs": 800, "timePerOutputTokenMs": 60}
POD = "summarizer-7d9f8-abcde"
PROFILES = "memplace.io/v1alpha1/performanceprofiles"


def running_pod(name: str, owner: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": NS, "labels": {
            "app.kubernetes.io/managed-by": "memplace", "memplace.io/deployment": owner,
            "memplace.io/pool": "a100"}},
        "spec": {"containers": [{"name": "engine", "image": "x"}]},
        "status": {"phase": "Running"},
    }


def slo_status(cluster, wanted: str) -> dict[str, Any] | None:
    """The SLOMet condition once its status is ``wanted``."""
    met = slo_met(cluster)
    return met if met.get("status") == wanted else None


def full_reading(cluster) -> dict[str, Any] | None:
    """status.measured once every figure of the fake vLLM has been read into it."""
    measured = status_of(cluster, "summarizer").get("measured") or {}
    tpot, ttft = measured.get("timePerOutputTokenMs") or {}, measured.get("timeToFirstTokenMs")
    errors = measured.get("estimateError") or {}
    complete = {"p50", "p95"} <= tpot.keys() and ttft and "timePerOutputToken" in errors
    return measured if complete and measured.get("outputTokensPerSecond") else None


def slo_met(cluster, name: str = "summarizer") -> dict[str, Any]:
    """The SLOMet condition, or {} while there is none."""
    conditions = status_of(cluster, name).get("conditions") or []
    return next((c for c in conditions if c["type"] == "SLOMet"), {})


async def test_without_prometheus_slomet_is_unknown_and_says_no_url_is_set(cluster, operator):
    await add_pool(cluster, "a100", 30.0)
    await cluster.create(md_url(), model_deployment("summarizer", slo=SLO))
    met = await eventually(lambda: slo_met(cluster), what="SLOMet")
    assert (met["status"], met["reason"]) == ("Unknown", "NoPrometheus")
    assert "no --prometheus-url is set" in met["message"]
    assert status_of(cluster, "summarizer")["phase"] in ("Placed", "Ready")  # as today


async def test_measured_latency_fills_status_and_a_slow_engine_misses_the_slo(
    cluster, start_operator, prometheus, fake_engine
):
    engine = fake_engine()
    engine.set(NS, POD, tpot_seconds=0.03, ttft_seconds=0.2, running=6, waiting=1)
    server = prometheus([engine.target])
    config = PrometheusConfig(url=server.url, timeout_seconds=2)
    async with start_operator(prometheus=config, measure_window="5s"):
        await add_pool(cluster, "a100", 30.0)
        await cluster.create(md_url(), model_deployment("summarizer", slo=SLO))
        await eventually(lambda: status_of(cluster, "summarizer").get("placement"))
        await cluster.create(f"/api/v1/namespaces/{NS}/pods", running_pod(POD, "summarizer"))

        met = await eventually(lambda: slo_status(cluster, "True"), timeout=40, what="SLOMet=True")
        assert "p95 TPOT" in met["message"] and "<= SLO 60 ms" in met["message"]
        measured = await eventually(lambda: full_reading(cluster), what="every figure")
        assert 25 < measured["timePerOutputTokenMs"]["p95"] <= 50  # the (25, 50] ms bucket
        assert 100 < measured["timeToFirstTokenMs"]["p50"] <= 250  # the (100, 250] ms bucket
        assert measured["outputTokensPerSecond"] > 0
        assert measured["requestsRunning"] == 6 and measured["requestsWaiting"] == 1
        assert (measured["window"], measured["source"]) == ("5s", "prometheus vllm")
        estimate = status_of(cluster, "summarizer")["estimate"]
        assert measured["estimateError"]["timePerOutputToken"] == round(
            measured["timePerOutputTokenMs"]["p50"] / estimate["timePerOutputTokenMs"], 3)
        labels = {"namespace": NS, "name": "summarizer", "pool": "a100", "tier": "gpu",
                  "precision": status_of(cluster, "summarizer")["placement"]["precision"]}
        exported = await eventually(lambda: REGISTRY.get_sample_value(
            "memplace_measured_time_per_output_token_seconds", {**labels, "quantile": "0.95"}))
        assert 0.025 < exported <= 0.05
        assert REGISTRY.get_sample_value(
            "memplace_estimate_error_ratio", {**labels, "figure": "timePerOutputToken"}) > 0
        assert not events_for(cluster, "summarizer", "SLOAtRisk")

        engine.set(NS, POD, tpot_seconds=0.2)  # ten times slower than it was
        missed = await eventually(lambda: slo_status(cluster, "False"), timeout=40,
                                  what="SLOMet=False")
        assert missed["reason"] == "SLOMissed" and "> SLO 60 ms" in missed["message"]
        [warning] = await eventually(lambda: events_for(cluster, "summarizer", "SLOAtRisk"),
                                     timeout=20, what="SLOAtRisk")
        assert warning["type"] == "Warning"
        assert "missed in two consecutive 5s windows: p95 TPOT" in warning["message"]
        drift = await eventually(lambda: [
            e for e in events_for(cluster, "summarizer", "EstimateDrift")
            if "timePerOutputToken" in e["message"]], timeout=20, what="EstimateDrift")
        assert drift[0]["type"] == "Normal"
        await asyncio.sleep(6)  # another window over the SLO: the same streak warns once
        assert len(events_for(cluster, "summarizer", "SLOAtRisk")) == 1


async def test_prometheus_down_is_unknown_with_the_reason_and_nothing_is_torn_down(
    cluster, start_operator, prometheus, fake_engine
):
    engine = fake_engine()
    engine.set(NS, POD, tpot_seconds=0.03, ttft_seconds=0.2)
    server = prometheus([engine.target])
    async with start_operator(prometheus=PrometheusConfig(url=server.url, timeout_seconds=2),
                              measure_window="5s"):
        await add_pool(cluster, "a100", 30.0)
        await cluster.create(md_url(), model_deployment("summarizer", slo=SLO))
        await eventually(lambda: status_of(cluster, "summarizer").get("placement"))
        await cluster.create(f"/api/v1/namespaces/{NS}/pods", running_pod(POD, "summarizer"))
        await eventually(lambda: slo_status(cluster, "True"), timeout=40)
        before = status_of(cluster, "summarizer")

        await asyncio.to_thread(server.stop)
        down = await eventually(lambda: slo_status(cluster, "Unknown"), timeout=20,
                                what="SLOMet=Unknown")
        assert down["reason"] == "MeasurementFailed"
        assert f"unreachable at {server.url}" in down["message"]
        after = status_of(cluster, "summarizer")
        assert after["placement"] == before["placement"]
        assert after["measured"]["timePerOutputTokenMs"] == (
            before["measured"]["timePerOutputTokenMs"])  # the last reading stays, with its time
        assert cluster.stored(DEPLOYMENTS, NS, "summarizer") is not None
        assert cluster.stored(MDS, NS, "summarizer") is not None


async def test_a_profile_learned_from_the_pods_is_used_by_the_next_plan(
    cluster, start_operator, prometheus, fake_engine
):
    engine = fake_engine()
    server = prometheus([engine.target])
    async with start_operator(prometheus=PrometheusConfig(url=server.url, timeout_seconds=2),
                              measure_window="3s"):
        await add_pool(cluster, "a100", 30.0)
        await cluster.create(md_url(), model_deployment("summarizer"))
        first = await eventually(lambda: status_of(cluster, "summarizer").get("estimate"))
        first_cost = status_of(cluster, "summarizer")["cost"]["perHour"]
        predicted = first["timePerOutputTokenMs"]
        # An SLO the roofline meets twice over, and pods ten times slower than it predicts.
        await cluster.merge_patch(md_url(name="summarizer"), {"spec": {"slo": {
            "timePerOutputTokenMs": round(predicted * 2, 1)}}})
        await eventually(lambda: status_of(cluster, "summarizer").get("observedGeneration") == 2)
        running = status_of(cluster, "summarizer")["placement"]
        await set_ready(cluster, "summarizer")  # it serves: a re-plan must move without a gap
        await eventually(lambda: status_of(cluster, "summarizer").get("phase") == "Ready")
        engine.set(NS, POD, tpot_seconds=predicted * 10 / 1000)
        await cluster.create(f"/api/v1/namespaces/{NS}/pods", running_pod(POD, "summarizer"))

        profile_name = first["calibration"]["profile"]
        learned = await eventually(
            lambda: ((cluster.stored(PROFILES, None, profile_name) or {}).get("status") or {})
            .get("decode", {}).get("samples", 0) >= MIN_SAMPLES
            and cluster.stored(PROFILES, None, profile_name), timeout=60, what="the profile")
        assert learned["spec"]["engine"] == "vllm"
        assert learned["spec"]["gpusPerReplica"] == running["gpusPerReplica"]
        assert learned["status"]["decode"]["factor"] == FACTOR_MAX  # 10x, clamped

        replanned = await eventually(lambda: [
            e for e in events_for(cluster, "summarizer", "Replanned")
            if "calibrated from" in e["message"]], timeout=30, what="the calibrated re-plan")
        assert "> SLO" in replanned[0]["message"]
        assert f"${first_cost:.2f}/h" in replanned[0]["message"].split(" -> after: ")[0]
        # A move: the successor starts beside the serving Deployment, which serves until the
        # successor is Ready; then the Service switches and the old one goes.
        successor = (await eventually(lambda: status_of(cluster, "summarizer").get("move"),
                                      what="the move"))["toDeployment"]
        assert successor != "summarizer"
        assert selected(cluster, "summarizer") == "summarizer"
        await set_ready(cluster, successor)
        await eventually(lambda: set(owned(cluster, "summarizer")) == {successor},
                         what="the old Deployment gone")
        assert selected(cluster, "summarizer") == successor
        after = await eventually(
            lambda: (s := status_of(cluster, "summarizer")).get("lastMoveTime")
            and not s.get("move") and s, what="the move completed")
        # The order the API server saw: create the successor, switch the Service to it, delete
        # the old one.
        writes = [(r.method, r.resource.plural, r.name or _posted_name(r), _selects(r))
                  for r in cluster.seen()
                  if r.resource is not None and r.resource.plural in ("deployments", "services")
                  and r.method in ("POST", "PATCH", "DELETE") and r.subresource is None]
        created = writes.index(("POST", "deployments", successor, None))
        switched = writes.index(("PATCH", "services", "summarizer", successor))
        deleted = writes.index(("DELETE", "deployments", "summarizer", None))
        assert created < switched < deleted, writes
        assert cluster.stored(SERVICES, NS, "summarizer")["spec"]["selector"][WORKLOAD] == successor
        # The roofline alone keeps the cheaper placement (it meets the SLO twice over): only the
        # learned factor makes the next plan pay for a second GPU per replica.
        assert after["placement"]["gpusPerReplica"] > running["gpusPerReplica"]
        assert after["cost"]["perHour"] > first_cost


def _posted_name(request) -> str | None:
    data = request.data if isinstance(request.data, dict) else {}
    return data.get("metadata", {}).get("name")


def _selects(request) -> str | None:
    """The workload a Service write selects (None for other writes): a JSON patch of
    ``/spec/selector`` (``owned.switch_service``) or a merge patch."""
    if request.resource.plural != "services":
        return None
    if isinstance(request.data, list):
        selectors = [op.get("value") for op in request.data if op.get("path") == "/spec/selector"]
    elif isinstance(request.data, dict):
        selectors = [(request.data.get("spec") or {}).get("selector")]
    else:
        return None
    return next((s.get(WORKLOAD) for s in selectors if isinstance(s, dict)), None)

"""The closed loop when the SLO is met nowhere: the real operator against KMock, a real Prometheus
scraping the fake vLLM exporter. Every window re-plans and keeps the placement; the PlacementKept
Warning is posted once for the streak, while status follows the growing sample count."""

from __future__ import annotations

import re

from operator_support import (
    DEPLOYMENTS,
    NODES_URL,
    NS,
    POOLS_URL,
    events_for,
    eventually,
    gpu_node,
    md_url,
    model_deployment,
    pool,
    status_of,
)
from test_operator_measured import POD, PROFILES, running_pod, slo_met

from memplace.operator.prometheus import PrometheusConfig
from memplace.planning.calibration import MIN_SAMPLES

WINDOWS_AFTER = 3
"""Calibrated re-plans after the first kept one that the test waits through."""


def samples(cluster, name: str) -> int:
    profile = cluster.stored(PROFILES, None, name) or {}
    return ((profile.get("status") or {}).get("decode") or {}).get("samples", 0)


def counted(message: str) -> int:
    """The sample count a kept re-plan's message names (``…, 7 samples)``)."""
    found = re.findall(r"(\d+) samples\)", message)
    return int(found[-1]) if found else 0


async def test_a_slo_met_nowhere_keeps_the_placement_and_warns_once_per_streak(
    cluster, start_operator, prometheus, fake_engine
):
    engine = fake_engine()
    server = prometheus([engine.target])
    async with start_operator(prometheus=PrometheusConfig(url=server.url, timeout_seconds=2),
                              measure_window="3s"):
        # One node with one GPU: every candidate is the running one's kind (one bf16 GPU per
        # replica), so the learned factor slows every candidate alike.
        await cluster.create(NODES_URL, gpu_node("a100-node-0", "a100", gpus=1))
        await cluster.create(POOLS_URL, pool("a100", 30.0, gpus=1))
        await cluster.create(md_url(), model_deployment(
            "summarizer", placement={"tiers": ["gpu"]}))
        first = await eventually(lambda: status_of(cluster, "summarizer").get("estimate"))
        predicted = first["timePerOutputTokenMs"]
        await cluster.merge_patch(md_url(name="summarizer"), {"spec": {"slo": {
            "timePerOutputTokenMs": round(predicted * 2, 1)}}})
        await eventually(lambda: status_of(cluster, "summarizer").get("observedGeneration") == 2)
        running = status_of(cluster, "summarizer")["placement"]
        deployment = cluster.stored(DEPLOYMENTS, NS, "summarizer")
        engine.set(NS, POD, tpot_seconds=predicted * 10 / 1000)  # the factor clamps at 3 > 2
        await cluster.create(f"/api/v1/namespaces/{NS}/pods", running_pod(POD, "summarizer"))

        [warning] = await eventually(lambda: events_for(cluster, "summarizer", "PlacementKept"),
                                     timeout=60, what="the first PlacementKept")
        assert warning["type"] == "Warning"
        assert "TPOT" in warning["message"] and "> SLO" in warning["message"]
        first_count = counted(status_of(cluster, "summarizer")["message"])
        assert first_count >= MIN_SAMPLES
        profile = first["calibration"]["profile"]
        # Windows go on: each re-plans (status names the new count) and keeps the placement.
        later = await eventually(
            lambda: counted(m := status_of(cluster, "summarizer").get("message") or "")
            >= first_count + WINDOWS_AFTER and m,
            timeout=15 + 5 * WINDOWS_AFTER, what="three more kept re-plans")
        assert later.endswith("the running placement is kept")
        assert samples(cluster, profile) >= first_count + WINDOWS_AFTER
        assert len(events_for(cluster, "summarizer", "PlacementKept")) == 1

        status = status_of(cluster, "summarizer")
        assert status["placement"] == running
        met = slo_met(cluster)
        assert (met["status"], met["reason"]) == ("False", "SLOMissed")
        assert "> SLO" in met["message"]
        placed = next(c for c in status["conditions"] if c["type"] == "Placed")
        assert placed["reason"] == "PlacementKept"
        now = cluster.stored(DEPLOYMENTS, NS, "summarizer")
        assert now["spec"] == deployment["spec"]
        assert now["metadata"]["resourceVersion"] == deployment["metadata"]["resourceVersion"]
        assert not events_for(cluster, "summarizer", "MoveStarted")

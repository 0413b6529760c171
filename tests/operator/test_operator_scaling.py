"""Replicas and tier follow the measured demand (``spec.scaling``), with the real operator against
KMock and a real Prometheus scraping fake vLLM exporters: ramp up → more replicas; down → a
cheaper placement, one move; idle → 0 replicas with the Service kept; traffic → back up.

KMock runs no pods: the test posts the pods whose metrics the exporters serve. Three exporters
serve three kinds of pod: busy (200 tokens/s each), quiet (2 tokens/s) and idle (no tokens,
nothing running). The demand the operator measures is the sum over the deployment's pods, so
the test sets it by which pods exist. Skips, saying why, without a prometheus binary.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from operator_support import (
    DEPLOYMENTS,
    NS,
    SERVICES,
    add_pool,
    events_for,
    eventually,
    md_url,
    model_deployment,
    status_of,
)
from test_operator_moves import owned, pool_of, set_ready

from memplace.operator.metrics import REGISTRY, Metrics
from memplace.operator.prometheus import PrometheusConfig

PODS = f"/api/v1/namespaces/{NS}/pods"
# The gateway's queue in front of the Service, as a user would name it; here the fake engine's
# waiting gauge (Debian's Prometheus 2.42 stores prometheus_client's `vllm:` names as `vllm_`).
WAKE = 'sum(vllm_num_requests_waiting{namespace="{namespace}",pod=~"{name}-.*"})'


def pod(name: str, owner: str = "chat") -> dict[str, Any]:
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": NS, "labels": {
            "app.kubernetes.io/managed-by": "memplace", "memplace.io/deployment": owner}},
        "spec": {"containers": [{"name": "engine", "image": "x"}]},
        "status": {"phase": "Running"},
    }


def scaled_deployment(**scaling: Any) -> dict[str, Any]:
    return model_deployment(
        "chat",
        workload={"contextTokens": 4096, "concurrency": 4, "outputTokensPerSecond": 300},
        scaling={"demand": "Measured", "scaleDownStabilizationSeconds": 3, **scaling},
    )


async def test_replicas_and_tier_follow_the_demand_down_to_cold_and_back(
    cluster, start_operator, prometheus, fake_engine
):
    busy = fake_engine(tick=0.05, tokens_per_tick=10)  # 200 tokens/s per pod
    quiet = fake_engine(tick=0.5, tokens_per_tick=1)  # 2 tokens/s per pod
    idle = fake_engine(tick=0.5, tokens_per_tick=0)
    for i in range(6):
        busy.set(NS, f"chat-busy-{i}", running=4)
    quiet.set(NS, "chat-quiet", running=1)
    idle.set(NS, "chat-idle", running=0, waiting=0)
    server = prometheus([busy.target, quiet.target, idle.target])
    async with start_operator(
        prometheus=PrometheusConfig(url=server.url, timeout_seconds=2),
        measure_window="3s", min_move_interval_seconds=5, wake_query=WAKE,
    ):
        # A100s at $30 per 8-GPU node, and one $1 L4: the L4 serves a trickle only.
        await add_pool(cluster, "a100", 30.0)
        await cluster.create("/api/v1/nodes", {
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": "l4-node-0", "labels": {
                "memplace.io/test-pool": "l4", "nvidia.com/gpu.product": "NVIDIA-L4",
                "nvidia.com/gpu.count": "1", "nvidia.com/gpu.memory": "23034",
                "kubernetes.io/os": "linux"}},
            "status": {"capacity": {"nvidia.com/gpu": "1", "cpu": "16", "memory": "64Gi"},
                       "allocatable": {"nvidia.com/gpu": "1", "cpu": "16", "memory": "64Gi"},
                       "conditions": [{"type": "Ready", "status": "True"}]}})
        await cluster.create("/apis/memplace.io/v1alpha1/placementpools", {
            "apiVersion": "memplace.io/v1alpha1", "kind": "PlacementPool",
            "metadata": {"name": "l4"}, "spec": {
                "nodeSelector": {"memplace.io/test-pool": "l4"}, "pricePerNodeHour": 1.0,
                "gpu": {"model": "L4", "count": 1}}})
        await cluster.create(md_url(), scaled_deployment(idleAfterSeconds=4, minReplicas=0,
                                                         coldStart="allowed"))
        first = await eventually(lambda: status_of(cluster, "chat").get("demand") and
                                 status_of(cluster, "chat"), what="a scaled placement")
        assert first["demand"]["source"] == "static"  # the floor, with no history
        assert first["tier"] == "hot" and first["placement"]["pool"] == "a100"
        assert first["demand"]["coldStartSeconds"] > 0
        start = first["placement"]["replicas"]
        await set_ready(cluster, "chat")

        # Ramp up: six busy pods, 1200 tokens/s.
        for i in range(6):
            await cluster.create(PODS, pod(f"chat-busy-{i}"))
        up = await eventually(
            lambda: (status_of(cluster, "chat").get("placement") or {}).get("replicas", 0) > start
            and status_of(cluster, "chat"), timeout=60, what="more replicas")
        assert up["demand"]["source"] == "measured"
        assert up["demand"]["tokensPerSecond"] > 300  # more than the static 300 with headroom
        scaled = await eventually(lambda: [
            e for e in events_for(cluster, "chat", "Scaled")
            if f"{start} -> " in e["message"] and "measured" in e["message"]], what="Scaled")
        assert "tok/s" in scaled[0]["message"] and "(hot -> hot)" in scaled[0]["message"]
        assert up["cost"]["last24h"] >= 0
        await set_ready(cluster, "chat")

        # Down: only the quiet pod, 2 tokens/s: after the 3 s scale-down window the $1 L4 wins.
        await cluster.create(PODS, pod("chat-quiet"))
        for i in range(6):
            await cluster.remove(f"{PODS}/chat-busy-{i}")
        successor = await eventually(
            lambda: [n for n, d in owned(cluster, "chat").items() if pool_of(d) == "l4"],
            timeout=60, what="a move to the L4")
        await set_ready(cluster, successor[0])
        down = await eventually(
            lambda: (status_of(cluster, "chat").get("placement") or {}).get("pool") == "l4"
            and status_of(cluster, "chat"), timeout=30, what="the move completed")
        assert down["cost"]["perHour"] < up["cost"]["perHour"]
        await asyncio.sleep(2)
        assert len(events_for(cluster, "chat", "MoveStarted")) == 1

        # Idle: only the idle pod; after idleAfterSeconds (4 s) 0 replicas, the Service stays.
        await cluster.create(PODS, pod("chat-idle"))
        await cluster.remove(f"{PODS}/chat-quiet")
        cold = await eventually(lambda: status_of(cluster, "chat").get("tier") == "cold"
                                and status_of(cluster, "chat"), timeout=60, what="cold")
        assert cold["placement"]["replicas"] == 0 and cold["placement"]["pool"] == "l4"
        assert cold["demand"]["source"] == "idle"
        assert cold["cost"]["perHour"] == 0
        serving = cluster.stored(DEPLOYMENTS, NS, successor[0])
        assert serving["spec"]["replicas"] == 0
        assert cluster.stored(SERVICES, NS, "chat") is not None
        await eventually(lambda: [e for e in events_for(cluster, "chat", "Scaled")
                                  if "-> 0 replicas (hot -> cold)" in e["message"]], what="cold")

        # Traffic: requests wait at the Service; the wake-up query sees them: back up.
        await set_ready(cluster, successor[0])  # the controller's part: 0 of 0 Ready
        idle.set(NS, "chat-idle", waiting=3)
        woken = await eventually(
            lambda: (status_of(cluster, "chat").get("placement") or {}).get("replicas", 0) >= 1
            and status_of(cluster, "chat"), timeout=60, what="woken")
        assert woken["tier"] == "hot" and woken["demand"]["source"] in ("wake", "measured")
        # Nothing served at zero replicas, so waking is applied in place, not as a move.
        assert len(events_for(cluster, "chat", "MoveStarted")) == 1


async def test_max_replicas_below_the_demand_runs_the_max_slomet_false_and_warns(cluster, operator):
    """Static demand too high for two replicas: two run, SLOMet=False, and a Warning says how
    many the demand needs (no Prometheus: the verdict comes from the plan, not a measurement)."""
    await add_pool(cluster, "a100", 30.0)
    await cluster.create(md_url(), model_deployment(
        "chat", workload={"contextTokens": 4096, "concurrency": 4, "outputTokensPerSecond": 3000},
        scaling={"maxReplicas": 2}))
    status = await eventually(lambda: status_of(cluster, "chat").get("demand") and
                              status_of(cluster, "chat"), what="status.demand")
    assert status["placement"]["replicas"] == 2
    needed = status["demand"]["replicasWanted"]
    assert needed > 2
    [warning, *more] = await eventually(lambda: events_for(cluster, "chat", "TooFewReplicas"),
                                 what="TooFewReplicas")
    assert warning["type"] == "Warning"
    assert not more, [w["message"] for w in more]
    assert f"needs {needed} replicas, spec.scaling.maxReplicas is 2" in warning["message"]
    met = await eventually(lambda: next((c for c in status_of(cluster, "chat")["conditions"]
                                         if c["type"] == "SLOMet"), None), what="SLOMet")
    assert (met["status"], met["reason"]) == ("False", "MaxReplicasTooLow")
    assert f"needs {needed} replicas" in met["message"]


async def test_prometheus_down_keeps_the_replicas_and_says_why(
    cluster, start_operator, prometheus, fake_engine
):
    busy = fake_engine(tick=0.05, tokens_per_tick=10)
    busy.set(NS, "chat-busy-0", running=4)
    server = prometheus([busy.target])
    async with start_operator(prometheus=PrometheusConfig(url=server.url, timeout_seconds=2),
                              measure_window="3s"):
        await add_pool(cluster, "a100", 30.0)
        await cluster.create(md_url(), scaled_deployment(idleAfterSeconds=2, minReplicas=0,
                                                         coldStart="allowed"))
        await cluster.create(PODS, pod("chat-busy-0"))
        measured = await eventually(
            lambda: (status_of(cluster, "chat").get("demand") or {}).get("source") == "measured"
            and status_of(cluster, "chat"), timeout=60, what="a measured demand")
        await asyncio.to_thread(server.stop)
        kept = await eventually(
            lambda: "not measured" in (status_of(cluster, "chat").get("demand") or {}).get(
                "reason", "") and status_of(cluster, "chat"), timeout=30, what="the reason")
        assert "unreachable" in kept["demand"]["reason"]
        await asyncio.sleep(3)  # past idleAfterSeconds: a failed query is not idleness
        after = status_of(cluster, "chat")
        assert after["placement"]["replicas"] == measured["placement"]["replicas"] > 0
        assert after["tier"] == "hot"


def test_cost_over_time_metrics_accrue_the_cost_per_hour_and_follow_the_tier():
    metrics = Metrics()
    status = {"phase": "Ready", "tier": "hot", "cost": {"perHour": 3600.0, "last24h": 12.5},
              "placement": {"pool": "l4", "precision": "fp8", "tier": "gpu", "replicas": 2}}
    metrics.observe(NS, "chat", status)
    time.sleep(0.2)
    metrics.observe(NS, "chat", {**status, "tier": "cold", "cost": {"perHour": 0.0},
                                 "placement": {**status["placement"], "replicas": 0}})
    spent = REGISTRY.get_sample_value("memplace_cost_usd_total", {"namespace": NS, "name": "chat"})
    assert 0.15 < spent < 5  # $1 per second for about 0.2 s
    labels = {"namespace": NS, "name": "chat"}
    assert REGISTRY.get_sample_value("memplace_replicas", {**labels, "heat": "cold"}) == 0
    assert REGISTRY.get_sample_value("memplace_replicas", {**labels, "heat": "hot"}) is None
    assert REGISTRY.get_sample_value("memplace_cost_last_24h_usd", labels) == 12.5
    time.sleep(0.1)
    metrics.accrue(NS, "chat")  # cold: nothing more is spent
    assert REGISTRY.get_sample_value("memplace_cost_usd_total", labels) == spent
    metrics.forget(NS, "chat")
    assert REGISTRY.get_sample_value("memplace_cost_usd_total", labels) is None


async def test_with_keda_installed_memplace_owns_a_valid_scaled_object_and_leaves_replicas_to_it(
    cluster, start_operator, prometheus, fake_engine
):
    import jsonschema
    import kmock
    from test_keda import schema

    cluster.resources["keda.sh/v1alpha1/scaledobjects"] = kmock.ResourceInfo(
        kind="ScaledObject", singular="scaledobject", namespaced=True,
        verbs={"create", "delete", "get", "list", "patch", "watch"})
    busy = fake_engine(tick=0.05, tokens_per_tick=10)
    busy.set(NS, "chat-busy-0", running=4)
    server = prometheus([busy.target])
    async with start_operator(prometheus=PrometheusConfig(url=server.url, timeout_seconds=2),
                              measure_window="3s", wake_query=WAKE):
        await add_pool(cluster, "a100", 30.0)
        await cluster.create(md_url(), scaled_deployment(minReplicas=0, coldStart="allowed",
                                                         maxReplicas=5, idleAfterSeconds=60))
        so = await eventually(
            lambda: cluster.stored("keda.sh/v1alpha1/scaledobjects", NS, "chat"),
            timeout=30, what="the ScaledObject")
        jsonschema.validate(so, schema())
        assert so["spec"]["scaleTargetRef"]["name"] == "chat"
        assert (so["spec"]["minReplicaCount"], so["spec"]["maxReplicaCount"]) == (0, 5)
        assert [t["name"] for t in so["spec"]["triggers"]] == ["demand", "wake"]
        # KEDA's HPA scales the Deployment to 3: the operator's next apply keeps that.
        await cluster.merge_patch(f"/apis/apps/v1/namespaces/{NS}/deployments/chat",
                                  {"spec": {"replicas": 3}})
        await cluster.create(PODS, pod("chat-busy-0"))
        await cluster.merge_patch(md_url(name="chat"), {"spec": {"runtime": {
            "engine": "vllm", "port": 8000, "args": ["--enable-prefix-caching"]}}})
        applied = await eventually(lambda: "--enable-prefix-caching" in str(
            cluster.stored(DEPLOYMENTS, NS, "chat")["spec"]["template"]) and cluster.stored(
            DEPLOYMENTS, NS, "chat"), what="the edit applied")
        assert applied["spec"]["replicas"] == 3
        await asyncio.sleep(3)
        assert not events_for(cluster, "chat", "Scaled")  # KEDA scales; memplace re-plans nothing

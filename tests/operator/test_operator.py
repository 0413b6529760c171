"""The real operator (Kopf, KopfRunner) against KMock's emulator: what a user and an admin see.

The emulator is a store with Kubernetes URLs: no scheduler, no garbage collection, no schema.
These tests check what the operator writes (Deployments, Services, status, Events, metrics);
e2e/ checks what a real cluster then does with it.
"""

from __future__ import annotations

import asyncio

import httpx
from operator_support import (
    DEPLOYMENTS,
    MDS,
    NODES_URL,
    NS,
    POOLS_URL,
    SERVICES,
    add_pool,
    add_unscheduled_pod,
    condition,
    events_for,
    eventually,
    gpu_node,
    md_url,
    model_deployment,
    plans,
    pool,
    status_of,
)


async def test_a_new_deployment_gets_a_deployment_a_service_a_status_and_an_event(
    cluster, operator
):
    await add_pool(cluster, "a100", 30.0, tolerations=[
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}])
    await cluster.create(md_url(), model_deployment("summarizer"))

    deployment = await eventually(lambda: cluster.stored(DEPLOYMENTS, NS, "summarizer"),
                                  what="the Deployment")
    template = deployment["spec"]["template"]["spec"]
    assert template["nodeSelector"] == {"memplace.io/test-pool": "a100"}
    assert template["tolerations"][0]["key"] == "nvidia.com/gpu"
    assert template["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] >= 1
    assert deployment["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "memplace"
    owner = deployment["metadata"]["ownerReferences"][0]
    md = cluster.stored(MDS, NS, "summarizer")
    assert owner["uid"] == md["metadata"]["uid"] and owner["controller"] is True
    assert "memplace.io/plan-hash" in deployment["metadata"]["annotations"]

    service = await eventually(lambda: cluster.stored(SERVICES, NS, "summarizer"))
    assert service["spec"]["ports"][0]["port"] == 8000

    status = await eventually(lambda: status_of(cluster, "summarizer").get("placement") and
                              status_of(cluster, "summarizer"), what="the status")
    assert status["phase"] in ("Placed", "Ready")
    assert status["placement"]["pool"] == "a100"
    assert status["observedGeneration"] == 1
    assert condition(status, "Valid")["status"] == "True"
    assert condition(status, "Placed")["status"] == "True"
    assert condition(status, "Ready")["status"] == "False"
    assert status["estimate"]["totalBytesPerGpu"] > 0
    assert status["cost"]["perHour"] > 0

    placed = await eventually(lambda: events_for(cluster, "summarizer", "Placed"))
    assert placed[0]["type"] == "Normal"
    assert "a100" in placed[0]["message"] and "/h" in placed[0]["message"]


async def test_status_is_written_through_the_status_subresource_and_spec_never(cluster, operator):
    await add_pool(cluster, "a100", 30.0)
    await cluster.create(md_url(), model_deployment("summarizer"))
    await eventually(lambda: status_of(cluster, "summarizer").get("placement"))
    writes = [r for r in cluster.seen()
              if r.method == "PATCH" and r.resource is not None
              and r.resource.plural == "modeldeployments"]
    assert writes
    for request in writes:
        data = request.data if isinstance(request.data, dict) else {}
        assert "spec" not in data, request.data
        if "status" in data:
            assert request.subresource == "status", request.url


async def test_a_repeated_reconcile_writes_nothing_to_the_deployment(cluster, operator):
    await add_pool(cluster, "a100", 30.0)
    await cluster.create(md_url(), model_deployment("summarizer"))
    await eventually(lambda: status_of(cluster, "summarizer").get("placement"))
    await asyncio.sleep(0.5)  # settled
    planned = plans()
    # New capacity: the deployment is re-planned, to the same placement.
    await add_pool(cluster, "a100-more", 45.0)
    await eventually(lambda: plans() > planned, what="a re-plan")
    await asyncio.sleep(1.0)
    writes = [r for r in cluster.seen()
              if r.resource is not None and r.resource.plural == "deployments"
              and r.method in ("POST", "PATCH", "PUT")]
    assert len(writes) == 1, [w.method for w in writes]
    assert status_of(cluster, "summarizer")["placement"]["pool"] == "a100"


async def test_a_spec_edit_replans_and_patches_the_deployment(cluster, operator):
    await add_pool(cluster, "a100", 30.0)
    await cluster.create(md_url(), model_deployment("summarizer"))
    await eventually(lambda: status_of(cluster, "summarizer").get("placement"))

    await cluster.merge_patch(md_url(name="summarizer"), {"spec": {"workload": {"minReplicas": 2}}})

    deployment = await eventually(
        lambda: (d := cluster.stored(DEPLOYMENTS, NS, "summarizer"))
        and d["spec"]["replicas"] == 2 and d, what="the patched Deployment")
    assert deployment["spec"]["template"]["spec"]["nodeSelector"]
    status = await eventually(lambda: (s := status_of(cluster, "summarizer"))
                              .get("observedGeneration") == 2 and s)
    assert status["placement"]["replicas"] == 2
    replanned = await eventually(lambda: events_for(cluster, "summarizer", "Replanned"))
    assert "spec changed" in replanned[0]["message"]


async def test_an_infeasible_edit_keeps_the_running_placement_and_warns(cluster, operator):
    await add_pool(cluster, "a100", 30.0)
    await cluster.create(md_url(), model_deployment("summarizer"))
    await eventually(lambda: status_of(cluster, "summarizer").get("placement"))
    before = cluster.stored(DEPLOYMENTS, NS, "summarizer")

    # No GPU answers the first token in 10 microseconds.
    await cluster.merge_patch(md_url(name="summarizer"),
                              {"spec": {"slo": {"timeToFirstTokenMs": 0.01}}})

    kept = await eventually(lambda: events_for(cluster, "summarizer", "PlacementKept"))
    assert kept[0]["type"] == "Warning"
    status = await eventually(lambda: (s := status_of(cluster, "summarizer"))
                              .get("observedGeneration") == 2 and s)
    assert status["phase"] in ("Placed", "Ready")
    assert status["placement"]["pool"] == "a100"
    assert condition(status, "Placed")["reason"] == "PlacementKept"
    assert cluster.stored(DEPLOYMENTS, NS, "summarizer") == before


async def test_an_unschedulable_deployment_is_placed_when_capacity_arrives(cluster, operator):
    # 30e9 parameters in bf16 (60 GB) fit no 24 GB L4, and offloading is not allowed.
    await cluster.create(NODES_URL, gpu_node("small-node-0", "small", gpus=1,
                                             product="NVIDIA-L4", memory_mib=23034))
    await cluster.create(POOLS_URL, pool("small", 5.0, model="L4", gpus=1))
    await cluster.create(md_url(), model_deployment("big", parameters=3.0e10,
                                                    placement={"tiers": ["gpu"]}))

    status = await eventually(lambda: (s := status_of(cluster, "big")).get("phase") and s)
    assert status["phase"] == "Unschedulable"
    assert condition(status, "Placed")["status"] == "False"
    warning = await eventually(lambda: events_for(cluster, "big", "Unschedulable"))
    assert warning[0]["type"] == "Warning"
    assert "small" in warning[0]["message"] and "GiB" in warning[0]["message"]
    assert cluster.stored(DEPLOYMENTS, NS, "big") is None

    await add_pool(cluster, "a100", 30.0)

    deployment = await eventually(lambda: cluster.stored(DEPLOYMENTS, NS, "big"), timeout=15)
    assert deployment["spec"]["template"]["spec"]["nodeSelector"] == {
        "memplace.io/test-pool": "a100"}
    await eventually(lambda: status_of(cluster, "big").get("phase") in ("Placed", "Ready"))
    await eventually(lambda: events_for(cluster, "big", "Placed"))


async def test_bad_input_is_invalid_and_the_operator_keeps_serving_the_others(cluster, operator):
    await add_pool(cluster, "a100", 30.0)
    bad = model_deployment("mystery")
    bad["spec"]["model"] = {"name": "acme/mystery", "config": {"model_type": "mystery"}}
    await cluster.create(md_url(), bad)
    await cluster.create(md_url(), model_deployment("good"))

    status = await eventually(lambda: (s := status_of(cluster, "mystery")).get("phase") and s)
    assert status["phase"] == "Invalid"
    assert condition(status, "Valid")["status"] == "False"
    warning = await eventually(lambda: events_for(cluster, "mystery", "Invalid"))
    assert warning[0]["type"] == "Warning" and warning[0]["message"]
    assert cluster.stored(DEPLOYMENTS, NS, "mystery") is None
    await eventually(lambda: cluster.stored(DEPLOYMENTS, NS, "good"))


async def test_readiness_follows_the_deployment(cluster, operator):
    await add_pool(cluster, "a100", 30.0)
    await cluster.create(md_url(), model_deployment("summarizer"))
    await eventually(lambda: cluster.stored(DEPLOYMENTS, NS, "summarizer"))
    # The emulator has no controller-manager: play the Deployment controller's part.
    await cluster.merge_patch(
        f"/apis/apps/v1/namespaces/{NS}/deployments/summarizer/status",
        {"status": {"observedGeneration": 1, "replicas": 1, "availableReplicas": 1}},
    )
    status = await eventually(lambda: (s := status_of(cluster, "summarizer"))
                              .get("phase") == "Ready" and s)
    assert condition(status, "Ready")["status"] == "True"


async def test_stuck_pods_mark_the_pool_full_and_fall_back(cluster, operator):
    await add_pool(cluster, "cheap", 10.0)
    await add_pool(cluster, "dear", 50.0)
    await cluster.create(md_url(), model_deployment("summarizer"))
    await eventually(lambda: status_of(cluster, "summarizer").get("placement", {})
                     .get("pool") == "cheap")
    await add_unscheduled_pod(cluster, "summarizer", "cheap", since="2020-01-01T00:00:00Z")
    full = await eventually(lambda: events_for(cluster, "summarizer", "PoolFull"))
    assert "cheap" in full[0]["message"]
    await eventually(lambda: status_of(cluster, "summarizer").get("placement", {})
                     .get("pool") == "dear")
    deployment = cluster.stored(DEPLOYMENTS, NS, "summarizer")
    assert deployment["spec"]["template"]["spec"]["nodeSelector"] == {
        "memplace.io/test-pool": "dear"}


async def test_delete_forgets_the_deployment_and_its_metrics(cluster, operator):
    await add_pool(cluster, "a100", 30.0)
    await cluster.create(md_url(), model_deployment("summarizer"))
    await eventually(lambda: status_of(cluster, "summarizer").get("placement"))
    url = f"http://127.0.0.1:{operator.metrics_port}/metrics"

    async def series() -> str:
        async with httpx.AsyncClient() as client:
            return (await client.get(url)).text

    await eventually(lambda: _has(series, 'name="summarizer"'))
    md = cluster.stored(MDS, NS, "summarizer")
    assert not md["metadata"].get("finalizers"), "no finalizers: deletion never waits for us"

    await cluster.remove(md_url(name="summarizer"))

    assert cluster.stored(MDS, NS, "summarizer") is None
    await eventually(lambda: _lacks(series, 'name="summarizer"'), what="metrics to go")
    # Garbage collection of the owned Deployment is the API server's job (see e2e/).


async def _has(series, text: str) -> bool:
    return text in await series()


async def _lacks(series, text: str) -> bool:
    return text not in await series()


async def test_metrics_and_health_are_served(cluster, operator):
    await add_pool(cluster, "a100", 30.0)
    await cluster.create(md_url(), model_deployment("summarizer"))
    await eventually(lambda: status_of(cluster, "summarizer").get("placement"))
    async with httpx.AsyncClient() as client:
        text = await eventually(lambda: _metrics_with_cost(client, operator.metrics_port))
        health = await client.get(f"http://127.0.0.1:{operator.health_port}/healthz")
    assert 'memplace_deployments{phase="Placed"} 1.0' in text or \
        'memplace_deployments{phase="Ready"} 1.0' in text
    assert "memplace_plan_duration_seconds_count" in text
    gpu_memory = 'memplace_estimated_gpu_memory_bytes{name="summarizer",namespace="ml",pool="a100"'
    assert gpu_memory in text
    assert "memplace_reconcile_errors_total" in text or "memplace_reconcile_errors" in text
    assert health.status_code == 200


async def _metrics_with_cost(client: httpx.AsyncClient, port: int) -> str | None:
    text = (await client.get(f"http://127.0.0.1:{port}/metrics")).text
    return text if "memplace_placement_cost_per_hour{" in text else None

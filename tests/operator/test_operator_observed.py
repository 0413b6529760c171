"""The real operator against KMock: what it reports besides placing — measured memory, pool
status, deployments that wait for an input, and variants sized by a ConfigMap."""

from __future__ import annotations

import asyncio
import datetime
import json
import uuid
from typing import Any

from operator_support import (
    DEPLOYMENTS,
    NODES_URL,
    NS,
    POOLS_URL,
    add_pool,
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

GIB = 1 << 30
REPORTS_URL = "/apis/memplace.io/v1alpha1/nodememoryreports"
POOLS = "memplace.io/v1alpha1/placementpools"
SMALL = {"model_type": "qwen3", "hidden_size": 2560, "num_hidden_layers": 36,
         "num_attention_heads": 32, "num_key_value_heads": 8, "head_dim": 128,
         "intermediate_size": 9728, "vocab_size": 151936}


def pod(name: str, owner: str, uid: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": NS, "uid": uid, "labels": {
            "app.kubernetes.io/managed-by": "memplace", "memplace.io/deployment": owner,
            "memplace.io/pool": "a100"}},
        "spec": {"containers": [{"name": "engine", "image": "x"}]},
        "status": {"phase": "Running"},
    }


def report(node: str, observed_at: str, processes: list[tuple[str, int]]) -> dict[str, Any]:
    return {
        "apiVersion": "memplace.io/v1alpha1", "kind": "NodeMemoryReport",
        "metadata": {"name": node}, "spec": {"nodeName": node},
        "status": {"observedAt": observed_at, "gpus": [{
            "index": 0, "processes": [
                {"pid": 4000 + n, "podUid": uid, "usedMemoryBytes": used}
                for n, (uid, used) in enumerate(processes)
            ]}]},
    }


def deployment_writes(cluster) -> int:
    return len([r for r in cluster.seen()
                if r.resource is not None and r.resource.plural == "deployments"
                and r.method in ("POST", "PATCH", "PUT")])


def measured_bytes(cluster, name: str) -> int | None:
    return (status_of(cluster, name).get("measured") or {}).get("gpuMemoryBytesPerReplica")


async def test_measured_memory_follows_the_reports_without_replanning(cluster, operator):
    await add_pool(cluster, "a100", 30.0)
    await cluster.create(md_url(), model_deployment("summarizer"))
    await eventually(lambda: status_of(cluster, "summarizer").get("placement"))
    first, second = str(uuid.uuid4()), str(uuid.uuid4())
    for name, uid in (("summarizer-a", first), ("summarizer-b", second)):
        await cluster.create(f"/api/v1/namespaces/{NS}/pods", pod(name, "summarizer", uid))
    stranger = str(uuid.uuid4())
    await cluster.create(REPORTS_URL, report("a100-node-0", "2026-01-01T12:00:00Z", [
        (first, 70 * GIB), (second, 60 * GIB), (stranger, 5 * GIB)]))

    measured = await eventually(
        lambda: status_of(cluster, "summarizer").get("measured"), what="status.measured")
    assert measured == {"gpuMemoryBytesPerReplica": 70 * GIB,
                        "observedAt": "2026-01-01T12:00:00Z"}
    planned, writes = plans(), deployment_writes(cluster)

    # A later heartbeat in which the first replica grew: only status.measured changes.
    url = f"{REPORTS_URL}/a100-node-0"
    await cluster.merge_patch(url, {"status": report("a100-node-0", "2026-01-01T12:01:00Z", [
        (first, 72 * GIB), (second, 60 * GIB)])["status"]})
    await eventually(lambda: measured_bytes(cluster, "summarizer") == 72 * GIB)
    assert status_of(cluster, "summarizer")["measured"]["observedAt"] == "2026-01-01T12:01:00Z"
    assert plans() == planned, "a report's processes alone re-plan nothing"
    assert deployment_writes(cluster) == writes
    assert not events_for(cluster, "summarizer", "Replanned")

    # A heartbeat with the same figures writes nothing.
    measured_writes = _status_writes(cluster, "measured")
    await cluster.merge_patch(url, {"status": {"observedAt": "2026-01-01T12:02:00Z"}})
    await asyncio.sleep(1.0)
    assert _status_writes(cluster, "measured") == measured_writes
    assert status_of(cluster, "summarizer")["measured"]["observedAt"] == "2026-01-01T12:01:00Z"


def _status_writes(cluster, field: str) -> int:
    return len([r for r in cluster.seen()
                if r.method == "PATCH" and r.resource is not None
                and r.resource.plural == "modeldeployments" and isinstance(r.data, dict)
                and field in (r.data.get("status") or {})])


async def test_pools_report_nodes_gpus_price_and_why_they_cannot_be_used(cluster, operator):
    await add_pool(cluster, "a100", 30.0, nodes=2)
    empty = pool("empty", 10.0)
    await cluster.create(POOLS_URL, empty)
    unpriced = pool("unpriced", 0.0)
    del unpriced["spec"]["pricePerNodeHour"]
    await cluster.create(NODES_URL, gpu_node("unpriced-node-0", "unpriced"))
    await cluster.create(POOLS_URL, unpriced)

    def pool_status(name: str) -> dict[str, Any]:
        return (cluster.stored(POOLS, None, name) or {}).get("status") or {}

    ready = await eventually(lambda: (s := pool_status("a100")).get("conditions") and s,
                             what="the a100 pool's status")
    assert (ready["nodes"], ready["gpus"]) == (2, 16)
    assert (ready["pricePerNodeHour"], ready["priceSource"]) == (30.0, "spec")
    assert ready["observedGeneration"] == 1
    assert condition(ready, "Ready")["status"] == "True"

    nothing = await eventually(lambda: (s := pool_status("empty")).get("conditions") and s)
    assert condition(nothing, "Ready")["reason"] == "NoNodes"
    assert "matches no schedulable node" in condition(nothing, "Ready")["message"]
    no_price = await eventually(lambda: (s := pool_status("unpriced")).get("conditions") and s)
    assert condition(no_price, "Priced")["reason"] == "NoPrice"
    assert "set pricePerNodeHour or instanceType" in condition(no_price, "Priced")["message"]

    def pool_writes() -> list[Any]:
        return [r for r in cluster.seen() if r.method == "PATCH" and r.resource is not None
                and r.resource.plural == "placementpools"]

    assert all(r.subresource == "status" for r in pool_writes())
    count = len(pool_writes())
    await asyncio.sleep(1.0)  # five resyncs: nothing changed, nothing written
    assert len(pool_writes()) == count

    # A node arrives: the empty pool becomes ready.
    await cluster.create(NODES_URL, gpu_node("empty-node-0", "empty", gpus=4))
    filled = await eventually(lambda: (s := pool_status("empty")).get("nodes") == 1 and s)
    assert filled["gpus"] == 4 and condition(filled, "Ready")["status"] == "True"


async def test_a_deployment_waiting_for_its_configmap_is_pending_then_placed(cluster, operator):
    await add_pool(cluster, "a100", 30.0)
    body = model_deployment("summarizer")
    body["spec"]["model"] = {"name": "Qwen/Qwen3-4B", "configMapRef": {"name": "qwen-config"}}
    await cluster.create(md_url(), body)

    status = await eventually(lambda: (s := status_of(cluster, "summarizer"))
                              .get("phase") == "Pending" and s, what="phase Pending")
    assert "ConfigMap ml/qwen-config" in status["message"]
    placed = condition(status, "Placed")
    assert placed["status"] == "False" and placed["reason"] == "Waiting"
    assert "ConfigMap ml/qwen-config" in placed["message"]
    assert cluster.stored(DEPLOYMENTS, NS, "summarizer") is None

    await cluster.create(f"/api/v1/namespaces/{NS}/configmaps", {
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "qwen-config", "namespace": NS},
        "data": {"config.json": json.dumps(SMALL)}})

    await eventually(lambda: cluster.stored(DEPLOYMENTS, NS, "summarizer"), what="the Deployment")
    status = await eventually(lambda: (s := status_of(cluster, "summarizer"))
                              .get("phase") in ("Placed", "Ready") and s)
    assert condition(status, "Placed")["status"] == "True"


async def test_a_variant_sized_by_a_configmap_is_planned_and_served(cluster, operator):
    # 30e9 parameters in bf16 (60 GB) fit no 24 GB L4; the 4B variant does.
    await cluster.create(NODES_URL, gpu_node("small-node-0", "small", gpus=1,
                                             product="NVIDIA-L4", memory_mib=23034))
    await cluster.create(POOLS_URL, pool("small", 5.0, model="L4", gpus=1))
    await cluster.create(f"/api/v1/namespaces/{NS}/configmaps", {
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "student-config", "namespace": NS},
        "data": {"config.json": json.dumps(SMALL)}})
    body = model_deployment("big", parameters=3.0e10, placement={"tiers": ["gpu"]},
                            quality={"maxLoss": 0.05, "precisions": ["bf16"]})
    body["spec"]["model"]["variants"] = [
        {"name": "student", "source": "hf://org/student",
         "configMapRef": {"name": "student-config"}, "qualityLoss": 0.02}]
    await cluster.create(md_url(), body)

    status = await eventually(lambda: (s := status_of(cluster, "big")).get("placement") and s,
                              what="a placement")
    assert status["placement"]["variant"] == "student"
    deployment = await eventually(lambda: cluster.stored(DEPLOYMENTS, NS, "big"))
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[args.index("--model") + 1] == "org/student"


async def test_a_running_replica_s_own_memory_does_not_push_it_off_its_gpu(cluster, operator):
    # One GPU each; the cheap one runs the model, and its fresh report shows the replica's
    # 72 GiB as used. Counted twice (used, and reserved by the placement), the model would no
    # longer fit there and would move to the dear pool.
    await add_pool(cluster, "a100", 30.0, gpus=1)
    await cluster.create(NODES_URL, gpu_node("dear-node-0", "dear", gpus=1))
    await cluster.create(POOLS_URL, pool("dear", 50.0, gpus=1))
    await cluster.create(md_url(), model_deployment("summarizer"))
    await eventually(lambda: status_of(cluster, "summarizer").get("placement", {})
                     .get("pool") == "a100")
    uid = str(uuid.uuid4())
    await cluster.create(f"/api/v1/namespaces/{NS}/pods", pod("summarizer-a", "summarizer", uid))
    fresh = report("a100-node-0", _now(), [(uid, 72 * GIB)])
    fresh["status"]["heartbeatSeconds"] = 600
    fresh["status"]["gpus"][0].update(memoryTotalBytes=80 * GIB, memoryUsedBytes=72 * GIB,
                                      memoryFreeBytes=8 * GIB)
    await cluster.create(REPORTS_URL, fresh)

    await eventually(lambda: measured_bytes(cluster, "summarizer") == 72 * GIB)
    await asyncio.sleep(1.0)  # five resyncs
    assert status_of(cluster, "summarizer")["placement"]["pool"] == "a100"
    assert not events_for(cluster, "summarizer", "Replanned")


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


async def test_unattributed_memory_on_the_replica_s_node_does_not_push_it_off_its_gpu(
    cluster, operator
):
    # The agent without hostPID (the chart's default) names no pod: the replica's 72 GiB show as
    # a process without podUid, so nothing can be given back. Its node's report is left out of
    # planning; trusted, its 8 GiB free would move the model to the dear pool.
    await add_pool(cluster, "a100", 30.0, gpus=1)
    await cluster.create(NODES_URL, gpu_node("dear-node-0", "dear", gpus=1))
    await cluster.create(POOLS_URL, pool("dear", 50.0, gpus=1))
    await cluster.create(md_url(), model_deployment("summarizer", placement={"tiers": ["gpu"]}))
    await eventually(lambda: status_of(cluster, "summarizer").get("placement", {})
                     .get("pool") == "a100")
    replica = pod("summarizer-a", "summarizer", str(uuid.uuid4()))
    replica["spec"]["nodeName"] = "a100-node-0"
    await cluster.create(f"/api/v1/namespaces/{NS}/pods", replica)
    fresh = report("a100-node-0", _now(), [(None, 72 * GIB)])
    fresh["status"]["heartbeatSeconds"] = 600
    fresh["status"]["gpus"][0].update(memoryTotalBytes=80 * GIB, memoryUsedBytes=72 * GIB,
                                      memoryFreeBytes=8 * GIB)
    await cluster.create(REPORTS_URL, fresh)

    await asyncio.sleep(1.0)  # five resyncs
    assert status_of(cluster, "summarizer")["placement"]["pool"] == "a100"
    assert not events_for(cluster, "summarizer", "Replanned")

    # Control: with no replica on that node the report is trusted, and 8 GiB free is too little.
    await cluster.remove(f"/api/v1/namespaces/{NS}/pods/summarizer-a")
    await eventually(lambda: status_of(cluster, "summarizer")["placement"]["pool"] == "dear",
                     what="the move once the report is trusted")

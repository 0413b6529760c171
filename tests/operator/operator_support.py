"""Helpers for the operator's integration tests: polling, and the objects they create."""

from __future__ import annotations

import asyncio
from typing import Any

from memplace.operator.metrics import REGISTRY


async def eventually(
    check: Any, *, timeout: float = 30.0, interval: float = 0.05, what: str = "condition"
) -> Any:
    """Poll ``check()`` (sync or async) until it returns something truthy; fail after timeout."""
    deadline = asyncio.get_running_loop().time() + timeout
    last_error: BaseException | None = None
    while True:
        try:
            result = check()
            if asyncio.iscoroutine(result):
                result = await result
            if result:
                return result
        except (AssertionError, KeyError, TypeError, IndexError) as error:
            last_error = error
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}") from last_error
        await asyncio.sleep(interval)


def plans() -> float:
    """How many plans the operator made so far (``memplace_plan_duration_seconds_count``)."""
    return REGISTRY.get_sample_value("memplace_plan_duration_seconds_count") or 0.0


MDS = "memplace.io/v1alpha1/modeldeployments"
POOLS_URL = "/apis/memplace.io/v1alpha1/placementpools"
NODES_URL = "/api/v1/nodes"
DEPLOYMENTS = "apps/v1/deployments"
SERVICES = "v1/services"
NS = "ml"
PEERING = "memplace-test"  # the ClusterKopfPeering of ``peered_operator``
PRIORITY = 100  # that replica's priority
OWN_ID = "memplace-operator-test-0"  # and its Kopf identity (POD_ID)


def md_url(namespace: str = NS, name: str | None = None) -> str:
    url = f"/apis/memplace.io/v1alpha1/namespaces/{namespace}/modeldeployments"
    return url + (f"/{name}" if name else "")


def gpu_node(name: str, pool: str, gpus: int = 8, product: str = "NVIDIA-A100-SXM4-80GB",
             memory_mib: int = 81920) -> dict[str, Any]:
    return {
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": {
            "memplace.io/test-pool": pool,
            "nvidia.com/gpu.product": product,
            "nvidia.com/gpu.count": str(gpus),
            "nvidia.com/gpu.memory": str(memory_mib),
            "kubernetes.io/os": "linux",
        }},
        "status": {
            "capacity": {"nvidia.com/gpu": str(gpus), "cpu": "96", "memory": "1000Gi"},
            "allocatable": {"nvidia.com/gpu": str(gpus), "cpu": "96", "memory": "1000Gi"},
            "conditions": [{"type": "Ready", "status": "True"}],
        },
    }


def pool(name: str, price: float, *, gpus: int = 8, model: str = "A100-SXM4-80GB",
         tolerations: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "nodeSelector": {"memplace.io/test-pool": name},
        "pricePerNodeHour": price,
        "gpu": {"model": model, "count": gpus},
    }
    if tolerations:
        spec["tolerations"] = tolerations
    return {"apiVersion": "memplace.io/v1alpha1", "kind": "PlacementPool",
            "metadata": {"name": name}, "spec": spec}


def model_deployment(name: str, parameters: float = 8.0e9, **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": {"name": "Qwen/Qwen3-8B", "parameters": parameters},
        "workload": {"contextTokens": 4096, "concurrency": 4, "minReplicas": 1},
        "runtime": {"engine": "vllm", "port": 8000},
    }
    body.update(spec)
    return {"apiVersion": "memplace.io/v1alpha1", "kind": "ModelDeployment",
            "metadata": {"name": name, "namespace": NS}, "spec": body}


async def add_unscheduled_pod(cluster, deployment: str, pool: str, since: str) -> None:
    """Post the pod of ``deployment`` that the scheduler could not place on ``pool`` since
    ``since`` (RFC 3339): the emulator has no scheduler of its own."""
    await cluster.create(f"/api/v1/namespaces/{NS}/pods", {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": f"{deployment}-abc", "namespace": NS, "labels": {
            "app.kubernetes.io/managed-by": "memplace",
            "memplace.io/deployment": deployment, "memplace.io/pool": pool}},
        "spec": {"containers": [{"name": "engine", "image": "x"}]},
        "status": {"phase": "Pending", "conditions": [{
            "type": "PodScheduled", "status": "False", "reason": "Unschedulable",
            "lastTransitionTime": since}]},
    })


async def add_pool(cluster, name: str, price: float, nodes: int = 1, **kwargs: Any) -> None:
    for index in range(nodes):
        await cluster.create(NODES_URL, gpu_node(f"{name}-node-{index}", name))
    await cluster.create(POOLS_URL, pool(name, price, **kwargs))


def status_of(cluster, name: str) -> dict[str, Any]:
    return (cluster.stored(MDS, NS, name) or {}).get("status") or {}


def events_for(cluster, name: str, reason: str | None = None) -> list[dict[str, Any]]:
    return [
        event for event in cluster.events(NS)
        if event.get("involvedObject", {}).get("name") == name
        and (reason is None or event.get("reason") == reason)
    ]


def condition(status: dict[str, Any], type_: str) -> dict[str, Any]:
    return next(c for c in status.get("conditions", []) if c["type"] == type_)

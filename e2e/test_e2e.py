"""memplace end to end on a real API server, scheduler and controller-manager.

One pool of GPU nodes (fake ones with E2E_FAKE_NODES=1, else the cluster's own GPU nodes), one
example ModelDeployment pinned to it; then: the Deployment pins its pods to the pool, the real
scheduler binds them to the pool's nodes, status and Events are there, and deleting the
ModelDeployment lets the garbage collector remove what the operator created.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from fakes import FakeNodes, wait_for

ROOT = Path(__file__).resolve().parent.parent
NS = "memplace-e2e"
POOL = "e2e-a100"
POOL_LABEL = "memplace.io/e2e-pool"
FAKE_NODES = [f"memplace-e2e-gpu-{i}" for i in range(2)]
MDS = f"/apis/memplace.io/v1alpha1/namespaces/{NS}/modeldeployments"


@pytest.fixture(scope="module")
def gpu_pool(api) -> Iterator[dict[str, str]]:
    """A PlacementPool over GPU nodes; the node selector the pods must carry."""
    fakes: FakeNodes | None = None
    if os.environ.get("E2E_FAKE_NODES") == "1":
        fakes = FakeNodes(api)
        for name in FAKE_NODES:
            fakes.add(name, {POOL_LABEL: POOL})
        selector = {POOL_LABEL: POOL}
    else:
        nodes = (api.get("/api/v1/nodes") or {}).get("items") or []
        gpu_nodes = [n for n in nodes
                     if int((n.get("status", {}).get("allocatable") or {})
                            .get("nvidia.com/gpu", "0") or 0) > 0
                     and n["metadata"].get("labels", {}).get("nvidia.com/gpu.product")]
        if not gpu_nodes:
            pytest.skip("the cluster has no GPU nodes; set E2E_FAKE_NODES=1 to create fake ones")
        product = gpu_nodes[0]["metadata"]["labels"]["nvidia.com/gpu.product"]
        selector = {"nvidia.com/gpu.product": product}
    api.create("/apis/memplace.io/v1alpha1/placementpools", {
        "apiVersion": "memplace.io/v1alpha1", "kind": "PlacementPool",
        "metadata": {"name": POOL},
        "spec": {
            "nodeSelector": selector, "pricePerNodeHour": 30.0,
            # Fake nodes have no kubelet: tolerate the taints the controller may still add.
            "tolerations": [
                {"key": "node.kubernetes.io/not-ready", "operator": "Exists",
                 "effect": "NoSchedule"},
                {"key": "node.kubernetes.io/unreachable", "operator": "Exists",
                 "effect": "NoSchedule"},
            ],
        },
    })
    try:
        yield selector
    finally:
        api.delete(f"/apis/memplace.io/v1alpha1/placementpools/{POOL}")
        if fakes is not None:
            fakes.close()


@pytest.fixture(scope="module")
def namespace(api) -> Iterator[str]:
    api.create("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                      "metadata": {"name": NS}})
    for doc in yaml.safe_load_all((ROOT / "examples/models/configmaps.yaml").read_text()):
        if doc and doc.get("kind") == "ConfigMap":
            doc = copy.deepcopy(doc)
            doc["metadata"]["namespace"] = NS
            api.create(f"/api/v1/namespaces/{NS}/configmaps", doc)
    try:
        yield NS
    finally:
        api.delete(f"/api/v1/namespaces/{NS}")


def example(name: str) -> dict[str, Any]:
    doc = yaml.safe_load((ROOT / "examples/deployments" / f"{name}.yaml").read_text())
    doc["metadata"]["namespace"] = NS
    doc["spec"].setdefault("placement", {})["pools"] = [POOL]  # only the pool this test made
    return doc


def test_an_example_runs_on_the_chosen_pool_and_cleans_up(api, operator, gpu_pool, namespace):
    md = example("chat")
    name = md["metadata"]["name"]
    api.create(MDS, md)

    def placed() -> dict[str, Any] | None:
        status = (api.get(f"{MDS}/{name}") or {}).get("status") or {}
        return status if status.get("phase") in ("Placed", "Ready") else None

    status = wait_for(placed, what="the ModelDeployment to be placed")
    assert status["placement"]["pool"] == POOL
    assert status["observedGeneration"] == 1
    types = {c["type"]: c["status"] for c in status["conditions"]}
    assert types["Valid"] == "True" and types["Placed"] == "True"

    deployment = wait_for(lambda: api.get(f"/apis/apps/v1/namespaces/{NS}/deployments/{name}"),
                          what="the Deployment")
    pod_spec = deployment["spec"]["template"]["spec"]
    for key, value in gpu_pool.items():
        assert pod_spec["nodeSelector"][key] == value
    assert deployment["metadata"]["ownerReferences"][0]["kind"] == "ModelDeployment"
    assert api.get(f"/api/v1/namespaces/{NS}/services/{name}") is not None

    def bound() -> list[dict[str, Any]]:
        pods = (api.get(f"/api/v1/namespaces/{NS}/pods?labelSelector="
                        f"memplace.io/deployment%3D{name}") or {}).get("items") or []
        return [p for p in pods if p["spec"].get("nodeName")]

    pods = wait_for(bound, timeout=120, what="the scheduler to bind a pod")
    nodes = {n["metadata"]["name"]: n for n in (api.get("/api/v1/nodes") or {})["items"]}
    for pod in pods:
        labels = nodes[pod["spec"]["nodeName"]]["metadata"].get("labels", {})
        assert all(labels.get(k) == v for k, v in gpu_pool.items()), pod["spec"]["nodeName"]

    def placed_event() -> list[dict[str, Any]]:
        events = (api.get(f"/api/v1/namespaces/{NS}/events") or {}).get("items") or []
        return [e for e in events if e.get("involvedObject", {}).get("name") == name
                and e.get("reason") == "Placed"]

    event = wait_for(placed_event, what="the Placed event")[0]
    assert POOL in event["message"]

    api.delete(f"{MDS}/{name}")
    wait_for(lambda: api.get(f"/apis/apps/v1/namespaces/{NS}/deployments/{name}") is None,
             timeout=120, what="garbage collection of the Deployment")
    wait_for(lambda: api.get(f"/api/v1/namespaces/{NS}/services/{name}") is None,
             timeout=120, what="garbage collection of the Service")

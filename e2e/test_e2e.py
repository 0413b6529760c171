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
from checks import binding_problems
from fakes import FakeNodes, wait_for
from kubeapi import Api
from lifecycle import RUN_LABEL, namespace

ROOT = Path(__file__).resolve().parent.parent
POOL_LABEL = "memplace.io/e2e-pool"
POOLS = "/apis/memplace.io/v1alpha1/placementpools"
# Fake nodes have no kubelet: should a heartbeat be late, the node lifecycle controller taints
# them; the pods still bind (NoExecute ones get 300 s from DefaultTolerationSeconds).
TOLERATE_NO_KUBELET = [
    {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoSchedule"},
]


@pytest.fixture(scope="module")
def gpu_pool(api: Api, run_id: str) -> Iterator[tuple[str, dict[str, str]]]:
    """A PlacementPool over GPU nodes: its name and the node selector the pods must carry."""
    pool = f"e2e-{run_id}-a100"
    fakes: FakeNodes | None = None
    if os.environ.get("E2E_FAKE_NODES") == "1":
        fakes = FakeNodes(api)
        selector = {POOL_LABEL: pool}
        for index in range(2):
            fakes.add(f"memplace-{pool}-{index}", {**selector, RUN_LABEL: run_id})
    else:
        nodes = api.items("/api/v1/nodes")
        gpu_nodes = [
            n
            for n in nodes
            if int((n.get("status", {}).get("allocatable") or {}).get("nvidia.com/gpu", "0") or 0)
            > 0
            and n["metadata"].get("labels", {}).get("nvidia.com/gpu.product")
        ]
        if not gpu_nodes:
            pytest.skip("the cluster has no GPU nodes; set E2E_FAKE_NODES=1 to create fake ones")
        product = gpu_nodes[0]["metadata"]["labels"]["nvidia.com/gpu.product"]
        selector = {"nvidia.com/gpu.product": product}
    try:
        api.create(
            POOLS,
            {
                "apiVersion": "memplace.io/v1alpha1",
                "kind": "PlacementPool",
                "metadata": {"name": pool, "labels": {RUN_LABEL: run_id}},
                "spec": {
                    "nodeSelector": selector,
                    "pricePerNodeHour": 30.0,
                    "tolerations": TOLERATE_NO_KUBELET,
                },
            },
        )
        yield pool, selector
    finally:
        api.delete(f"{POOLS}/{pool}")
        if fakes is not None:
            fakes.close()


@pytest.fixture(scope="module")
def models(
    api: Api, operator: Any, gpu_pool: tuple[str, dict[str, str]], run_id: str
) -> Iterator[str]:
    """A namespace with the example model ConfigMaps; deleted (and awaited) before the pool's
    fake nodes go, so that their fake kubelet finishes the pods' deletions."""
    with namespace(api, f"memplace-e2e-{run_id}", run_id) as ns:
        for doc in yaml.safe_load_all((ROOT / "examples/models/configmaps.yaml").read_text()):
            if doc and doc.get("kind") == "ConfigMap":
                doc = copy.deepcopy(doc)
                doc["metadata"]["namespace"] = ns
                api.create(f"/api/v1/namespaces/{ns}/configmaps", doc)
        yield ns


def example(name: str, ns: str, pool: str) -> dict[str, Any]:
    doc = yaml.safe_load((ROOT / "examples/deployments" / f"{name}.yaml").read_text())
    doc["metadata"]["namespace"] = ns
    doc["spec"].setdefault("placement", {})["pools"] = [pool]  # only the pool this test made
    return doc


def test_an_example_runs_on_the_chosen_pool_and_cleans_up(api, gpu_pool, models):
    pool, selector = gpu_pool
    ns = models
    mds = f"/apis/memplace.io/v1alpha1/namespaces/{ns}/modeldeployments"
    md = example("chat", ns, pool)
    name = md["metadata"]["name"]
    api.create(mds, md)

    def status() -> dict[str, Any]:
        return (api.get(f"{mds}/{name}") or {}).get("status") or {}

    placed = wait_for(
        lambda: status() if status().get("phase") in ("Placed", "Ready") else None,
        what="the ModelDeployment to be placed",
        state=status,
    )
    assert placed["placement"]["pool"] == pool
    assert placed["observedGeneration"] == 1
    types = {c["type"]: c["status"] for c in placed["conditions"]}
    assert types["Valid"] == "True" and types["Placed"] == "True"

    deployments = f"/apis/apps/v1/namespaces/{ns}/deployments"
    deployment = wait_for(lambda: api.get(f"{deployments}/{name}"), what="the Deployment")
    pod_spec = deployment["spec"]["template"]["spec"]
    for key, value in selector.items():
        assert pod_spec["nodeSelector"][key] == value
    assert deployment["metadata"]["ownerReferences"][0]["kind"] == "ModelDeployment"
    assert api.get(f"/api/v1/namespaces/{ns}/services/{name}") is not None

    # No kubelet runs the pods: "runs on the pool" is the scheduler's binding, never Ready.
    pods_url = f"/api/v1/namespaces/{ns}/pods?labelSelector=memplace.io/deployment%3D{name}"

    def problems() -> list[str]:
        replicas = ((api.get(f"{deployments}/{name}") or {}).get("spec") or {}).get("replicas")
        pods = [p for p in api.items(pods_url) if not p["metadata"].get("deletionTimestamp")]
        missing = [f"{len(pods)} of {replicas} pods exist"] if len(pods) < (replicas or 1) else []
        return missing + binding_problems(pods, api.items("/api/v1/nodes"), selector)

    wait_for(
        lambda: not problems(),
        timeout=120,
        what=f"the scheduler to bind every pod of {name} to the pool",
        state=problems,
    )

    def placed_events() -> list[dict[str, Any]]:
        return [
            e
            for e in api.items(f"/api/v1/namespaces/{ns}/events")
            if e.get("involvedObject", {}).get("name") == name and e.get("reason") == "Placed"
        ]

    event = wait_for(placed_events, what="the Placed event")[0]
    assert pool in event["message"]

    api.delete(f"{mds}/{name}")
    # Background propagation: the ModelDeployment goes first, the garbage collector follows.
    wait_for(
        lambda: api.get(f"{mds}/{name}") is None,
        timeout=120,
        what="the ModelDeployment to be deleted (the operator releases its finalizer)",
    )
    wait_for(
        lambda: api.get(f"{deployments}/{name}") is None,
        timeout=120,
        what="garbage collection of the Deployment",
    )
    wait_for(
        lambda: api.get(f"/api/v1/namespaces/{ns}/services/{name}") is None,
        timeout=120,
        what="garbage collection of the Service",
    )

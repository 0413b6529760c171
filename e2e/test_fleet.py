"""memplace at fleet size on a real control plane with fake GPU nodes (``E2E_FAKE_NODES=1``).

A burst of 50 reaching a terminal phase with no duplicates, then garbage-collected on delete; the
operator SIGKILLed mid-burst and converging with nothing moved; an infeasible edit keeping the
running placement (PlacementKept); a new Node placing a deployment that was Unschedulable.

Each test has its own names and pool, in one namespace deleted at the end. Fake nodes (not the
cluster's real GPUs): 50 vLLM pods on real GPUs is not a test. Waits are bounded, never timed
assertions: issue 15 measured 300 deployments reaching a terminal phase in 50 s.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
from fakes import FakeNodes, wait_for
from kubeapi import Api

NS = "memplace-e2e-fleet"
POOL_LABEL = "memplace.io/e2e-pool"
BURST_POOL, GROW_POOL = "e2e-fleet", "e2e-grow"
MDS = f"/apis/memplace.io/v1alpha1/namespaces/{NS}/modeldeployments"
DEPLOYMENTS = f"/apis/apps/v1/namespaces/{NS}/deployments"
SERVICES = f"/api/v1/namespaces/{NS}/services"
POOLS = "/apis/memplace.io/v1alpha1/placementpools"
TERMINAL = {"Placed", "Ready", "Unschedulable", "Invalid"}
TOLERATE_NO_KUBELET = [  # fake nodes have no kubelet: the controller may still taint them
    {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoSchedule"},
]


@pytest.fixture(scope="module")
def fake_nodes(api: Api) -> Iterator[FakeNodes]:
    """Two pools of fake 8×A100 nodes: 7 for the bursts (56 GPUs), 1 for the capacity test."""
    if os.environ.get("E2E_FAKE_NODES") != "1":
        pytest.skip("fleet e2e creates fake GPU nodes: set E2E_FAKE_NODES=1")
    fakes = FakeNodes(api)
    try:
        for pool, count in ((BURST_POOL, 7), (GROW_POOL, 1)):
            for index in range(count):
                fakes.add(f"memplace-{pool}-{index}", {POOL_LABEL: pool})
            api.create(POOLS, {"apiVersion": "memplace.io/v1alpha1", "kind": "PlacementPool",
                               "metadata": {"name": pool},
                               "spec": {"nodeSelector": {POOL_LABEL: pool},
                                        "pricePerNodeHour": 30.0,
                                        "tolerations": TOLERATE_NO_KUBELET}})
        yield fakes
    finally:
        for pool in (BURST_POOL, GROW_POOL):
            api.delete(f"{POOLS}/{pool}")
        fakes.close()


@pytest.fixture(scope="module")
def fleet(api: Api, operator: Any, fake_nodes: FakeNodes) -> Iterator[Api]:
    api.create("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                      "metadata": {"name": NS}})
    try:
        yield api
    finally:
        api.delete(f"/api/v1/namespaces/{NS}")


def model_deployment(name: str, pool: str, *, parameters: float = 1.0e9,
                     replicas: int = 1) -> dict[str, Any]:
    return {"apiVersion": "memplace.io/v1alpha1", "kind": "ModelDeployment",
            "metadata": {"name": name, "namespace": NS},
            "spec": {"model": {"name": "Qwen/Qwen3-0.6B", "parameters": parameters},
                     "workload": {"contextTokens": 4096, "concurrency": 4,
                                  "minReplicas": replicas},
                     "placement": {"pools": [pool], "tiers": ["gpu"]},
                     "runtime": {"engine": "vllm", "port": 8000}}}


def mds(api: Api, prefix: str) -> dict[str, dict[str, Any]]:
    return {md["metadata"]["name"]: md for md in api.items(MDS)
            if md["metadata"]["name"].startswith(prefix)}


def owned(api: Api, url: str, prefix: str) -> dict[str, list[str]]:
    """Owner ModelDeployment name → names of the objects at ``url`` it owns."""
    uids = {md["metadata"]["uid"]: name for name, md in mds(api, prefix).items()}
    found: dict[str, list[str]] = {}
    for obj in api.items(url):
        for ref in obj["metadata"].get("ownerReferences") or []:
            if ref["uid"] in uids:
                found.setdefault(uids[ref["uid"]], []).append(obj["metadata"]["name"])
    return found


def all_terminal(api: Api, prefix: str, count: int) -> dict[str, dict[str, Any]] | None:
    found = mds(api, prefix)
    phases = [(md.get("status") or {}).get("phase") for md in found.values()]
    return found if len(found) == count and all(p in TERMINAL for p in phases) else None


def placed(found: dict[str, dict[str, Any]]) -> set[str]:
    return {name for name, md in found.items()
            if (md.get("status") or {}).get("phase") in ("Placed", "Ready")}


def assert_one_deployment_and_service_each(api: Api, prefix: str,
                                           found: dict[str, dict[str, Any]]) -> None:
    want = {name: [name] for name in placed(found)}
    deployments = wait_for(lambda: (d := owned(api, DEPLOYMENTS, prefix)) == want and d
                           or None, timeout=60, what="one Deployment per placed deployment")
    assert deployments == want
    assert owned(api, SERVICES, prefix) == want


def running(api: Api, prefix: str) -> dict[str, tuple[Any, ...]]:
    """Per placed deployment: its placement (less ``nodes``, a packing detail the pods are not
    pinned to), its Deployment's generation and plan hash: a move changes one of them."""
    deployments = {d["metadata"]["name"]: d for d in api.items(DEPLOYMENTS)}
    found = {}
    for name, md in mds(api, prefix).items():
        placement = dict((md.get("status") or {}).get("placement") or {})
        placement.pop("nodes", None)
        deployment = deployments.get(name)
        if placement and deployment:
            found[name] = (placement, deployment["metadata"]["generation"],
                           deployment["metadata"].get("annotations", {})
                           .get("memplace.io/plan-hash"))
    return found


def delete_all(api: Api, prefix: str) -> None:
    for name in mds(api, prefix):
        api.delete(f"{MDS}/{name}")
    wait_for(lambda: not owned(api, DEPLOYMENTS, prefix) and not mds(api, prefix), timeout=180,
             what=f"the {prefix}* deployments and what they own to be deleted")


def test_a_burst_of_50_reaches_a_terminal_phase_without_duplicates_and_is_collected(fleet):
    for index in range(50):
        fleet.create(MDS, model_deployment(f"burst-{index:02d}", BURST_POOL))
    found = wait_for(lambda: all_terminal(fleet, "burst-", 50), timeout=240,
                     what="all 50 in a terminal phase")
    assert placed(found), "none of the burst was placed on 56 free GPUs"
    assert_one_deployment_and_service_each(fleet, "burst-", found)

    names = set(found)
    for name in names:
        fleet.delete(f"{MDS}/{name}")
    wait_for(lambda: not [d for d in fleet.items(DEPLOYMENTS) if d["metadata"]["name"] in names]
             and not [s for s in fleet.items(SERVICES) if s["metadata"]["name"] in names],
             timeout=180, what="garbage collection of the burst's Deployments and Services")


def test_killing_the_operator_mid_burst_converges_with_nothing_moved_or_duplicated(
        fleet, operator):
    if operator is None:
        pytest.skip("the operator is installed in the cluster (E2E_OPERATOR=installed): "
                    "only a local one can be killed")
    for index in range(30):
        fleet.create(MDS, model_deployment(f"kill-{index:02d}", BURST_POOL,
                                           replicas=1 + index % 2))
    wait_for(lambda: len(running(fleet, "kill-")) >= 10, timeout=120, interval=0.2,
             what="a third of the burst placed")
    before = running(fleet, "kill-")
    operator.kill()
    operator.start()
    found = wait_for(lambda: all_terminal(fleet, "kill-", 30), timeout=240,
                     what=f"the burst to converge after the restart\n{operator.tail()}")
    assert len(before) < len(placed(found)), "the kill came after the burst was placed"
    assert_one_deployment_and_service_each(fleet, "kill-", found)
    after = running(fleet, "kill-")
    moved = {name: (was, after.get(name)) for name, was in before.items()
             if after.get(name) != was}
    assert not moved, f"running placements moved after the restart: {moved}"
    delete_all(fleet, "kill-")


def test_an_infeasible_edit_keeps_the_running_placement(fleet):
    fleet.create(MDS, model_deployment("kept", BURST_POOL))
    wait_for(lambda: running(fleet, "kept"), what="kept placed")
    before = running(fleet, "kept")
    # No GPU answers the first token in 10 microseconds.
    fleet.merge_patch(f"{MDS}/kept", {"spec": {"slo": {"timeToFirstTokenMs": 0.01}}})

    def kept() -> dict[str, Any] | None:
        status = (fleet.get(f"{MDS}/kept") or {}).get("status") or {}
        return status if status.get("observedGeneration") == 2 else None

    status = wait_for(kept, what="the edit to be observed")
    assert status["phase"] in ("Placed", "Ready")
    placed_condition = next(c for c in status["conditions"] if c["type"] == "Placed")
    assert placed_condition["reason"] == "PlacementKept"
    assert running(fleet, "kept") == before
    events = wait_for(lambda: [e for e in fleet.items(f"/api/v1/namespaces/{NS}/events")
                               if e["involvedObject"].get("name") == "kept"
                               and e.get("reason") == "PlacementKept"], what="PlacementKept")
    assert events[0]["type"] == "Warning"
    delete_all(fleet, "kept")


def test_a_new_node_places_a_deployment_that_was_unschedulable(fleet, fake_nodes):
    # 12 one-GPU replicas; the pool has one 8-GPU node until a second one joins.
    fleet.create(MDS, model_deployment("grow", GROW_POOL, replicas=12))
    status = wait_for(lambda: ((fleet.get(f"{MDS}/grow") or {}).get("status") or {})
                      .get("phase"), what="grow planned")
    assert status == "Unschedulable"
    assert fleet.get(f"{DEPLOYMENTS}/grow") is None

    fake_nodes.add(f"memplace-{GROW_POOL}-1", {POOL_LABEL: GROW_POOL})
    deployment = wait_for(lambda: fleet.get(f"{DEPLOYMENTS}/grow"), timeout=120,
                          what="grow placed once the node joined")
    assert deployment["spec"]["replicas"] == 12
    assert deployment["spec"]["template"]["spec"]["nodeSelector"][POOL_LABEL] == GROW_POOL
    final = (fleet.get(f"{MDS}/grow") or {})["status"]
    assert final["phase"] in ("Placed", "Ready") and final["placement"]["pool"] == GROW_POOL
    delete_all(fleet, "grow")

"""memplace at fleet size on a real control plane with fake GPU nodes (``E2E_FAKE_NODES=1``).

A burst of 50 reaching a terminal phase with no duplicates, every pod bound by the scheduler to
the pool, then garbage-collected on delete; the operator SIGKILLed mid-burst and converging with
nothing moved or duplicated; an infeasible edit keeping the running placement (PlacementKept);
a new Node placing a deployment that was Unschedulable, its pods bound across both nodes.

One namespace and two pools per run, named with the run id; after each test every
ModelDeployment it made is deleted and awaited, so a failed test leaves nothing that takes
capacity from the next. Fake nodes (not the cluster's real GPUs): 50 vLLM pods on real GPUs is
not a test. Waits are bounded, never timed assertions: issue 15 measured 300 deployments
reaching a terminal phase in 50 s.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator
from typing import Any

import pytest
from checks import binding_problems
from fakes import FakeNodes, wait_for
from kubeapi import Api
from lifecycle import RUN_LABEL, namespace

POOL_LABEL = "memplace.io/e2e-pool"
POOLS = "/apis/memplace.io/v1alpha1/placementpools"
TERMINAL = {"Placed", "Ready", "Unschedulable", "Invalid"}
PLACED = {"Placed", "Ready"}
BURST_NODES = 7  # 56 GPUs: the burst of 50 one-GPU deployments fits, with room to spare
TOLERATE_NO_KUBELET = [  # fake nodes have no kubelet: should a heartbeat be late, they are tainted
    {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoSchedule"},
]


@dataclasses.dataclass
class Fleet:
    api: Api
    ns: str
    burst_pool: str
    grow_pool: str
    nodes: FakeNodes
    run_id: str

    @property
    def mds(self) -> str:
        return f"/apis/memplace.io/v1alpha1/namespaces/{self.ns}/modeldeployments"

    @property
    def deployments(self) -> str:
        return f"/apis/apps/v1/namespaces/{self.ns}/deployments"

    @property
    def services(self) -> str:
        return f"/api/v1/namespaces/{self.ns}/services"

    def selector(self, pool: str) -> dict[str, str]:
        return {POOL_LABEL: pool}


@pytest.fixture(scope="module")
def fake_nodes(api: Api, run_id: str) -> Iterator[tuple[FakeNodes, str, str]]:
    """Two pools of fake 8×A100 nodes: 7 for the bursts (56 GPUs), 1 for the capacity test."""
    if os.environ.get("E2E_FAKE_NODES") != "1":
        pytest.skip("fleet e2e creates fake GPU nodes: set E2E_FAKE_NODES=1")
    burst, grow = f"e2e-{run_id}-fleet", f"e2e-{run_id}-grow"
    fakes = FakeNodes(api)
    try:
        for pool, count in ((burst, BURST_NODES), (grow, 1)):
            for index in range(count):
                fakes.add(f"memplace-{pool}-{index}", {POOL_LABEL: pool, RUN_LABEL: run_id})
            api.create(
                POOLS,
                {
                    "apiVersion": "memplace.io/v1alpha1",
                    "kind": "PlacementPool",
                    "metadata": {"name": pool, "labels": {RUN_LABEL: run_id}},
                    "spec": {
                        "nodeSelector": {POOL_LABEL: pool},
                        "pricePerNodeHour": 30.0,
                        "tolerations": TOLERATE_NO_KUBELET,
                    },
                },
            )
        yield fakes, burst, grow
    finally:
        for pool in (burst, grow):
            api.delete(f"{POOLS}/{pool}")
        fakes.close()


@pytest.fixture(scope="module")
def fleet(
    api: Api, operator: Any, fake_nodes: tuple[FakeNodes, str, str], run_id: str
) -> Iterator[Fleet]:
    fakes, burst, grow = fake_nodes
    with namespace(api, f"memplace-e2e-fleet-{run_id}", run_id) as ns:
        yield Fleet(api, ns, burst, grow, fakes, run_id)


@pytest.fixture(autouse=True)
def _nothing_left_behind(fleet: Fleet) -> Iterator[None]:
    yield
    delete_all(fleet, "")


def model_deployment(
    fleet: Fleet, name: str, pool: str, *, parameters: float = 1.0e9, replicas: int = 1
) -> dict[str, Any]:
    return {
        "apiVersion": "memplace.io/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": name, "namespace": fleet.ns},
        "spec": {
            "model": {"name": "Qwen/Qwen3-0.6B", "parameters": parameters},
            "workload": {"contextTokens": 4096, "concurrency": 4, "minReplicas": replicas},
            "placement": {"pools": [pool], "tiers": ["gpu"]},
            "runtime": {"engine": "vllm", "port": 8000},
        },
    }


def mds(fleet: Fleet, prefix: str) -> dict[str, dict[str, Any]]:
    return {
        md["metadata"]["name"]: md
        for md in fleet.api.items(fleet.mds)
        if md["metadata"]["name"].startswith(prefix)
    }


def owned_by(fleet: Fleet, url: str, uids: dict[str, str]) -> dict[str, list[str]]:
    """Owner name → names of the objects at ``url`` whose owner reference has one of ``uids``
    (uid → owner name): found by uid, so it also sees what outlives a deleted owner."""
    found: dict[str, list[str]] = {}
    for obj in fleet.api.items(url):
        for ref in obj["metadata"].get("ownerReferences") or []:
            if ref["uid"] in uids:
                found.setdefault(uids[ref["uid"]], []).append(obj["metadata"]["name"])
    return found


def uids_of(found: dict[str, dict[str, Any]]) -> dict[str, str]:
    return {md["metadata"]["uid"]: name for name, md in found.items()}


def phases(fleet: Fleet, prefix: str) -> dict[str | None, int]:
    counts: dict[str | None, int] = {}
    for md in mds(fleet, prefix).values():
        phase = (md.get("status") or {}).get("phase")
        counts[phase] = counts.get(phase, 0) + 1
    return counts


def all_terminal(fleet: Fleet, prefix: str, count: int) -> dict[str, dict[str, Any]] | None:
    found = mds(fleet, prefix)
    done = [(md.get("status") or {}).get("phase") in TERMINAL for md in found.values()]
    return found if len(found) == count and all(done) else None


def placed(found: dict[str, dict[str, Any]]) -> set[str]:
    return {name for name, md in found.items() if (md.get("status") or {}).get("phase") in PLACED}


def assert_one_deployment_and_service_each(fleet: Fleet, found: dict[str, dict[str, Any]]) -> None:
    want = {name: [name] for name in placed(found)}
    uids = uids_of(found)
    wait_for(
        lambda: owned_by(fleet, fleet.deployments, uids) == want,
        timeout=60,
        what="one Deployment per placed deployment, none for the others",
        state=lambda: owned_by(fleet, fleet.deployments, uids),
    )
    assert owned_by(fleet, fleet.services, uids) == want


def assert_bound_to(fleet: Fleet, names: set[str], pool: str) -> None:
    """Every pod of the Deployments ``names`` exists and is bound to a node of ``pool``."""

    def problems() -> list[str]:
        deployments = {d["metadata"]["name"]: d for d in fleet.api.items(fleet.deployments)}
        pods = [
            p
            for p in fleet.api.items(f"/api/v1/namespaces/{fleet.ns}/pods")
            if (p["metadata"].get("labels") or {}).get("memplace.io/deployment") in names
            and not p["metadata"].get("deletionTimestamp")
        ]
        wanted = sum((deployments.get(n) or {}).get("spec", {}).get("replicas", 1) for n in names)
        short = [f"{len(pods)} of {wanted} pods exist"] if len(pods) < wanted else []
        return short + binding_problems(
            pods, fleet.api.items("/api/v1/nodes"), fleet.selector(pool)
        )

    wait_for(
        lambda: not problems(),
        timeout=180,
        interval=2,
        what=f"the scheduler to bind every pod of {len(names)} deployment(s) to {pool}",
        state=lambda: f"{problems()[:10]}; nodes: {fleet.nodes.state()}",
    )


def running(fleet: Fleet, prefix: str) -> dict[str, tuple[Any, ...]]:
    """Per placed deployment: its placement (less ``nodes``, a packing detail the pods are not
    pinned to), its Deployment's generation and plan hash: a move changes one of them."""
    deployments = {d["metadata"]["name"]: d for d in fleet.api.items(fleet.deployments)}
    found = {}
    for name, md in mds(fleet, prefix).items():
        placement = dict((md.get("status") or {}).get("placement") or {})
        placement.pop("nodes", None)
        deployment = deployments.get(name)
        if placement and deployment:
            found[name] = (
                placement,
                deployment["metadata"]["generation"],
                deployment["metadata"].get("annotations", {}).get("memplace.io/plan-hash"),
            )
    return found


def delete_all(fleet: Fleet, prefix: str) -> None:
    """Delete the ModelDeployments named ``prefix…`` and wait until they, and the Deployments
    and Services they owned, are gone (the garbage collector works in the background)."""
    found = mds(fleet, prefix)
    uids = uids_of(found)
    for name in found:
        fleet.api.delete(f"{fleet.mds}/{name}")

    def left() -> dict[str, Any]:
        return {
            "modeldeployments": sorted(mds(fleet, prefix)),
            "deployments": owned_by(fleet, fleet.deployments, uids),
            "services": owned_by(fleet, fleet.services, uids),
        }

    wait_for(
        lambda: not any(left().values()),
        timeout=180,
        interval=2,
        what=f"the {prefix or 'every'}* ModelDeployments and what they own to be deleted",
        state=left,
    )


def test_a_burst_of_50_reaches_a_terminal_phase_without_duplicates_and_is_collected(fleet):
    for index in range(50):
        fleet.api.create(fleet.mds, model_deployment(fleet, f"burst-{index:02d}", fleet.burst_pool))
    found = wait_for(
        lambda: all_terminal(fleet, "burst-", 50),
        timeout=240,
        what="all 50 in a terminal phase",
        state=lambda: phases(fleet, "burst-"),
    )
    assert placed(found), f"none of the burst was placed on 56 free GPUs: {phases(fleet, 'burst-')}"
    assert_one_deployment_and_service_each(fleet, found)
    assert_bound_to(fleet, placed(found), fleet.burst_pool)
    delete_all(fleet, "burst-")


KILLS = 3
"""SIGKILLs during the burst (the issue's real-cluster run killed five times during 100)."""


def test_killing_the_operator_mid_burst_converges_with_nothing_moved_or_duplicated(fleet, operator):
    if operator is None:
        pytest.skip(
            "the operator is installed in the cluster (E2E_OPERATOR=installed): "
            "only a local one can be killed"
        )
    burst = 30
    for index in range(burst):
        fleet.api.create(
            fleet.mds,
            model_deployment(fleet, f"kill-{index:02d}", fleet.burst_pool, replicas=1 + index % 2),
        )
    # Up to KILLS SIGKILLs, each once the burst has progressed since the last start, while some
    # of it is still unplaced: the first at the first placement, so that a fast control plane
    # cannot place all of it before the kill (a kill after that proves nothing).
    before: dict[str, tuple[Any, ...]] = {}
    kills = 0
    for _ in range(KILLS):
        seen = len(running(fleet, "kill-"))

        def progressed(seen: int = seen) -> list[dict[str, tuple[Any, ...]]] | None:
            now = running(fleet, "kill-")  # in a list: true also when it is empty
            return [now] if len(now) > seen or all_terminal(fleet, "kill-", burst) else None

        [snapshot] = wait_for(
            progressed,
            timeout=120,
            interval=0.1,
            what="the burst to progress since the operator started",
            state=lambda: phases(fleet, "kill-"),
        )
        if all_terminal(fleet, "kill-", burst):
            break  # nothing left to interrupt
        operator.kill()
        kills += 1
        for name, placement in snapshot.items():
            before.setdefault(name, placement)
        operator.start()
    assert kills, "the operator placed the whole burst before the first kill"
    found = wait_for(
        lambda: all_terminal(fleet, "kill-", burst),
        timeout=240,
        what=f"the burst to converge after {kills} kills",
        state=lambda: f"{phases(fleet, 'kill-')}\n{operator.tail()}",
    )
    assert len(before) < len(placed(found)), (
        f"every kill came after all {len(before)} were placed: nothing was left mid-burst"
    )
    assert_one_deployment_and_service_each(fleet, found)
    after = running(fleet, "kill-")
    moved = {name: (was, after.get(name)) for name, was in before.items() if after.get(name) != was}
    assert not moved, f"running placements moved after the restart: {moved}"
    delete_all(fleet, "kill-")


def test_an_infeasible_edit_keeps_the_running_placement(fleet):
    fleet.api.create(fleet.mds, model_deployment(fleet, "kept", fleet.burst_pool))
    wait_for(
        lambda: running(fleet, "kept"), what="kept placed", state=lambda: phases(fleet, "kept")
    )
    before = running(fleet, "kept")
    # No GPU answers the first token in 10 microseconds.
    fleet.api.merge_patch(f"{fleet.mds}/kept", {"spec": {"slo": {"timeToFirstTokenMs": 0.01}}})

    def status() -> dict[str, Any]:
        return (fleet.api.get(f"{fleet.mds}/kept") or {}).get("status") or {}

    seen = wait_for(
        lambda: status() if status().get("observedGeneration") == 2 else None,
        what="the edit to be observed (observedGeneration 2)",
        state=status,
    )
    assert seen["phase"] in PLACED
    placed_condition = next(c for c in seen["conditions"] if c["type"] == "Placed")
    assert placed_condition["reason"] == "PlacementKept"
    assert running(fleet, "kept") == before
    events = wait_for(
        lambda: [
            e
            for e in fleet.api.items(f"/api/v1/namespaces/{fleet.ns}/events")
            if e["involvedObject"].get("name") == "kept" and e.get("reason") == "PlacementKept"
        ],
        what="the PlacementKept event",
    )
    assert events[0]["type"] == "Warning"
    delete_all(fleet, "kept")


def test_a_new_node_places_a_deployment_that_was_unschedulable(fleet):
    # 12 one-GPU replicas; the pool has one 8-GPU node until a second one joins.
    fleet.api.create(fleet.mds, model_deployment(fleet, "grow", fleet.grow_pool, replicas=12))

    def phase() -> str | None:
        return ((fleet.api.get(f"{fleet.mds}/grow") or {}).get("status") or {}).get("phase")

    first = wait_for(
        lambda: phase() if phase() in TERMINAL else None, what="grow planned", state=phase
    )
    assert first == "Unschedulable"
    assert fleet.api.get(f"{fleet.deployments}/grow") is None

    fleet.nodes.add(
        f"memplace-{fleet.grow_pool}-1", {POOL_LABEL: fleet.grow_pool, RUN_LABEL: fleet.run_id}
    )
    deployment = wait_for(
        lambda: fleet.api.get(f"{fleet.deployments}/grow"),
        timeout=120,
        what="grow placed once the node joined",
        state=phase,
    )
    assert deployment["spec"]["replicas"] == 12
    assert deployment["spec"]["template"]["spec"]["nodeSelector"][POOL_LABEL] == fleet.grow_pool
    final = wait_for(
        lambda: phase() in PLACED and fleet.api.get(f"{fleet.mds}/grow"),
        what="grow Placed",
        state=phase,
    )["status"]
    assert final["placement"]["pool"] == fleet.grow_pool
    assert_bound_to(fleet, {"grow"}, fleet.grow_pool)  # 12 pods over both nodes' 16 GPUs
    delete_all(fleet, "grow")

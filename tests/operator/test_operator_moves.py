"""Moves without a gap, with the real operator against KMock: the new Deployment comes up beside
the old one, the Service switches once it is Ready, then the old one goes (``moves``).

The emulator has no controllers: the tests play the Deployment controller's part by writing
``status.readyReplicas``, and the scheduler's by posting a pod that cannot be scheduled.
"""

from __future__ import annotations

import asyncio
import datetime
from typing import Any

from operator_support import (
    DEPLOYMENTS,
    NS,
    SERVICES,
    add_pool,
    condition,
    events_for,
    eventually,
    md_url,
    model_deployment,
    status_of,
)

WORKLOAD = "memplace.io/workload"


def owned(cluster, name: str) -> dict[str, dict[str, Any]]:
    """The Deployments of ModelDeployment ``name``, by their own name."""
    return {
        d["metadata"]["name"]: d
        for d in cluster.stored_all(DEPLOYMENTS)
        if d["metadata"].get("labels", {}).get("memplace.io/deployment") == name
    }


def pool_of(deployment: dict[str, Any]) -> str:
    return deployment["spec"]["template"]["spec"]["nodeSelector"]["memplace.io/test-pool"]


def selected(cluster, name: str) -> str | None:
    service = cluster.stored(SERVICES, NS, name) or {}
    return (service.get("spec") or {}).get("selector", {}).get(WORKLOAD)


async def set_ready(cluster, deployment: str) -> None:
    """Play the Deployment controller: every replica of the current generation Ready."""
    stored = cluster.stored(DEPLOYMENTS, NS, deployment)
    replicas = stored["spec"]["replicas"]
    await cluster.merge_patch(
        f"/apis/apps/v1/namespaces/{NS}/deployments/{deployment}/status",
        {"status": {"observedGeneration": stored["metadata"]["generation"], "replicas": replicas,
                    "readyReplicas": replicas, "availableReplicas": replicas}},
    )


async def placed_and_serving_on_dear(cluster) -> dict[str, Any]:
    """A deployment placed on pool "dear" whose only Deployment is Ready (it serves)."""
    await add_pool(cluster, "dear", 50.0)
    await cluster.create(md_url(), model_deployment("summarizer"))
    await eventually(lambda: cluster.stored(DEPLOYMENTS, NS, "summarizer"), what="a Deployment")
    await set_ready(cluster, "summarizer")
    await eventually(lambda: status_of(cluster, "summarizer").get("phase") == "Ready")
    return cluster.stored(DEPLOYMENTS, NS, "summarizer")


async def moving(cluster) -> str:
    """A cheaper pool appears; wait for the successor Deployment; its name."""
    await add_pool(cluster, "cheap", 10.0)
    found = await eventually(
        lambda: [n for n, d in owned(cluster, "summarizer").items() if pool_of(d) == "cheap"],
        what="the successor Deployment",
    )
    return found[0]


async def test_a_move_starts_the_new_deployment_switches_when_ready_then_deletes_the_old(
    cluster, operator
):
    old = await placed_and_serving_on_dear(cluster)
    successor = await moving(cluster)

    # Beside, not instead: the old Deployment is untouched and still selected.
    assert successor != "summarizer"
    assert cluster.stored(DEPLOYMENTS, NS, "summarizer")["spec"] == old["spec"]
    assert selected(cluster, "summarizer") == "summarizer"
    status = await eventually(lambda: (s := status_of(cluster, "summarizer")).get("move") and s)
    assert status["move"]["fromDeployment"] == "summarizer"
    assert status["move"]["toDeployment"] == successor
    assert status["move"]["placement"]["pool"] == "cheap"
    assert status["placement"]["pool"] == "dear"  # what serves, until the switch
    assert condition(status, "Placed")["reason"] == "Moving"
    started = await eventually(lambda: events_for(cluster, "summarizer", "MoveStarted"))
    assert successor in started[0]["message"]
    replanned = await eventually(lambda: events_for(cluster, "summarizer", "Replanned"))
    assert "dear" in replanned[0]["message"] and "cheap" in replanned[0]["message"]

    await asyncio.sleep(1.0)  # several resync passes: not Ready, so nothing switches
    assert selected(cluster, "summarizer") == "summarizer"
    assert set(owned(cluster, "summarizer")) == {"summarizer", successor}

    await set_ready(cluster, successor)

    await eventually(lambda: selected(cluster, "summarizer") == successor, what="the switch")
    await eventually(lambda: set(owned(cluster, "summarizer")) == {successor}, what="old gone")
    status = await eventually(
        lambda: (s := status_of(cluster, "summarizer")).get("lastMoveTime") and s)
    assert status["placement"]["pool"] == "cheap"
    assert not status.get("move")
    assert status["phase"] == "Ready"
    await eventually(lambda: events_for(cluster, "summarizer", "MoveCompleted"))

    # The order the API server saw: create the successor, switch the Service, delete the old.
    writes = [(r.method, r.resource.plural, r.name or _posted_name(r))
              for r in cluster.seen()
              if r.resource is not None and r.resource.plural in ("deployments", "services")
              and r.method in ("POST", "PATCH", "DELETE") and r.subresource is None]
    created = writes.index(("POST", "deployments", successor))
    switched = writes.index(("PATCH", "services", "summarizer"))
    deleted = writes.index(("DELETE", "deployments", "summarizer"))
    assert created < switched < deleted, writes
    assert set(deleted_deployments(cluster)) == {"summarizer"}


def deleted_deployments(cluster) -> list[str]:
    return [r.name for r in cluster.seen() if r.method == "DELETE"
            and r.resource is not None and r.resource.plural == "deployments"]


def _posted_name(request) -> str | None:
    data = request.data if isinstance(request.data, dict) else {}
    return data.get("metadata", {}).get("name")


async def test_a_successor_that_cannot_be_scheduled_is_abandoned_and_the_old_one_serves_on(
    cluster, operator
):
    old = await placed_and_serving_on_dear(cluster)
    successor = await moving(cluster)

    await cluster.create(f"/api/v1/namespaces/{NS}/pods", {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": f"{successor}-abc", "namespace": NS, "labels": {
            "app.kubernetes.io/managed-by": "memplace", "memplace.io/deployment": "summarizer",
            WORKLOAD: successor, "memplace.io/pool": "cheap"}},
        "spec": {"containers": [{"name": "engine", "image": "x"}]},
        "status": {"phase": "Pending", "conditions": [{
            "type": "PodScheduled", "status": "False", "reason": "Unschedulable",
            "lastTransitionTime": "2020-01-01T00:00:00Z"}]},
    })

    abandoned = await eventually(lambda: events_for(cluster, "summarizer", "MoveAbandoned"))
    assert abandoned[0]["type"] == "Warning"
    assert "unschedulable on pool cheap" in abandoned[0]["message"]
    await eventually(lambda: set(owned(cluster, "summarizer")) == {"summarizer"})
    assert cluster.stored(DEPLOYMENTS, NS, "summarizer")["spec"] == old["spec"]
    assert selected(cluster, "summarizer") == "summarizer"
    status = await eventually(
        lambda: (s := status_of(cluster, "summarizer")).get("lastMoveTime") and s)
    assert not status.get("move")
    assert status["placement"]["pool"] == "dear"
    await asyncio.sleep(1.0)  # the re-plan after it skips the full pool: no second try
    assert set(owned(cluster, "summarizer")) == {"summarizer"}
    assert len(events_for(cluster, "summarizer", "MoveStarted")) == 1
    assert set(deleted_deployments(cluster)) == {successor}


async def test_a_move_inside_the_min_move_interval_keeps_the_placement_and_says_until_when(
    cluster, operator
):
    await placed_and_serving_on_dear(cluster)
    just_now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    await cluster.merge_patch(md_url(name="summarizer"), {"status": {"lastMoveTime": just_now}})
    await eventually(lambda: status_of(cluster, "summarizer").get("lastMoveTime") == just_now)

    await add_pool(cluster, "cheap", 10.0)

    deferred = await eventually(lambda: events_for(cluster, "summarizer", "MoveDeferred"))
    assert "allowed from" in deferred[0]["message"]
    status = status_of(cluster, "summarizer")
    assert condition(status, "Placed")["reason"] == "MoveDeferred"
    assert "allowed from" in condition(status, "Placed")["message"]
    assert status["placement"]["pool"] == "dear"
    await asyncio.sleep(1.0)
    assert set(owned(cluster, "summarizer")) == {"summarizer"}
    assert len(events_for(cluster, "summarizer", "MoveDeferred")) == 1  # said once
    assert not events_for(cluster, "summarizer", "MoveStarted")


async def test_a_replica_count_change_of_a_serving_deployment_scales_it_in_place(
    cluster, operator
):
    await placed_and_serving_on_dear(cluster)

    await cluster.merge_patch(md_url(name="summarizer"), {"spec": {"workload": {"minReplicas": 2}}})

    await eventually(lambda: cluster.stored(DEPLOYMENTS, NS, "summarizer")["spec"]["replicas"] == 2)
    await eventually(lambda: status_of(cluster, "summarizer").get("observedGeneration") == 2)
    await asyncio.sleep(0.5)
    assert set(owned(cluster, "summarizer")) == {"summarizer"}
    assert not events_for(cluster, "summarizer", "MoveStarted")
    assert events_for(cluster, "summarizer", "Replanned")


async def test_a_restarted_operator_does_not_move_a_serving_placement_by_itself(
    cluster, restartable_operator
):
    await placed_and_serving_on_dear(cluster)
    await restartable_operator.stop()
    # While it is down a cheaper pool appears; the restart alone moves nothing.
    await add_pool(cluster, "cheap", 10.0)
    await restartable_operator.start()

    status = await eventually(
        lambda: (s := status_of(cluster, "summarizer"))
        and condition(s, "Placed")["reason"] == "KeptAfterRestart" and s,
        what="the restart to keep the placement",
    )
    assert status["placement"]["pool"] == "dear"
    await asyncio.sleep(1.0)
    assert set(owned(cluster, "summarizer")) == {"summarizer"}
    assert not events_for(cluster, "summarizer", "MoveStarted")


async def test_a_restarted_operator_finishes_the_move_in_flight(cluster, restartable_operator):
    await placed_and_serving_on_dear(cluster)
    successor = await moving(cluster)
    await eventually(lambda: status_of(cluster, "summarizer").get("move"))
    await restartable_operator.stop()
    await set_ready(cluster, successor)  # became Ready while the operator was down
    await restartable_operator.start()

    await eventually(lambda: selected(cluster, "summarizer") == successor, what="the switch")
    await eventually(lambda: set(owned(cluster, "summarizer")) == {successor}, what="old gone")
    status = await eventually(
        lambda: (s := status_of(cluster, "summarizer")).get("lastMoveTime") and s)
    assert status["placement"]["pool"] == "cheap" and not status.get("move")


async def test_a_successor_created_just_before_a_crash_and_never_recorded_is_deleted(
    cluster, restartable_operator
):
    await placed_and_serving_on_dear(cluster)
    await restartable_operator.stop()
    # What a crash between creating a successor and writing status.move leaves behind.
    stray = cluster.stored(DEPLOYMENTS, NS, "summarizer")
    stray["metadata"] = {
        "name": "summarizer-0badc0de", "namespace": NS,
        "labels": {**stray["metadata"]["labels"], WORKLOAD: "summarizer-0badc0de"},
        "ownerReferences": stray["metadata"]["ownerReferences"]}
    stray.pop("status", None)
    await cluster.create(f"/apis/apps/v1/namespaces/{NS}/deployments", stray)
    await restartable_operator.start()

    await eventually(lambda: set(owned(cluster, "summarizer")) == {"summarizer"},
                     what="the stray to go")
    assert selected(cluster, "summarizer") == "summarizer"


async def test_a_deployment_rendered_before_the_workload_label_keeps_its_service_selector(
    cluster, restartable_operator
):
    await placed_and_serving_on_dear(cluster)
    await restartable_operator.stop()
    # What an older memplace left: a selector without the workload label, another plan hash.
    base = f"/apis/apps/v1/namespaces/{NS}/deployments/summarizer"
    legacy = {"memplace.io/deployment": "summarizer"}
    await cluster.merge_patch(base, {
        "metadata": {"annotations": {"memplace.io/plan-hash": "legacy"}},
        "spec": {"selector": {"matchLabels": {WORKLOAD: None}},
                 "template": {"metadata": {"labels": {WORKLOAD: None}}}}})
    await cluster.merge_patch(f"/api/v1/namespaces/{NS}/services/summarizer",
                              {"spec": {"selector": {WORKLOAD: None}}})
    stored = cluster.stored(DEPLOYMENTS, NS, "summarizer")
    assert stored["spec"]["selector"]["matchLabels"] == legacy
    await restartable_operator.start()

    await eventually(lambda: WORKLOAD in cluster.stored(DEPLOYMENTS, NS, "summarizer")
                     ["spec"]["template"]["metadata"]["labels"], what="the in-place patch")
    await asyncio.sleep(0.5)
    # The Service selects what the Deployment selects: its old pods stay behind it.
    assert cluster.stored(SERVICES, NS, "summarizer")["spec"]["selector"] == legacy


async def test_a_crash_between_the_switch_and_the_delete_deletes_the_old_one_only(
    cluster, restartable_operator
):
    await placed_and_serving_on_dear(cluster)
    successor = await moving(cluster)
    await eventually(lambda: status_of(cluster, "summarizer").get("move"))
    await restartable_operator.stop()
    # The operator switched the Service and died before deleting the old Deployment.
    await set_ready(cluster, successor)
    await cluster.merge_patch(f"/api/v1/namespaces/{NS}/services/summarizer",
                              {"spec": {"selector": {WORKLOAD: successor}}})
    await restartable_operator.start()

    await eventually(lambda: set(owned(cluster, "summarizer")) == {successor}, what="old gone")
    status = await eventually(
        lambda: (s := status_of(cluster, "summarizer")).get("lastMoveTime") and s)
    assert status["placement"]["pool"] == "cheap" and not status.get("move")
    assert selected(cluster, "summarizer") == successor
    await asyncio.sleep(0.5)
    assert set(owned(cluster, "summarizer")) == {successor}
    assert successor not in deleted_deployments(cluster), "the serving one deleted, re-created"


async def test_a_spec_edit_during_a_move_waits_for_it_and_never_starts_a_second(cluster, operator):
    await placed_and_serving_on_dear(cluster)
    successor = await moving(cluster)
    await add_pool(cluster, "third", 30.0)
    # the edit is planned against the new pool only once the operator has it (it writes the
    # pool's status then); a move in flight is not re-planned by a capacity change
    await eventually(
        lambda: (cluster.stored("memplace.io/v1alpha1/placementpools", None, "third") or {})
        .get("status"),
        what="the operator to see pool third",
    )

    await cluster.merge_patch(md_url(name="summarizer"),
                              {"spec": {"placement": {"pools": ["dear", "third"]}}})

    status = await eventually(
        lambda: (s := status_of(cluster, "summarizer")).get("observedGeneration") == 2
        and condition(s, "Placed")["reason"] == "MoveInFlight"
        and s
    )
    assert status["move"]["toDeployment"] == successor
    await asyncio.sleep(0.5)
    assert set(owned(cluster, "summarizer")) == {"summarizer", successor}

    await set_ready(cluster, successor)

    # The move ends; the edit is planned after it, and the rate limit holds its move.
    await eventually(lambda: set(owned(cluster, "summarizer")) == {successor}, what="old gone")
    deferred = await eventually(lambda: events_for(cluster, "summarizer", "MoveDeferred"))
    assert "allowed from" in deferred[0]["message"]
    assert len(events_for(cluster, "summarizer", "MoveStarted")) == 1
    assert set(owned(cluster, "summarizer")) == {successor}

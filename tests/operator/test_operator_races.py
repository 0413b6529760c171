"""The real operator against KMock where writes could collide: a paused peer, a status changed
under the resync loop, an object the API server refuses."""

from __future__ import annotations

import asyncio
import datetime
from typing import Any

import kmock
from operator_support import (
    DEPLOYMENTS,
    MDS,
    NS,
    OWN_ID,
    PEERING,
    PRIORITY,
    SERVICES,
    add_pool,
    add_unscheduled_pod,
    condition,
    events_for,
    eventually,
    md_url,
    model_deployment,
    status_of,
)

PEERING_URL = f"/apis/kopf.dev/v1/clusterkopfpeerings/{PEERING}"


def _iso(moment: datetime.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _writes(cluster, after: int) -> list[kmock.Request]:
    """Writes by the operator (anything but the peering's keep-alives) after request ``after``."""
    return [r for r in cluster.seen()[after:]
            if r.method in ("POST", "PATCH", "PUT", "DELETE") and r.resource is not None
            and r.resource.plural != "clusterkopfpeerings"]


async def test_a_paused_peer_writes_nothing_until_the_peer_above_it_expires(
    cluster, peered_operator
):
    await add_pool(cluster, "cheap", 10.0)
    await add_pool(cluster, "dear", 50.0)
    await cluster.create(md_url(), model_deployment("summarizer"))
    await eventually(lambda: status_of(cluster, "summarizer").get("placement", {})
                     .get("pool") == "cheap", timeout=15, what="placed while alone")
    peers = (cluster.stored("kopf.dev/v1/clusterkopfpeerings", None, PEERING) or {})["status"]
    assert peers[OWN_ID]["priority"] == PRIORITY

    # A pod the scheduler will give up on in 3s (1s past its transition): the resync loop, which
    # already indexed it, then marks the pool full and re-plans: a write, unless it is paused.
    now = datetime.datetime.now(datetime.UTC)
    since = _iso(now + datetime.timedelta(seconds=2))
    await add_unscheduled_pod(cluster, "summarizer", "cheap", since=since)
    await asyncio.sleep(0.5)  # indexed

    # A live peer with a higher priority: Kopf pauses this replica, and so must the loop.
    await cluster.merge_patch(PEERING_URL, {"status": {"other-replica": {
        "priority": PRIORITY + 1, "lifetime": 6, "lastseen": _iso(now)}}})
    await asyncio.sleep(0.3)
    seen = len(cluster.seen())
    await asyncio.sleep(3.5)  # the pod is stuck meanwhile
    assert not _writes(cluster, seen), [(r.method, r.url) for r in _writes(cluster, seen)]
    assert not events_for(cluster, "summarizer", "PoolFull")
    assert status_of(cluster, "summarizer")["placement"]["pool"] == "cheap"

    # The peer expires (lastseen + 6s): this replica takes over and acts on what it sees.
    full = await eventually(lambda: events_for(cluster, "summarizer", "PoolFull"), timeout=10,
                            what="PoolFull after the peer expired")
    assert "cheap" in full[0]["message"]
    await eventually(lambda: status_of(cluster, "summarizer").get("placement", {})
                     .get("pool") == "dear", what="the re-plan after the peer expired")


async def test_the_resync_loop_does_not_restore_a_status_changed_since_it_was_indexed(
    cluster, operator
):
    await add_pool(cluster, "a100", 30.0)
    await cluster.create(md_url(), model_deployment("summarizer"))
    await eventually(lambda: status_of(cluster, "summarizer").get("placement"))
    await asyncio.sleep(0.5)  # settled

    # A newer status than the operator's index holds: the object changes on the server without
    # a watch event reaching the operator yet (as when a handler's patch lands mid-resync).
    stored = cluster.objects[kmock.resource(MDS), NS, "summarizer"]
    newer = [dict(c, reason="Newer") if c["type"] == "Placed" else c
             for c in stored["status"]["conditions"]]
    version = str(int(stored["metadata"]["resourceVersion"]) + 500)
    stored.patch({"metadata": {"resourceVersion": version}, "status": {"conditions": newer}})

    # The Deployment becomes available: the loop wants phase Ready and a Ready condition.
    seen = len(cluster.seen())
    await cluster.merge_patch(
        f"/apis/apps/v1/namespaces/{NS}/deployments/summarizer/status",
        {"status": {"observedGeneration": 1, "replicas": 1, "availableReplicas": 1}},
    )
    refused = await eventually(lambda: _status_patches(cluster, seen), what="a status write")
    assert all(r.data["metadata"]["resourceVersion"] != version for r in refused)
    await asyncio.sleep(1.0)  # five resyncs
    status = status_of(cluster, "summarizer")
    assert condition(status, "Placed")["reason"] == "Newer", "a stale write restored it"
    assert status["phase"] == "Placed"


def _status_patches(cluster, after: int) -> list[Any]:
    return [r for r in cluster.seen()[after:]
            if r.method == "PATCH" and r.resource is not None
            and r.resource.plural == "modeldeployments" and r.subresource == "status"
            and isinstance(r.data, dict) and "resourceVersion" in (r.data.get("metadata") or {})]


async def test_a_deployment_the_api_server_refuses_is_invalid_and_not_retried(cluster, operator):
    await add_pool(cluster, "a100", 30.0)
    message = 'Deployment.apps "summarizer" is invalid: metadata.name: Invalid value'
    cluster.refuse("deployments", "summarizer", message)
    await cluster.create(md_url(), model_deployment("summarizer"))

    status = await eventually(lambda: (s := status_of(cluster, "summarizer"))
                              .get("phase") == "Invalid" and s, what="phase Invalid")
    assert message in status["message"]
    assert "rejected Deployment ml/summarizer" in status["message"]
    assert condition(status, "Valid")["status"] == "False"
    warning = await eventually(lambda: events_for(cluster, "summarizer", "Invalid"))
    assert warning[0]["type"] == "Warning" and message in warning[0]["message"]
    assert cluster.stored(DEPLOYMENTS, NS, "summarizer") is None

    def attempts() -> int:
        return len([r for r in cluster.seen() if r.method == "POST" and r.resource is not None
                    and r.resource.plural == "deployments"])

    tried = attempts()
    await asyncio.sleep(2.0)  # Kopf's backoff is 5s, the resync 0.2s
    assert attempts() == tried == 1
    assert len(events_for(cluster, "summarizer", "Invalid")) == 1


async def test_a_service_the_api_server_refuses_creates_nothing(cluster, operator):
    await add_pool(cluster, "a100", 30.0)
    cluster.refuse("services", "summarizer", "metadata.name: must be no more than 63 characters")
    await cluster.create(md_url(), model_deployment("summarizer"))

    status = await eventually(lambda: (s := status_of(cluster, "summarizer"))
                              .get("phase") == "Invalid" and s, what="phase Invalid")
    assert "rejected Service ml/summarizer: metadata.name" in status["message"]
    assert cluster.stored(DEPLOYMENTS, NS, "summarizer") is None
    assert cluster.stored(SERVICES, NS, "summarizer") is None

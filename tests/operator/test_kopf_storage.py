"""Kopf's bookkeeping lives in ``status.kopf``, written with our status (``operator/storage``).

One status PATCH records both what the operator decided and what Kopf needs to tell an update
from a create, so that a placement costs four writes (Service, Deployment, status, Event); an
object that an older operator recorded in annotations is still known after the upgrade.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import kopf
from operator_support import (
    DEPLOYMENTS,
    MDS,
    NS,
    add_pool,
    condition,
    events_for,
    eventually,
    md_url,
    model_deployment,
    status_of,
)

OLD_DIFFBASE = "memplace.io/last-handled-spec"
OLD_MARKER = "memplace.io/kopf-managed"


def _writes(cluster, since: int = 0) -> list[tuple[str, str, str | None]]:
    return [
        (r.method.value, r.resource.plural, r.subresource)
        for r in cluster.seen()[since:]
        if r.resource is not None
        and r.method.value not in ("GET", "HEAD")
        and r.resource.plural in ("modeldeployments", "deployments", "services", "events")
    ]


async def test_a_placement_costs_four_writes_and_kopf_records_it_in_status(cluster, operator):
    await add_pool(cluster, "a100", 30.0)
    before = len(cluster.seen())
    await cluster.create(md_url(), model_deployment("summarizer"))
    await eventually(lambda: events_for(cluster, "summarizer", "Placed"), what="the event")
    await asyncio.sleep(1.0)  # several resync passes: none writes again

    writes = [w for w in _writes(cluster, before) if w != ("POST", "modeldeployments", None)]
    assert sorted(writes, key=repr) == sorted(
        [
            ("POST", "services", None),
            ("POST", "deployments", None),
            ("PATCH", "modeldeployments", "status"),
            ("POST", "events", None),
        ],
        key=repr,
    ), writes
    stored = cluster.stored(MDS, NS, "summarizer")
    assert not [a for a in stored["metadata"].get("annotations") or {} if a.startswith("memplace")]
    handled = json.loads(stored["status"]["kopf"]["lastHandledSpec"])
    assert handled["spec"] == stored["spec"]


def _as_an_older_operator_left_it(stored: dict[str, Any]) -> dict[str, Any]:
    """The merge patch that turns ``stored`` into what the operator before status storage left:
    the diffbase in an annotation (Kopf's own encoding of it), nothing in ``status.kopf``."""
    body = kopf.Body({k: v for k, v in stored.items() if k != "status"})
    essence = kopf.AnnotationsDiffBaseStorage(prefix="memplace.io", key="last-handled-spec").build(
        body=body
    )
    encoded = json.dumps(essence, separators=(",", ":")) + "\n"
    return {"metadata": {"annotations": {OLD_DIFFBASE: encoded, OLD_MARKER: "yes"}}}


async def test_an_object_an_older_operator_recorded_in_annotations_is_resumed_not_created(
    cluster, restartable_operator
):
    await add_pool(cluster, "dear", 50.0)
    await cluster.create(md_url(), model_deployment("summarizer"))
    await eventually(lambda: status_of(cluster, "summarizer").get("placement"), what="placed")
    await asyncio.sleep(0.5)
    await restartable_operator.stop()
    # The upgrade: the object as the annotation-storing operator left it.
    stored = cluster.stored(MDS, NS, "summarizer")
    await cluster.merge_patch(md_url(name="summarizer"), _as_an_older_operator_left_it(stored))
    await cluster.merge_patch(md_url(name="summarizer") + "/status", {"status": {"kopf": None}})
    assert "kopf" not in cluster.stored(MDS, NS, "summarizer")["status"]
    # A cheaper pool appeared meanwhile: a create would move it, a restart (resume) never does.
    await add_pool(cluster, "cheap", 10.0)
    before = len(cluster.seen())
    await restartable_operator.start()

    status = await eventually(
        lambda: (
            (s := status_of(cluster, "summarizer"))
            and condition(s, "Placed")["reason"] == "KeptAfterRestart"
            and s
        ),
        what="the restart to keep the placement",
    )
    await asyncio.sleep(1.0)
    assert status["placement"]["pool"] == "dear"
    assert not status.get("move")
    assert [d["metadata"]["name"] for d in cluster.stored_all(DEPLOYMENTS)] == ["summarizer"]
    assert not events_for(cluster, "summarizer", "MoveStarted")
    # Nothing but status is written to the object (the old annotation stays, unread while
    # status.kopf has the diffbase).
    assert ("PATCH", "modeldeployments", None) not in _writes(cluster, before)

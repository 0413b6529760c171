"""Batched re-plans with the real operator against KMock (``consolidate``): when capacity
changes, the batch moves a running deployment (without a gap) to place one that only fits where
the first one runs; one deployment's re-plan alone never would."""

from __future__ import annotations

from operator_support import (
    DEPLOYMENTS,
    NS,
    add_pool,
    eventually,
    md_url,
    model_deployment,
    status_of,
)
from test_operator_moves import owned, pool_of, set_ready


async def test_a_capacity_change_moves_a_running_deployment_to_place_one_that_only_fits_there(
    cluster, operator
):
    await add_pool(cluster, "cheap", 10.0)
    filler = {"workload": {"contextTokens": 4096, "concurrency": 4, "minReplicas": 8}}
    await cluster.create(md_url(), model_deployment("wide", **filler))
    await eventually(lambda: cluster.stored(DEPLOYMENTS, NS, "wide"), what="wide's Deployment")
    await set_ready(cluster, "wide")
    await eventually(lambda: status_of(cluster, "wide").get("phase") == "Ready")
    assert status_of(cluster, "wide")["placement"]["pool"] == "cheap"

    pinned = {"placement": {"pools": ["cheap"]}}
    await cluster.create(md_url(), model_deployment("pinned", **pinned))
    await eventually(lambda: status_of(cluster, "pinned").get("phase") == "Unschedulable")

    await add_pool(cluster, "dear", 50.0)  # capacity changed: the batch re-plans both
    successor = await eventually(
        lambda: [n for n, d in owned(cluster, "wide").items() if pool_of(d) == "dear"],
        what="wide's successor on dear",
    )
    await set_ready(cluster, successor[0])
    await eventually(lambda: status_of(cluster, "wide")["placement"]["pool"] == "dear",
                     what="wide moved")
    status = await eventually(
        lambda: (s := status_of(cluster, "pinned")).get("phase") == "Placed" and s,
        what="pinned placed",
    )
    assert status["placement"]["pool"] == "cheap"

"""``--consolidate-every``: the periodic batch re-plan moves a running deployment into room that
was freed without any capacity change (Karpenter's consolidation), and without it nothing moves.

Two one-GPU pools, ``cheap`` ($2/h) and ``dear`` ($5/h). ``first`` takes the cheap GPU, so
``second`` goes to ``dear``; deleting ``first`` frees the cheap GPU. That is no capacity change
(pools, nodes and reports are the same), so only a consolidation pass re-plans ``second``,
which then saves 60 %, above the 10 % threshold.
"""

from __future__ import annotations

import asyncio

import pytest_asyncio
from operator_support import (
    DEPLOYMENTS,
    MDS,
    NODES_URL,
    NS,
    POOLS_URL,
    events_for,
    eventually,
    gpu_node,
    md_url,
    model_deployment,
    pool,
    status_of,
)

from conftest import CHART_DEFAULTS, _running


@pytest_asyncio.fixture()
async def consolidating(cluster):
    async with _running(cluster, ["--standalone"], CHART_DEFAULTS,
                        consolidate_every_seconds=1.0) as running:
        yield running


async def one_gpu_pool(cluster, name: str, price: float) -> None:
    await cluster.create(NODES_URL, gpu_node(f"{name}-node-0", name, gpus=1))
    await cluster.create(POOLS_URL, pool(name, price, gpus=1))


def pool_of(cluster, name: str) -> str | None:
    return (status_of(cluster, name).get("placement") or {}).get("pool")


async def second_on_dear_after_first_is_deleted(cluster) -> None:
    await one_gpu_pool(cluster, "cheap", 2.0)
    await one_gpu_pool(cluster, "dear", 5.0)
    await cluster.create(md_url(), model_deployment("first"))
    await eventually(lambda: pool_of(cluster, "first") == "cheap", what="first on cheap")
    await cluster.create(md_url(), model_deployment("second"))
    await eventually(lambda: pool_of(cluster, "second") == "dear", what="second on dear")
    await eventually(lambda: cluster.stored(DEPLOYMENTS, NS, "second"), what="its Deployment")
    await cluster.delete(md_url(name="first"))
    await eventually(lambda: cluster.stored(MDS, NS, "first") is None, what="first deleted")


async def test_a_consolidation_pass_moves_a_deployment_into_room_freed_by_a_deletion(
    cluster, consolidating
):
    await second_on_dear_after_first_is_deleted(cluster)

    await eventually(lambda: pool_of(cluster, "second") == "cheap", timeout=30,
                     what="second re-planned onto the freed cheap GPU")
    replanned = await eventually(lambda: events_for(cluster, "second", "Replanned"))
    assert "dear" in replanned[-1]["message"] and "cheap" in replanned[-1]["message"]


async def test_without_consolidation_a_running_deployment_keeps_its_place(cluster, operator):
    await second_on_dear_after_first_is_deleted(cluster)

    await asyncio.sleep(3.0)  # 15 resync passes of 0.2 s: room freed, but no reason to re-plan
    assert pool_of(cluster, "second") == "dear"
    assert not events_for(cluster, "second", "Replanned")

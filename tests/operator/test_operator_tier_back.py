"""A fall in demand moves a deployment to the cheaper pool; a rise moves it BACK, once the
``--min-move-interval`` since the first move has passed: the real operator against KMock, with
a real Prometheus scraping fake vLLM exporters (as ``test_operator_scaling``).

The demand the operator measures is the sum over the deployment's pods that exist, so the test
sets it by posting and removing pods whose metrics the exporters serve: two busy ones (200
tokens/s each) or one quiet one (2 tokens/s). Skips, saying why, without a prometheus binary.

The static demand (450 tokens/s: three A100 replicas) is chosen so that no replica count
repeats between the placements the test goes through (A100 ×3, L4 ×1, A100 ×2). A batch
re-plan (``consolidate``: at the operator's start, which here can come just after the
deployment is placed, and on capacity changes) gives a running deployment its running
placement as ``target``, keyed by the spec's generation only and planned at the spec's static
demand, and every later re-plan takes that target whenever its replica count still fits the
demand: with a static demand of 300 (one A100 replica) the fall to 2 tokens/s kept the A100
(status.alternatives: "KeptRunning ... not more than the consolidation threshold"), as it does
in ``test_operator_scaling`` when the batch runs while the A100 is at one replica.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from operator_support import (
    NS,
    add_pool,
    events_for,
    eventually,
    md_url,
    model_deployment,
    status_of,
)
from test_operator_moves import owned, pool_of, set_ready
from test_operator_scaling import PODS, pod

from memplace.operator import moves
from memplace.operator.prometheus import PrometheusConfig

INTERVAL = 15.0
"""``--min-move-interval`` for the test: long enough that the rise lands inside it."""


async def add_l4(cluster) -> None:
    """One L4 node at $1/h: it serves the quiet demand only."""
    await cluster.create(
        "/api/v1/nodes",
        {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": "l4-node-0",
                "labels": {
                    "memplace.io/test-pool": "l4",
                    "nvidia.com/gpu.product": "NVIDIA-L4",
                    "nvidia.com/gpu.count": "1",
                    "nvidia.com/gpu.memory": "23034",
                    "kubernetes.io/os": "linux",
                },
            },
            "status": {
                "capacity": {"nvidia.com/gpu": "1", "cpu": "16", "memory": "64Gi"},
                "allocatable": {"nvidia.com/gpu": "1", "cpu": "16", "memory": "64Gi"},
                "conditions": [{"type": "Ready", "status": "True"}],
            },
        },
    )
    await cluster.create(
        "/apis/memplace.io/v1alpha1/placementpools",
        {
            "apiVersion": "memplace.io/v1alpha1",
            "kind": "PlacementPool",
            "metadata": {"name": "l4"},
            "spec": {
                "nodeSelector": {"memplace.io/test-pool": "l4"},
                "pricePerNodeHour": 1.0,
                "gpu": {"model": "L4", "count": 1},
            },
        },
    )


def dump(cluster) -> str:
    """What a timed-out wait saw: the status and the events, for the failure message."""
    status = status_of(cluster, "chat")
    events = [(e["reason"], e["message"]) for e in events_for(cluster, "chat")]
    return json.dumps({"status": status, "events": events}, indent=1, default=str)[-6000:]


async def moved_to(cluster, pool: str, what: str) -> dict[str, Any]:
    """Wait for a successor on ``pool``, play its controller (Ready), wait for the switch."""
    try:
        [successor] = await eventually(
            lambda: [
                n
                for n, d in owned(cluster, "chat").items()
                if pool_of(d) == pool
                and n != (status_of(cluster, "chat").get("move") or {}).get("fromDeployment")
            ],
            timeout=60,
            what=f"a move to {pool} ({what})",
        )
        await set_ready(cluster, successor)
        return await eventually(
            lambda: (
                (status_of(cluster, "chat").get("placement") or {}).get("pool") == pool
                and not status_of(cluster, "chat").get("move")
                and status_of(cluster, "chat")
            ),
            timeout=30,
            what=f"the move to {pool} completed ({what})",
        )
    except AssertionError as error:
        raise AssertionError(f"{error}\n{dump(cluster)}") from error


async def test_a_deployment_moved_to_the_cheap_pool_by_a_fall_moves_back_when_demand_rises(
    cluster, start_operator, prometheus, fake_engine
):
    busy = fake_engine(tick=0.05, tokens_per_tick=10)  # 200 tokens/s per pod
    quiet = fake_engine(tick=0.5, tokens_per_tick=1)  # 2 tokens/s
    for i in range(2):
        busy.set(NS, f"chat-busy-{i}", running=4)
    quiet.set(NS, "chat-quiet", running=1)
    server = prometheus([busy.target, quiet.target])
    await add_pool(cluster, "a100", 30.0)
    await add_l4(cluster)
    async with start_operator(
        prometheus=PrometheusConfig(url=server.url, timeout_seconds=2),
        measure_window="3s",
        min_move_interval_seconds=INTERVAL,
    ):
        await cluster.create(
            md_url(),
            model_deployment(
                "chat",
                workload={"contextTokens": 4096, "concurrency": 4, "outputTokensPerSecond": 450},
                scaling={"demand": "Measured", "scaleDownStabilizationSeconds": 3},
            ),
        )
        first = await eventually(
            lambda: status_of(cluster, "chat").get("placement") and status_of(cluster, "chat"),
            what="the first placement",
        )
        assert first["placement"]["pool"] == "a100"  # 450 tok/s: more than one L4 serves
        assert first["placement"]["replicas"] == 3
        await set_ready(cluster, "chat")

        # Down: the quiet pod alone, 2 tokens/s: the $1 L4 wins, a move.
        await cluster.create(PODS, pod("chat-quiet"))
        down = await moved_to(cluster, "l4", "the fall")
        assert down["tier"] == "hot"
        assert down["cost"]["perHour"] < first["cost"]["perHour"]
        moved_at = moves.parse_time(down["lastMoveTime"])

        # Up: two busy pods, 400 tokens/s, more than the L4 serves: back to the A100s, a move
        # again, but not before --min-move-interval after the first one completed.
        for i in range(2):
            await cluster.create(PODS, pod(f"chat-busy-{i}"))
        await cluster.remove(f"{PODS}/chat-quiet")
        deferred = await eventually(
            lambda: events_for(cluster, "chat", "MoveDeferred"),
            timeout=60,
            what="the rise deferred by the rate limit",
        )
        assert "--min-move-interval" in deferred[0]["message"]
        up = await moved_to(cluster, "a100", "the rise")
        assert up["demand"]["source"] == "measured"
        assert up["demand"]["tokensPerSecond"] > 300
        started = events_for(cluster, "chat", "MoveStarted")
        assert len(started) == 2, [e["message"] for e in started]
        back = moves.parse_time(up["lastMoveTime"])
        assert moved_at is not None and back is not None
        assert (back - moved_at).total_seconds() >= INTERVAL
        await asyncio.sleep(2)
        assert len(events_for(cluster, "chat", "MoveStarted")) == 2  # and it stays

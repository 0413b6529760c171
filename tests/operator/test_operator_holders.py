"""An Unschedulable deployment's NoCapacity reasons name who holds the room, highest priority
first, in the operator's own status (it plans each change alone, as ``memplace plan``'s batch
names them; ``planning.batch.name_holders``)."""

from __future__ import annotations

from operator_support import add_pool, eventually, md_url, model_deployment, status_of

BIG = {"contextTokens": 4096, "concurrency": 4, "minReplicas": 1, "outputTokensPerSecond": 1500}


async def test_a_deployment_left_out_says_who_holds_the_room_and_at_what_priority(
    cluster, operator
):
    await add_pool(cluster, "a100", 30.0)  # one node of 8 A100s
    await cluster.create(md_url(), model_deployment("high", workload=BIG, priority=3))
    placed = await eventually(lambda: status_of(cluster, "high").get("placement"))
    assert placed["replicas"] * placed["gpusPerReplica"] > 4, placed  # the premise: > half

    await cluster.create(md_url(), model_deployment("low", workload=BIG))
    status = await eventually(
        lambda: (s := status_of(cluster, "low")).get("phase") == "Unschedulable" and s)
    held = [a["reason"] for a in status.get("alternatives") or [] if a["code"] == "NoCapacity"]
    assert held, status.get("alternatives")
    assert all("held by ml/high (priority 3)" in reason for reason in held), held

"""Two real ``memplace run --peering`` processes against one emulator: exactly one acts; kill it
and the other takes over within the peering lifetime, moving nothing and duplicating nothing.

Each replica logs in with its own token, so every request says which replica made it; both run
under the chart's RBAC with peering enabled. Kopf's peering lifetime is 60 s and ``memplace run``
has no flag for it, so the processes run ``memplace run`` with a startup handler that sets it to
:data:`LIFETIME` (``operator_process``); everything else is the command the chart runs.
"""

from __future__ import annotations

import asyncio
from typing import Any

from operator_process import OperatorProcess, write_kubeconfig
from operator_support import (
    DEPLOYMENTS,
    MDS,
    NS,
    add_pool,
    eventually,
    md_url,
    model_deployment,
    status_of,
)
from rbac_support import chart_authorizer

PEERING = "memplace-ha"
PEERING_URL = f"/apis/kopf.dev/v1/clusterkopfpeerings/{PEERING}"
LIFETIME = 6  # seconds; Kopf's keep-alive then comes every second
CHART_PEERING = {"operator": {"replicas": 2, "peering": {"enabled": True}}}


def writes_by(cluster, token: str, after: int = 0) -> list[str]:
    """The writes made with ``token`` (not counting the peering's own keep-alives)."""
    return [f"{r.method.value} {r.url.path}" for r in cluster.seen()[after:]
            if r.headers.get("Authorization") == f"Bearer {token}"
            and r.method.value in ("POST", "PATCH", "PUT", "DELETE")
            and "kopfpeerings" not in r.url.path]


def peers(cluster) -> dict[str, Any]:
    return (cluster.stored("kopf.dev/v1/clusterkopfpeerings", None, PEERING) or {}).get(
        "status") or {}


def deployments_per_owner(cluster) -> dict[str, int]:
    uids = {md["metadata"]["uid"]: md["metadata"]["name"] for md in cluster.stored_all(MDS)}
    counts: dict[str, int] = {}
    for deployment in cluster.stored_all(DEPLOYMENTS):
        for ref in deployment["metadata"].get("ownerReferences") or []:
            name = uids.get(ref["uid"], f"unknown owner {ref['uid']}")
            counts[name] = counts.get(name, 0) + 1
    return counts


async def test_one_of_two_replicas_acts_and_the_other_takes_over_when_it_is_killed(
        cluster, tmp_path):
    server = str(cluster.url).rstrip("/")
    tokens = {"a": f"{cluster.operator_token}-a", "b": f"{cluster.operator_token}-b"}
    cluster.authorize = rbac = chart_authorizer(CHART_PEERING, *tokens.values())
    await cluster.create("/apis/kopf.dev/v1/clusterkopfpeerings", {
        "apiVersion": "kopf.dev/v1", "kind": "ClusterKopfPeering", "metadata": {"name": PEERING}})
    await add_pool(cluster, "a100", 30.0, nodes=2)
    replicas = {
        name: OperatorProcess(
            write_kubeconfig(tmp_path / f"kubeconfig-{name}", server, tokens[name]),
            tmp_path / f"operator-{name}.log", "--peering", PEERING, "--priority", priority,
            "--resync", "1s", env={"POD_ID": f"memplace-operator-{name}"},
            peering_lifetime=LIFETIME)
        for name, priority in (("a", "200"), ("b", "100"))}
    a, b = replicas["a"], replicas["b"]
    logs = lambda: f"\n--- a:\n{a.tail(2500)}\n--- b:\n{b.tail(2500)}"  # noqa: E731
    try:
        a.start()
        await eventually(lambda: "memplace-operator-a" in peers(cluster), timeout=30,
                         interval=0.2, what=f"replica a in the peering{logs()}")
        b.start()
        await eventually(lambda: "memplace-operator-b" in peers(cluster), timeout=30,
                         interval=0.2, what=f"replica b in the peering{logs()}")
        for name in ("first", "second"):
            await cluster.create(md_url(), model_deployment(name))
        for name in ("first", "second"):
            await eventually(lambda n=name: cluster.stored(DEPLOYMENTS, NS, n), timeout=30,
                             interval=0.2, what=f"{name} placed{logs()}")
        await asyncio.sleep(2 * 1.0)  # two of b's resync periods: it must still write nothing
        assert writes_by(cluster, tokens["a"]), "replica a (the higher priority) made no writes"
        assert writes_by(cluster, tokens["b"]) == [], f"the paused replica wrote{logs()}"
        placed_by_a = {n: status_of(cluster, n)["placement"] for n in ("first", "second")}

        seen = len(cluster.seen())
        await a.kill()
        killed_at = asyncio.get_running_loop().time()
        await cluster.create(md_url(), model_deployment("after-failover"))
        await eventually(lambda: cluster.stored(DEPLOYMENTS, NS, "after-failover"),
                         timeout=LIFETIME + 15, interval=0.2,
                         what=f"replica b to take over within the peering lifetime{logs()}")
        took = asyncio.get_running_loop().time() - killed_at
        await eventually(lambda: status_of(cluster, "after-failover").get("placement"),
                         timeout=10, what="the status written by b")
        await asyncio.sleep(2 * 1.0)  # b's resync passes over the old ones
    finally:
        for replica in (a, b):
            await replica.stop()
        cluster.authorize = None

    print(f"replica b placed a new deployment {took:.1f}s after a was killed "
          f"(peering lifetime {LIFETIME}s)")
    assert writes_by(cluster, tokens["a"], after=seen) == []
    assert any("after-failover" in w for w in writes_by(cluster, tokens["b"], after=seen))
    assert deployments_per_owner(cluster) == {"first": 1, "second": 1, "after-failover": 1}
    assert {n: status_of(cluster, n)["placement"] for n in ("first", "second")} == placed_by_a
    assert rbac is None or not rbac.denied, rbac.denied

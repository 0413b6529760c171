"""A SIGKILLed operator loses nothing, duplicates nothing, and moves no running placement.

The real ``memplace run`` (a process, logged in through a kubeconfig, under the chart's RBAC)
places a burst in namespace ``calm`` undisturbed, and is stopped; ``calm`` is then emptied, so
that the second run meets the same free capacity. Restarted, it places the same burst in
namespace ``crash`` and is SIGKILLed three times while doing so (a third, half and most of the
way through, counted in the Deployments it has made), each time restarted at once. The end
state of ``crash`` must equal that of ``calm``: the same phases and placements, one Deployment
and one Service per placed deployment, owned by it, with the same pod spec. Every placement
seen before a kill must be the one at the end, and so must its Deployment's pod template.

``placement.nodes`` is left out of the comparison between the two runs: which node a replica
is packed onto depends on the order a burst is planned in (Kopf handles a burst's objects
concurrently). It is not left out of "nothing seen before a kill changed": a restart reserves
every placement on the nodes its status records and a re-plan keeps the nodes it holds, so a
restart reproduces the recorded packing (issue 15).
"""

from __future__ import annotations

import asyncio
from typing import Any

from operator_process import OperatorProcess, write_kubeconfig
from operator_support import DEPLOYMENTS, MDS, SERVICES, add_pool, md_url, model_deployment
from rbac_support import chart_authorizer

BURST = 20
TERMINAL = {"Placed", "Ready", "Unschedulable", "Invalid"}


def burst(namespace: str) -> list[dict[str, Any]]:
    """Deployments of several sizes; two too large for any pool (Unschedulable)."""
    sizes = [1.0e9, 4.0e9, 8.0e9, 14.0e9, 32.0e9]
    objects = []
    for index in range(BURST):
        parameters = 2.0e12 if index in (7, 15) else sizes[index % len(sizes)]
        md = model_deployment(f"model-{index:02d}", parameters=parameters)
        md["metadata"]["namespace"] = namespace
        md["spec"]["workload"]["minReplicas"] = 1 + index % 2
        objects.append(md)
    return objects


def state(cluster, namespace: str) -> dict[str, Any]:
    """What a user sees in ``namespace``: per deployment its phase and placement, and the
    Deployments and Services the operator made (with their owners and pod specs)."""
    mds = {md["metadata"]["name"]: md for md in cluster.stored_all(MDS)
           if md["metadata"]["namespace"] == namespace}
    uids = {md["metadata"]["uid"]: name for name, md in mds.items()}

    def owned(resource: str) -> dict[str, list[dict[str, Any]]]:
        found: dict[str, list[dict[str, Any]]] = {}
        for obj in cluster.stored_all(resource):
            if obj["metadata"]["namespace"] != namespace:
                continue
            owners = [uids.get(ref["uid"], "?") for ref in
                      obj["metadata"].get("ownerReferences") or []]
            found.setdefault(",".join(owners) or "-", []).append(obj)
        return found

    deployments, services = owned(DEPLOYMENTS), owned(SERVICES)
    return {
        name: {
            "phase": (md.get("status") or {}).get("phase"),
            "placement": _without_nodes((md.get("status") or {}).get("placement")),
            "deployments": [(d["metadata"]["name"], d["spec"]["replicas"],
                             d["spec"]["template"]["spec"]) for d in deployments.get(name, [])],
            "services": [(s["metadata"]["name"], s["spec"].get("ports"))
                         for s in services.get(name, [])],
        }
        for name, md in sorted(mds.items())
    } | ({"(not owned by a deployment here)": [deployments.get("-"), services.get("-")]}
         if "-" in deployments or "-" in services else {})


def _without_nodes(placement: dict[str, Any] | None) -> dict[str, Any] | None:
    return None if placement is None else {k: v for k, v in placement.items() if k != "nodes"}


async def empty(cluster, namespace: str) -> None:
    """Delete what ``namespace`` holds (the emulator collects no garbage)."""
    for resource, url in ((MDS, "/apis/memplace.io/v1alpha1"), (DEPLOYMENTS, "/apis/apps/v1"),
                          (SERVICES, "/api/v1")):
        for obj in cluster.stored_all(resource):
            meta = obj["metadata"]
            if meta["namespace"] == namespace:
                plural = resource.rsplit("/", 1)[1]
                await cluster.remove(f"{url}/namespaces/{namespace}/{plural}/{meta['name']}")
                assert cluster.stored(resource, namespace, meta["name"]) is None


def converged(cluster, namespace: str) -> bool:
    now = state(cluster, namespace)
    return len(now) == BURST and all(
        entry["phase"] in TERMINAL
        and (entry["phase"] == "Unschedulable" or (entry["deployments"] and entry["services"]))
        for entry in now.values())


async def settle(cluster, namespace: str, operator: OperatorProcess, timeout: float) -> None:
    """Until ``namespace`` has converged and stays unchanged for 2 s (bounded)."""
    async with asyncio.timeout(timeout):
        previous = None
        while True:
            assert operator.running, f"memplace run exited:\n{operator.tail()}"
            now = state(cluster, namespace) if converged(cluster, namespace) else None
            if now is not None and now == previous:
                return
            previous = now
            await asyncio.sleep(1.0 if now is not None else 0.2)


async def apply(cluster, objects: list[dict[str, Any]]) -> None:
    for md in objects:
        await cluster.create(md_url(md["metadata"]["namespace"]), md)


def placements(cluster) -> dict[tuple[str, str], Any]:
    """Each placed deployment's placement (its nodes too) and its Deployment's pod template."""
    found = {}
    for md in cluster.stored_all(MDS):
        meta, placement = md["metadata"], (md.get("status") or {}).get("placement")
        deployment = cluster.stored(DEPLOYMENTS, meta["namespace"], meta["name"])
        if placement and deployment:
            found[meta["namespace"], meta["name"]] = (placement, deployment["spec"]["template"])
    return found


def made(cluster, namespace: str) -> int:
    return sum(d["metadata"]["namespace"] == namespace for d in cluster.stored_all(DEPLOYMENTS))


def differences(expected: dict[str, Any], found: dict[str, Any]) -> str:
    lines = []
    for name in sorted(set(expected) | set(found)):
        for key in sorted(set(expected.get(name) or {}) | set(found.get(name) or {})):
            want = (expected.get(name) or {}).get(key)
            got = (found.get(name) or {}).get(key)
            if want != got:
                lines.append(f"{name} {key}: expected {want!r}\n    found {got!r}")
    return "\n".join(lines[:10])


async def test_sigkills_during_a_burst_lose_nothing_duplicate_nothing_and_move_nothing(
        cluster, tmp_path):
    cluster.authorize = rbac = chart_authorizer({}, cluster.operator_token)
    await add_pool(cluster, "a100", 30.0, nodes=16)
    await add_pool(cluster, "a100-dear", 60.0, nodes=4)
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", str(cluster.url).rstrip("/"),
                                  cluster.operator_token)
    operator = OperatorProcess(kubeconfig, tmp_path / "operator.log", "--resync", "1s")
    operator.start()
    try:
        await apply(cluster, burst("calm"))
        await settle(cluster, "calm", operator, timeout=60)
        calm = state(cluster, "calm")
        await operator.stop()
        await empty(cluster, "calm")

        seen_before_kills: dict[tuple[str, str], Any] = {}
        operator.start()
        await apply(cluster, burst("crash"))
        placed = sum(entry["phase"] != "Unschedulable" for entry in calm.values())
        for fraction in (1 / 3, 1 / 2, 4 / 5):
            async with asyncio.timeout(60):
                while made(cluster, "crash") < int(placed * fraction):
                    assert operator.running, f"memplace run exited:\n{operator.tail()}"
                    await asyncio.sleep(0.02)
            seen_before_kills |= placements(cluster)
            await operator.kill()
            operator.start()
        await settle(cluster, "crash", operator, timeout=90)
        crash = state(cluster, "crash")
    finally:
        await operator.stop()
        cluster.authorize = None

    assert crash == calm, differences(calm, crash)
    assert all(len(entry["deployments"]) == (entry["phase"] != "Unschedulable")
               and len(entry["services"]) == len(entry["deployments"])
               for entry in crash.values())
    assert {entry["phase"] for entry in crash.values()} == {"Placed", "Unschedulable"}
    after = placements(cluster)
    moved = {key: (before, after.get(key)) for key, before in seen_before_kills.items()
             if after.get(key) != before}
    assert not moved, f"placements moved after a restart: {moved}"
    assert operator.starts == 5  # calm, crash, and a restart after each of three kills
    assert 0 < len(seen_before_kills) < placed, "the kills came after everything was placed"
    assert rbac is None or not rbac.denied, rbac.denied

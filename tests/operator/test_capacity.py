"""The one planning Cluster: reservations moved incrementally equal a Cluster built afresh.

The indexes are plain dicts of lists here (Kopf's are mappings of iterable stores); each entry is
built anew when "its object changes", as Kopf's index does on a watch event.
"""

from __future__ import annotations

import datetime
from typing import Any

from operator_support import gpu_node, pool

from memplace.api import ModelDeploymentSpec, PlacementPoolSpec
from memplace.operator import capacity, indexed, inputs, resync
from memplace.operator.metrics import Metrics
from memplace.operator.settings import Settings
from memplace.operator.state import State
from memplace.planning.plan import DeploymentRequest, plan_deployment

NOW = datetime.datetime(2026, 12, 1, tzinfo=datetime.UTC)


def indexes(a100: int = 4, l4: int = 4) -> dict[str, Any]:
    nodes = [gpu_node(f"a100-node-{i}", "a100") for i in range(a100)]
    nodes += [
        gpu_node(f"l4-node-{i}", "l4", gpus=1, product="NVIDIA-L4", memory_mib=23034)
        for i in range(l4)
    ]
    return {
        "pools": {
            "a100": [PlacementPoolSpec.model_validate(pool("a100", 30.0)["spec"])],
            "l4": [PlacementPoolSpec.model_validate(pool("l4", 1.0, model="L4", gpus=1)["spec"])],
        },
        "nodes": {n["metadata"]["name"]: [inputs.node_entry(n)] for n in nodes},
    }


def placed(pool_name: str, nodes: list[str], gpus: int = 1, total: int = 20 << 30) -> Any:
    return inputs.placed_entry(
        {
            "phase": "Placed",
            "placement": {
                "pool": pool_name,
                "precision": "bf16",
                "tier": "gpu",
                "gpusPerReplica": gpus,
                "replicas": len(nodes),
                "nodes": nodes,
            },
            "estimate": {"totalBytesPerGpu": total},
        }
    )


def fresh(index: dict[str, Any], held: dict[Any, Any]) -> Any:
    return inputs.build_planning_cluster(
        indexed.pools(index),
        indexed.values(index.get("nodes")),
        [],
        held,
        exclude=("", ""),
        now=NOW,
    )


def free(cluster: Any) -> dict[str, Any]:
    """Per pool: each node's free GPU bytes (in no GPU order: status records nodes, not GPUs)
    and the nodes each owner holds."""
    found = {}
    for p in cluster.pools:
        room = cluster.capacity(p.name)
        owners = {o: sorted({n for n, *_ in held}) for o, held in room.owners.items()}
        found[p.name] = ([sorted(node) for node in room.free], owners)
    return found


def sync(ledger: capacity.Ledger, index: dict[str, Any], held: dict[Any, Any]) -> Any:
    return ledger.sync(held, capacity.inventory_key(index, NOW), lambda: fresh(index, held))


def test_placements_and_releases_move_the_one_cluster_as_a_fresh_build_would():
    index, ledger = indexes(), capacity.Ledger()
    held: dict[Any, Any] = {("ml", "a"): placed("a100", ["a100-node-1"], gpus=4)}
    sync(ledger, index, held)
    held[("ml", "b")] = placed("l4", ["l4-node-2", "l4-node-3"])
    held[("ml", "c")] = placed("a100", ["a100-node-1"], gpus=2)
    after_places = sync(ledger, index, dict(held))
    assert free(after_places) == free(fresh(index, held))
    freed = ledger.freed
    del held[("ml", "a")]
    held[("ml", "b")] = placed("l4", ["l4-node-2"])
    after_releases = sync(ledger, index, dict(held))
    assert free(after_releases) == free(fresh(index, held))
    assert ledger.rebuilds == 1, "a placement or a release rebuilt the Cluster"
    assert ledger.freed == freed + 2  # one released, one shrunk


def test_the_same_placement_indexed_anew_moves_nothing():
    index, ledger = indexes(), capacity.Ledger()
    sync(ledger, index, {("ml", "a"): placed("l4", ["l4-node-0"])})
    stamp = ledger.stamp()
    cluster = sync(ledger, index, {("ml", "a"): placed("l4", ["l4-node-0"])})
    assert ledger.stamp() == stamp
    assert cluster is ledger.cluster


def test_a_node_added_rebuilds_and_moves_only_its_pools_version():
    index, ledger = indexes(), capacity.Ledger()
    held = {("ml", "a"): placed("a100", ["a100-node-3"], gpus=8)}
    sync(ledger, index, held)
    stamp = ledger.stamp()
    grown = gpu_node("l4-node-9", "l4", gpus=1, product="NVIDIA-L4", memory_mib=23034)
    index["nodes"]["l4-node-9"] = [inputs.node_entry(grown)]
    cluster = sync(ledger, index, held)
    assert ledger.rebuilds == 2
    assert ledger.pool_changed_since(stamp, "l4")
    assert not ledger.pool_changed_since(stamp, "a100")
    assert ledger.freed != stamp.freed
    assert cluster.capacity("a100").owners[("ml", "a")][0][0] == 3  # still on a100-node-3


def test_a_restart_reserves_every_placement_on_the_nodes_its_status_records():
    index = indexes()
    held = {("ml", f"m{i}"): placed("l4", [f"l4-node-{3 - i}"]) for i in range(3)}
    held[("ml", "big")] = placed("a100", ["a100-node-2", "a100-node-0"], gpus=4)
    cluster = sync(capacity.Ledger(), index, held)
    for owner, entry in held.items():
        capacity_ = cluster.capacity(entry.placement.pool)
        on = [capacity_.names[n] for n, *_ in capacity_.owners[owner]]
        assert sorted(set(on)) == sorted(entry.placement.nodes)


def test_a_replan_keeps_the_nodes_it_holds():
    index = indexes(l4=6)
    spec = ModelDeploymentSpec.model_validate(
        {
            "model": {"name": "m", "parameters": 1.0e9},
            "workload": {"contextTokens": 4096, "concurrency": 4, "minReplicas": 2},
            "runtime": {"engine": "vllm"},
        }
    )
    cluster = fresh(index, {})
    first = plan_deployment(DeploymentRequest("ml", "m", spec), cluster).status_fields()
    recorded = ["l4-node-4", "l4-node-1"]
    current = {**first["placement"], "nodes": recorded}
    running = inputs.placed_entry({**first, "placement": current})
    held = {("ml", "m"): running}
    again = plan_deployment(
        DeploymentRequest("ml", "m", spec, current=running.placement), fresh(index, held)
    )
    assert first["placement"]["pool"] == "l4"
    assert again.status_fields()["placement"]["nodes"] == recorded


def state_with(ledger: capacity.Ledger) -> State:
    return State(settings=Settings(), metrics=Metrics(), ledger=ledger)


def test_only_what_a_change_can_affect_is_replanned():
    index, ledger = indexes(), capacity.Ledger()
    held = {("ml", "on-a100"): placed("a100", ["a100-node-0"])}
    sync(ledger, index, held)
    state = state_with(ledger)
    on_a100 = {
        "phase": "Placed",
        "placement": {
            "pool": "a100",
            "precision": "bf16",
            "tier": "gpu",
            "gpusPerReplica": 1,
            "replicas": 1,
        },
    }
    waiting = {"phase": "Unschedulable"}
    for key in (("ml", "on-a100"), ("ml", "waiting")):
        state.fingerprints[key] = ledger.stamp()
    assert resync.replan_reason(state, ("ml", "never"), waiting) is not None
    assert resync.replan_reason(state, ("ml", "waiting"), waiting) is None

    held[("ml", "other")] = placed("a100", ["a100-node-1"])  # another one takes room
    sync(ledger, index, dict(held))
    assert resync.replan_reason(state, ("ml", "on-a100"), on_a100) is None
    assert resync.replan_reason(state, ("ml", "waiting"), waiting) is None

    del held[("ml", "other")]  # room freed
    sync(ledger, index, dict(held))
    assert resync.replan_reason(state, ("ml", "waiting"), waiting) == "capacity freed"
    assert resync.replan_reason(state, ("ml", "on-a100"), on_a100) is None

    grown = gpu_node("l4-node-9", "l4", gpus=1, product="NVIDIA-L4", memory_mib=23034)
    index["nodes"]["l4-node-9"] = [inputs.node_entry(grown)]
    sync(ledger, index, dict(held))
    assert resync.replan_reason(state, ("ml", "on-a100"), on_a100) is None  # not its pool
    index["nodes"]["a100-node-9"] = [inputs.node_entry(gpu_node("a100-node-9", "a100"))]
    sync(ledger, index, dict(held))
    assert resync.replan_reason(state, ("ml", "on-a100"), on_a100) == "pool a100 changed"

    state.fingerprints[("ml", "on-a100")] = ledger.stamp()
    index["pools"]["h100"] = [PlacementPoolSpec.model_validate(pool("h100", 20.0)["spec"])]
    index["nodes"]["h100-node-0"] = [inputs.node_entry(gpu_node("h100-node-0", "h100"))]
    sync(ledger, index, dict(held))
    assert resync.replan_reason(state, ("ml", "on-a100"), on_a100) == "a pool was added"


def test_the_quick_key_skips_the_walk_of_the_inventory_until_it_moves():
    index, ledger = indexes(), capacity.Ledger()
    held: dict[Any, Any] = {}
    walks = []

    def walk() -> Any:
        walks.append(1)
        return capacity.inventory_key(index, NOW)

    ledger.sync(held, walk, lambda: fresh(index, held), quick=(1, 2, 8))
    assert (len(walks), ledger.rebuilds) == (1, 1)
    ledger.sync(held, walk, lambda: fresh(index, held), quick=(1, 2, 8))
    assert (len(walks), ledger.rebuilds) == (1, 1)  # not walked, not rebuilt
    ledger.sync(held, walk, lambda: fresh(index, held), quick=(2, 2, 8))
    assert (len(walks), ledger.rebuilds) == (2, 1)  # walked: the same entries, no rebuild
    del index["nodes"]["l4-node-3"]
    ledger.sync(held, walk, lambda: fresh(index, held), quick=(2, 2, 7))
    assert (len(walks), ledger.rebuilds) == (3, 2)


def test_the_quick_key_counts_pools_nodes_and_their_events_and_gives_up_with_reports():
    state = State(settings=Settings(), metrics=Metrics())
    index = indexes()
    assert indexed.quick_key(state, index) == (0, 2, 8)
    state.inventory_events += 1
    del index["nodes"]["a100-node-0"]
    assert indexed.quick_key(state, index) == (1, 2, 7)
    index["reports"] = {"a100-node-1": [object()]}
    assert indexed.quick_key(state, index) is None

"""poolstatus: a PlacementPool's status read back from the planner's inventory; pure."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from memplace.api import PlacementPoolSpec
from memplace.operator import poolstatus
from memplace.planning.inventory import build_cluster, node_from_manifest

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
A100 = {"model": "A100-SXM4-80GB", "count": 8}


def spec(selector: str, **fields) -> PlacementPoolSpec:
    return PlacementPoolSpec.model_validate({"nodeSelector": {"pool": selector}, **fields})


def node(name: str, pool: str, gpus: int = 8, ready: bool = True) -> object:
    return node_from_manifest({
        "metadata": {"name": name, "labels": {"pool": pool}},
        "status": {"allocatable": {"nvidia.com/gpu": str(gpus), "cpu": "96", "memory": "1000Gi"},
                   "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]},
    })


def cluster(pools, nodes=()):
    return build_cluster(pools=pools, nodes=list(nodes), now=T0)


def by_type(status) -> dict:
    return {c["type"]: c for c in status["conditions"]}


def test_a_priced_pool_with_nodes_is_ready_with_its_counts_and_price():
    found = cluster([("a100", spec("a100", pricePerNodeHour=30.0, gpu=A100))],
                    [node("n1", "a100"), node("n2", "a100"), node("n3", "a100", ready=False)])
    status = poolstatus.pool_status("a100", 3, found, None, now=T0)
    assert status["observedGeneration"] == 3
    assert (status["nodes"], status["gpus"]) == (2, 16)
    assert (status["pricePerNodeHour"], status["priceSource"]) == (30.0, "spec")
    conditions = by_type(status)
    assert conditions["Ready"]["status"] == "True" and "2 schedulable node(s)" in \
        conditions["Ready"]["message"]
    assert conditions["Priced"]["status"] == "True" and conditions["Valid"]["status"] == "True"


def test_a_selector_that_matches_no_node_says_so():
    found = cluster([("empty", spec("nowhere", pricePerNodeHour=30.0, gpu=A100))],
                    [node("n1", "a100")])
    ready = by_type(poolstatus.pool_status("empty", 1, found, None, now=T0))["Ready"]
    assert ready["status"] == "False" and ready["reason"] == "NoNodes"
    assert "pool=nowhere matches no schedulable node" in ready["message"]


def test_a_pool_without_a_price_is_left_out_and_says_what_to_set():
    found = cluster([("unpriced", spec("unpriced", gpu=A100))], [node("n1", "unpriced")])
    status = poolstatus.pool_status("unpriced", 1, found, None, now=T0)
    conditions = by_type(status)
    assert conditions["Priced"]["reason"] == "NoPrice"
    assert "set pricePerNodeHour or instanceType" in conditions["Priced"]["message"]
    assert conditions["Ready"]["status"] == "False" and conditions["Ready"]["reason"] == "NoPrice"
    assert status["nodes"] is None and status["pricePerNodeHour"] is None


def test_an_unknown_gpu_and_a_spec_that_does_not_parse_are_invalid():
    found = cluster([("odd", spec("odd", pricePerNodeHour=1.0, gpu={"model": "NoSuchGPU"}))])
    odd = by_type(poolstatus.pool_status("odd", 1, found, None, now=T0))
    assert odd["Valid"]["status"] == "False" and "NoSuchGPU" in odd["Valid"]["message"]
    broken = by_type(poolstatus.pool_status("broken", 1, found, None,
                                            error="nodeSelector: Field required", now=T0))
    assert broken["Valid"]["reason"] == "Invalid" and "nodeSelector" in broken["Valid"]["message"]
    assert broken["Ready"]["status"] == "False"


def test_an_unchanged_pool_writes_nothing_and_a_change_keeps_untouched_conditions():
    pools = [("a100", spec("a100", pricePerNodeHour=30.0, gpu=A100))]
    first = poolstatus.pool_status("a100", 1, cluster(pools, [node("n1", "a100")]), None, now=T0)
    later = T0 + timedelta(minutes=5)
    again = poolstatus.pool_status("a100", 1, cluster(pools, [node("n1", "a100")]), first,
                                   now=later)
    assert poolstatus.status_changes(first, again) == {}
    gone = poolstatus.pool_status("a100", 1, cluster(pools), first, now=later)
    changes = poolstatus.status_changes(first, gone)
    assert set(changes) == {"nodes", "gpus", "conditions"}
    conditions = by_type(gone)
    assert conditions["Ready"]["lastTransitionTime"] == "2026-01-01T12:05:00Z"
    assert conditions["Priced"]["lastTransitionTime"] == "2026-01-01T12:00:00Z"

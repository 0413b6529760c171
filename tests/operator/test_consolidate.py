"""``consolidate.select``: targets from a batch plan, within the disruption budget."""

from memplace.api import CostStatus, PlacementStatus
from memplace.operator.consolidate import select
from memplace.planning.plan import Plan


def placement(pool, replicas=1):
    return PlacementStatus(
        pool=pool,
        gpu_model="L4",
        precision="fp8",
        kv_cache_dtype="fp8",
        tier="gpu",
        gpus_per_replica=1,
        replicas=replicas,
    )


def placed(name, pool, per_hour):
    return Plan("ml", name, "Placed", placement=placement(pool), cost=CostStatus(per_hour=per_hour))


def test_new_deployments_take_their_batch_placement_and_are_no_disruption():
    targets, moved = select([placed("a", "l4", 1.0), placed("b", "a100", 5.0)], {}, 0, 0.1)
    assert targets[("ml", "a")].pool == "l4" and targets[("ml", "b")].pool == "a100"
    assert moved == []


def test_at_most_the_budget_of_running_deployments_move_largest_saving_first():
    plans = [placed("a", "l4", 1.0), placed("b", "l4", 2.0), placed("c", "l4", 3.0)]
    running = {
        ("ml", "a"): (placement("a100"), 5.0),  # saves 4
        ("ml", "b"): (placement("a100"), 10.0),  # saves 8
        ("ml", "c"): (placement("l4"), 3.0),  # stays
    }
    targets, moved = select(plans, running, 1, 0.1)
    assert moved == [("ml", "b")]
    assert targets[("ml", "b")].pool == "l4"
    assert targets[("ml", "a")].pool == "a100"  # over budget: keeps its place this batch
    assert targets[("ml", "c")].pool == "l4"


def test_a_move_that_places_others_goes_before_savings():
    plans = [placed("a", "h100", 9.0), placed("b", "l4", 1.0)]
    running = {("ml", "a"): (placement("a100"), 5.0), ("ml", "b"): (placement("a100"), 10.0)}
    _, moved = select(plans, running, 1, 0.1)
    assert moved == [("ml", "a")]  # dearer: the batch moved it only to place something


def test_a_running_deployment_the_batch_would_leave_out_keeps_its_place():
    plans = [Plan("ml", "a", "Unschedulable")]
    targets, moved = select(plans, {("ml", "a"): (placement("a100"), 5.0)}, 3, 0.1)
    assert targets[("ml", "a")].pool == "a100" and moved == []

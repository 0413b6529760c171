import json
from pathlib import Path

import pytest
from planning_clusters import a100_nodes, cpu_nodes, h100_nodes, l4_nodes

from memplace.api import ModelDeploymentSpec, PlacementStatus
from memplace.planning.discovery import build_cluster
from memplace.planning.nodes import Node
from memplace.planning.plan import DeploymentRequest, plan_cluster, plan_deployment

CONFIGS = Path(__file__).parents[1] / "fixtures" / "configs"


def spec(**overrides):
    body = {
        "model": {
            "name": "Qwen/Qwen3-8B",
            "config": json.loads((CONFIGS / "qwen3-8b.json").read_text()),
        },
        "workload": {"contextTokens": 8192, "concurrency": 8, "outputTokensPerSecond": 400},
        "slo": {"timeToFirstTokenMs": 800, "timePerOutputTokenMs": 60},
        "quality": {"maxLoss": 0.02},
    }
    for key, value in overrides.items():
        body[key] = {**body.get(key, {}), **value} if isinstance(value, dict) else value
    return ModelDeploymentSpec.model_validate(body)


def request(name="chat", ns="ml", **kw):
    return DeploymentRequest(ns, name, kw.pop("spec", None) or spec(), **kw)


@pytest.fixture
def cluster():
    return build_cluster(nodes=l4_nodes(2) + a100_nodes(1) + h100_nodes(1) + cpu_nodes(1))


def test_a_small_model_is_placed_on_the_cheapest_pool_that_meets_its_slo(cluster):
    plan = plan_deployment(request(), cluster)
    assert plan.phase == "Placed"
    assert plan.placement.pool == "l4"
    assert plan.estimate.time_per_output_token_ms <= 60
    assert plan.estimate.total_bytes_per_gpu <= cluster.pool("l4").usable_bytes_per_gpu
    assert plan.cost.per_hour <= plan.cost.naive_per_hour
    assert plan.message.startswith(f"{plan.placement.precision} (")


def test_replicas_cover_the_demand(cluster):
    plan = plan_deployment(request(), cluster)
    per_replica = plan.estimate.output_tokens_per_second_per_replica
    assert plan.placement.replicas * per_replica >= 400
    assert (plan.placement.replicas - 1) * per_replica < 400


def test_min_replicas_is_a_floor(cluster):
    plan = plan_deployment(request(spec=spec(workload={"minReplicas": 7})), cluster)
    assert plan.placement.replicas >= 7


def test_the_plan_carries_exactly_the_status_fields_and_is_deterministic(cluster):
    one = plan_deployment(request(), cluster).status_fields()
    two = plan_deployment(
        request(), build_cluster(nodes=l4_nodes(2) + a100_nodes(1) + h100_nodes(1) + cpu_nodes(1))
    ).status_fields()
    assert set(one) == {
        "phase",
        "placement",
        "estimate",
        "cost",
        "alternatives",
        "message",
        "adapters",
    }
    assert json.dumps(one) == json.dumps(two)
    assert all(a["code"] and a["reason"] for a in one["alternatives"])


def test_planning_one_deployment_does_not_change_the_cluster(cluster):
    plan_deployment(request(), cluster)
    assert cluster.capacity("l4").free_whole_gpus == 8


def test_when_the_cheapest_pool_is_full_the_next_one_wins():
    cluster = build_cluster(nodes=l4_nodes(1) + a100_nodes(1))
    plans = plan_cluster([request(f"chat-{i}") for i in range(3)], cluster)
    pools = [p.placement.pool for p in plans]
    assert pools[0] == "l4" and "a100" in pools
    later = next(p for p in plans if p.placement.pool == "a100")
    assert any(a.code == "NoCapacity" and a.pool == "l4" for a in later.alternatives)


def test_plan_cluster_goes_in_namespace_name_order():
    cluster = build_cluster(nodes=l4_nodes(1))
    plans = plan_cluster([request("b", "z"), request("a", "z"), request("c", "a")], cluster)
    assert [(p.namespace, p.name) for p in plans] == [("a", "c"), ("z", "a"), ("z", "b")]
    assert plans[-1].phase == "Unschedulable"  # the pool ran out
    assert "have free capacity" in plans[-1].message and plans[-1].resolvable


def test_a_model_that_fits_nowhere_is_unschedulable_with_a_reason_per_pool(cluster):
    big = spec(
        model={"name": "huge", "config": None, "parameters": 2e12}, placement={"tiers": ["gpu"]}
    )
    plan = plan_deployment(request(spec=big), cluster)
    assert plan.phase == "Unschedulable"
    assert "0 fit in memory" in plan.message
    by_pool = {a.pool: a for a in plan.alternatives}
    assert {"l4", "a100", "h100", "cpu"} <= set(by_pool)
    assert by_pool["h100"].code == "DoesNotFit" and "GiB per GPU" in by_pool["h100"].reason
    assert by_pool["cpu"].code == "TierNotAllowed"
    assert not plan.resolvable


def test_a_tight_slo_pushes_a_70b_model_to_fast_gpus(cluster):
    cfg = json.loads((CONFIGS / "llama-3.1-70b.json").read_text())
    tight = spec(
        model={"name": "llama", "config": cfg},
        slo={"timePerOutputTokenMs": 15},
        quality={"maxLoss": 0.01},
    )
    plan = plan_deployment(request(spec=tight), cluster)
    assert plan.phase == "Placed" and plan.placement.pool == "h100"
    assert plan.estimate.time_per_output_token_ms <= 15
    for slower in ("l4", "a100"):  # even 8 A100s with tensor parallelism decode too slowly
        assert any(a.pool == slower and a.code == "TooSlow" for a in plan.alternatives), slower


def test_a_distilled_variant_wins_when_the_budget_allows_it(cluster):
    cfg70 = json.loads((CONFIGS / "llama-3.1-70b.json").read_text())
    cfg8 = json.loads((CONFIGS / "llama-3.1-8b.json").read_text())
    s = spec(
        model={
            "name": "llama",
            "config": cfg70,
            "variants": [{"name": "student", "config": cfg8, "qualityLoss": 0.03}],
        },
        quality={"maxLoss": 0.05},
    )
    assert plan_deployment(request(spec=s), cluster).placement.variant == "student"
    strict = spec(
        model=s.model.model_dump(by_alias=True, exclude_none=True), quality={"maxLoss": 0.02}
    )
    assert plan_deployment(request(spec=strict), cluster).placement.variant is None


def test_a_batch_job_on_cpu_only():
    cluster = build_cluster(nodes=cpu_nodes(1))
    s = spec(
        model={"name": "tiny", "config": None, "parameters": 6e8},
        slo={"timeToFirstTokenMs": None, "timePerOutputTokenMs": 500},
        workload={"outputTokensPerSecond": 10},
    )
    plan = plan_deployment(request(spec=s), cluster)
    assert (plan.phase, plan.placement.tier, plan.placement.gpus_per_replica) == (
        "Placed",
        "cpu",
        0,
    )
    assert plan.placement.gpu_model is None


def test_offload_when_nothing_else_fits():
    cluster = build_cluster(nodes=l4_nodes(1))
    s = spec(
        model={"name": "llama", "config": None, "parameters": 70e9},
        quality={"maxLoss": 0},
        slo={"timeToFirstTokenMs": None, "timePerOutputTokenMs": 60000},
        workload={"outputTokensPerSecond": 0, "concurrency": 1},
    )
    plan = plan_deployment(request(spec=s), cluster)
    assert plan.phase == "Placed" and plan.placement.tier == "offload"
    assert plan.placement.offload_bytes_per_replica > 0
    no_offload = spec(
        model=s.model.model_dump(by_alias=True, exclude_none=True),
        quality={"maxLoss": 0},
        slo={"timePerOutputTokenMs": 60000},
        placement={"tiers": ["gpu"]},
    )
    assert plan_deployment(request(spec=no_offload), cluster).phase == "Unschedulable"


def test_an_unresolved_config_map_is_invalid(cluster):
    s = spec(model={"name": "m", "config": None, "configMapRef": {"name": "cfg"}})
    plan = plan_deployment(request(spec=s), cluster)
    assert plan.phase == "Invalid" and "cfg" in plan.message
    assert plan.status_fields()["placement"] is None


def test_an_unknown_model_type_is_invalid_with_the_config_error(cluster):
    s = spec(model={"name": "m", "config": {"model_type": "nonesuch"}})
    plan = plan_deployment(request(spec=s), cluster)
    assert plan.phase == "Invalid" and "nonesuch" in plan.message


def test_the_config_map_config_resolved_by_the_shell_is_used(cluster):
    s = spec(model={"name": "m", "config": None, "configMapRef": {"name": "cfg"}})
    cfg = json.loads((CONFIGS / "qwen3-8b.json").read_text())
    assert plan_deployment(request(spec=s, model_config=cfg), cluster).phase == "Placed"


def test_full_pools_are_excluded_with_no_capacity(cluster):
    first = plan_deployment(request(), cluster)
    plan = plan_deployment(request(full_pools=frozenset({first.placement.pool})), cluster)
    assert plan.placement.pool != first.placement.pool
    assert any(a.code == "NoCapacity" and a.pool == first.placement.pool for a in plan.alternatives)


def test_a_deployments_own_reservation_does_not_block_its_replan():
    cluster = build_cluster(nodes=l4_nodes(1))
    first = plan_deployment(request(), cluster)
    reserved = cluster.reserve(first.placement, first.estimate, owner=("ml", "chat"))
    again = plan_deployment(request(current=first.placement), reserved)
    assert again.placement.model_dump(exclude={"nodes"}) == first.placement.model_dump(
        exclude={"nodes"}
    )
    other = plan_deployment(
        request("other"),
        reserved.reserve(
            PlacementStatus(
                pool="l4", precision="bf16", tier="gpu", gpus_per_replica=4, replicas=1
            ),
            None,
            owner=("ml", "filler"),
        ),
    )
    assert other.phase == "Unschedulable"


def test_pools_left_out_are_listed_as_alternatives():

    stray = Node(
        "x",
        {
            "cloud.google.com/gke-nodepool": "onprem",
            "node.kubernetes.io/instance-type": "dgx",
            "nvidia.com/gpu.product": "NVIDIA-L4",
        },
        gpus=8,
    )
    plan = plan_deployment(request(), build_cluster(nodes=l4_nodes(1) + [stray]))
    assert any(a.pool == "onprem" and a.code == "NoPrice" for a in plan.alternatives)


# --- one definition of each rule: the fast path agrees with the check functions ---


def _spec(**over) -> ModelDeploymentSpec:
    spec = {
        "model": {"name": "m", "parameters": 8e9},
        "workload": {"contextTokens": 8192, "concurrency": 8, "outputTokensPerSecond": 300},
        "slo": {"timeToFirstTokenMs": 1000, "timePerOutputTokenMs": 50},
        "quality": {"maxLoss": 0.05},
    }
    spec.update(over)
    return ModelDeploymentSpec.model_validate(spec)


@pytest.mark.parametrize(
    "over",
    [
        {},
        {"runtime": {"engine": "tgi"}},
        {"runtime": {"engine": "llamacpp"}, "placement": {"tiers": ["gpu", "cpu"]}},
        {"quality": {"maxLoss": 0.0}, "placement": {"pools": ["l4"]}},
        {"model": {"name": "big", "parameters": 400e9}, "placement": {"tiers": ["gpu"]}},
    ],
)
def test_the_fast_path_counts_what_every_check_on_every_candidate_counts(over):
    from memplace.planning.evaluation import _evaluate, _evaluate_all
    from memplace.planning.feasibility import Requirements, check_all, funnel
    from memplace.planning.grouping import _bases
    from memplace.planning.sizing import _variants

    cluster = build_cluster(nodes=l4_nodes() + a100_nodes() + h100_nodes())
    request = DeploymentRequest("ml", "x", _spec(**over))
    variants, _ = _variants(request, cluster.memo)
    r = Requirements.from_spec(request.spec)
    shape = _bases(variants, r, cluster)
    kept, misses, steps, _ = _evaluate_all(shape, r)
    slow = []
    for g in shape.groups:
        for b in g.members:
            e = _evaluate(b, r, 1, 1, check=False)
            demand = r.demand_tokens_per_second
            for_demand = -(-demand // b.tps) if demand and b.tps else (10**9 if demand else 0)
            e.replicas_for_demand = int(for_demand)
            e.rejections = check_all(e, r)
            slow.append(e)
    assert steps[:-1] == funnel(slow)[:-1]
    feasible = {id(e.candidate) for e in slow if e.feasible}
    assert {id(shape.bases[at].candidate) for at, _, _ in kept} == feasible
    assert all(not e.feasible for e in misses.values())
    assert not feasible & {id(e.candidate) for e in misses.values()}


def test_vllm_never_serves_int8_made_from_a_16_bit_checkpoint():
    cluster = build_cluster(nodes=l4_nodes() + a100_nodes())
    for budget in (0.01, 0.02, 0.05):
        spec = _spec(quality={"maxLoss": budget, "precisions": ["bf16", "int8"]})
        plan = plan_deployment(DeploymentRequest("ml", "x", spec), cluster)
        assert plan.placement is None or plan.placement.precision != "int8"


def test_a_pool_where_nothing_fits_shows_its_nearest_miss_not_its_cheapest():
    cluster = build_cluster(nodes=l4_nodes())
    spec = _spec(model={"name": "big", "parameters": 400e9}, placement={"tiers": ["gpu"]})
    plan = plan_deployment(DeploymentRequest("ml", "x", spec), cluster)
    assert plan.phase == "Unschedulable"
    (miss,) = [a for a in plan.alternatives if a.pool == "l4"]
    assert miss.code == "DoesNotFit" and miss.gpus_per_replica == 4  # the most GPUs: least each

"""Properties of the planner over random deployments (hypothesis)."""

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from planning_clusters import a100_nodes, cpu_nodes, h100_nodes, l4_nodes

from memplace.api import ModelDeploymentSpec
from memplace.planning.discovery import build_cluster
from memplace.planning.plan import DeploymentRequest, plan_cluster, plan_deployment

CLUSTER = build_cluster(nodes=l4_nodes(2) + a100_nodes(1) + h100_nodes(1) + cpu_nodes(1))
SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def specs(draw):
    return {
        "model": {
            "name": "m",
            "parameters": draw(st.sampled_from([6e8, 3e9, 8e9, 32e9, 70e9, 4e11])),
        },
        "workload": {
            "contextTokens": draw(st.sampled_from([2048, 8192, 32768])),
            "concurrency": draw(st.sampled_from([1, 4, 16])),
            "promptTokens": 1024,
            "outputTokensPerSecond": draw(st.sampled_from([0, 50, 500])),
        },
        "slo": {
            "timeToFirstTokenMs": draw(st.sampled_from([None, 500, 2000, 20000])),
            "timePerOutputTokenMs": draw(st.sampled_from([None, 20, 60, 500])),
        },
        "quality": {"maxLoss": draw(st.sampled_from([0.0, 0.01, 0.02, 0.05]))},
        "placement": {
            "tiers": draw(st.sampled_from([["gpu"], ["gpu", "offload"], ["gpu", "offload", "cpu"]]))
        },
    }


def plan(body, cluster=CLUSTER, name="d"):
    return plan_deployment(
        DeploymentRequest("ns", name, ModelDeploymentSpec.model_validate(body)), cluster
    )


@SETTINGS
@given(specs())
def test_a_chosen_plan_satisfies_its_own_slo_and_memory_checks(body):
    p = plan(body)
    if p.phase != "Placed":
        return
    slo, est, pl = body["slo"], p.estimate, p.placement
    if slo["timeToFirstTokenMs"] is not None:
        assert est.time_to_first_token_ms <= slo["timeToFirstTokenMs"] + 0.05
    if slo["timePerOutputTokenMs"] is not None:
        assert est.time_per_output_token_ms <= slo["timePerOutputTokenMs"] + 0.005
    pool = CLUSTER.pool(pl.pool)
    if pl.tier == "gpu":
        assert est.total_bytes_per_gpu <= pool.usable_bytes_per_gpu
    elif pl.tier == "offload":
        assert est.total_bytes_per_gpu - pl.offload_bytes_per_replica // pl.gpus_per_replica <= (
            pool.usable_bytes_per_gpu
        )
    else:
        assert est.total_bytes <= pool.host_bytes_per_node
    assert pl.tier in body["placement"]["tiers"]
    assert p.cost.per_hour >= 0


@SETTINGS
@given(
    specs(), st.sampled_from(["timeToFirstTokenMs", "timePerOutputTokenMs"]), st.floats(1.0, 10.0)
)
def test_loosening_an_slo_never_raises_the_cost(body, field, factor):
    tight = plan(body)
    loose_body = {**body, "slo": dict(body["slo"])}
    if loose_body["slo"][field] is None:
        return
    loose_body["slo"][field] *= factor
    loose = plan(loose_body)
    if tight.phase == "Placed":
        assert loose.phase == "Placed"
        assert loose.cost.per_hour <= tight.cost.per_hour + 1e-9


@SETTINGS
@given(st.lists(specs(), min_size=1, max_size=6), st.integers(1, 3))
def test_adding_capacity_never_makes_a_schedulable_deployment_unschedulable(bodies, extra):
    small = build_cluster(nodes=l4_nodes(1) + a100_nodes(1) + cpu_nodes(1))
    big = build_cluster(
        nodes=l4_nodes(1 + extra) + a100_nodes(1 + extra) + cpu_nodes(1) + h100_nodes(extra)
    )
    requests = [
        DeploymentRequest("ns", f"d{i}", ModelDeploymentSpec.model_validate(b))
        for i, b in enumerate(bodies)
    ]
    before = {(p.namespace, p.name): p.phase for p in plan_cluster(requests, small)}
    one_by_one = {r.name: plan_deployment(r, big).phase for r in requests}
    for (_, name), phase in before.items():
        if phase == "Placed":
            assert one_by_one[name] == "Placed"


@SETTINGS
@given(specs())
def test_same_input_same_output(body):
    fresh = build_cluster(nodes=l4_nodes(2) + a100_nodes(1) + h100_nodes(1) + cpu_nodes(1))
    assert plan(body).status_fields() == plan(body, fresh).status_fields()

"""Demand → planned demand → replicas → tier (``planning.scaling``), through the real planner."""

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from planning_clusters import a100_nodes, cpu_nodes, h100_nodes, l4_nodes

from memplace.api import ModelDeploymentSpec
from memplace.planning import scaling
from memplace.planning.cost_history import DAY_SECONDS, last_24h, record
from memplace.planning.discovery import build_cluster
from memplace.planning.plan import DeploymentRequest
from memplace.planning.scaled_plan import plan_scaled
from memplace.planning.scaling import Sample

CONFIGS = Path(__file__).parents[1] / "fixtures" / "configs"
CLUSTER = build_cluster(nodes=l4_nodes(2) + a100_nodes(1) + h100_nodes(1) + cpu_nodes(1))
SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def spec(scaling_spec=None, pools=None, **workload):
    body = {
        "model": {
            "name": "Qwen/Qwen3-8B",
            "config": json.loads((CONFIGS / "qwen3-8b.json").read_text()),
        },
        "workload": {
            "contextTokens": 4096,
            "concurrency": 4,
            "outputTokensPerSecond": 50,
            **workload,
        },
        "slo": {"timePerOutputTokenMs": 250},
        "quality": {"maxLoss": 0.02},
        "scaling": {"demand": "Measured", **(scaling_spec or {})},
    }
    if pools:
        body["placement"] = {"pools": pools}
    return ModelDeploymentSpec.model_validate(body)


def planned_replicas(s, decision, policy, current=None):
    """The shell's chain (``scaled_plan``): the plan, its replicas, and how many the demand
    needs when maxReplicas held them below it."""
    scaled = plan_scaled(
        DeploymentRequest("ml", "chat", s, current=current), CLUSTER, policy, decision
    )
    assert scaled.plan.phase == "Placed", scaled.plan.message
    return scaled.plan, scaled.plan.placement.replicas, scaled.needed


demands = st.lists(
    st.sampled_from([0.0, 3.0, 40.0, 90.0, 250.0, 600.0, 1500.0]), min_size=1, max_size=6
)


@SETTINGS
@given(
    demands=demands,
    low=st.sampled_from([0, 1, 2]),
    span=st.sampled_from([0, 1, 3, None]),
    idle=st.sampled_from([None, 60]),
)
def test_replicas_never_leave_min_max(demands, low, span, idle):
    high = None if span is None else max(low, 1) + span
    extra = {"idleAfterSeconds": idle} if idle else {}
    s = spec({"minReplicas": low, "maxReplicas": high, "coldStart": "allowed", **extra})
    policy = scaling.Policy.from_spec(s)
    history = scaling.start(policy, 0.0)
    for i, demand in enumerate(demands):
        history, decision = scaling.step(history, policy, Sample(30.0 * (i + 1), demand))
        _, replicas, needed = planned_replicas(s, decision, policy)
        floor = low if decision.idle else max(low, 1)
        assert replicas >= floor
        assert high is None or replicas <= high
        assert needed is None or needed > high


@SETTINGS
@given(
    history_demands=st.lists(st.sampled_from([0.0, 3.0, 40.0, 250.0]), min_size=1, max_size=6),
    lower=st.floats(0, 250),
    more=st.floats(0, 250),
)
def test_demand_up_never_lowers_the_planned_demand_or_the_replicas(history_demands, lower, more):
    """On one placement (fp8 on the L4 pool: eight GPUs, room for 500 tok/s with headroom)."""
    s = spec({"scaleDownStabilizationSeconds": 120}, pools=["l4"])
    policy = scaling.Policy.from_spec(s)
    history = scaling.start(policy, 0.0)
    for i, demand in enumerate(history_demands):
        history, _ = scaling.step(history, policy, Sample(30.0 * (i + 1), demand))
    at = 30.0 * (len(history_demands) + 1)
    _, low = scaling.step(history, policy, Sample(at, lower))
    _, high = scaling.step(history, policy, Sample(at, lower + more))
    assert high.planned >= low.planned
    fixed = spec({"scaleDownStabilizationSeconds": 120}, pools=["l4"])
    fixed = fixed.model_copy(
        update={"quality": fixed.quality.model_copy(update={"precisions": ["fp8"]})}
    )
    _, fewer, _ = planned_replicas(fixed, low, policy)
    _, more_replicas, _ = planned_replicas(fixed, high, policy)
    assert more_replicas >= fewer


def where(placement):
    """The placement without its replica count and nodes: what a move changes."""
    return json.dumps(placement.to_wire() | {"replicas": None, "nodes": None}, sort_keys=True)


def l4_full_at():
    """The planned demand (tok/s) above which the eight L4s no longer hold the deployment."""
    s = spec()
    policy = scaling.Policy.from_spec(s)

    def on_l4(planned):
        decision = scaling.Decision(planned, "measured", "", False)
        return planned_replicas(s, decision, policy)[0].placement.pool == "l4"

    low, high = 100.0, 3000.0
    assert on_l4(low) and not on_l4(high)
    for _ in range(40):
        middle = (low + high) / 2
        low, high = (middle, high) if on_l4(middle) else (low, middle)
    return high


@pytest.mark.parametrize("period", [900, 1800, 3600])
@pytest.mark.parametrize("amplitude", [0.07, 0.085])
def test_a_demand_oscillating_around_a_threshold_moves_at_most_once_per_window(period, amplitude):
    """Demand swings ±7% and ±8.5% around the demand at which the L4 pool fills up, with half
    periods (450 s to 30 min) longer than the 300 s scale-down window, for four hours: the
    tolerance band alone lets the planned demand follow every swing, so without the move
    margin (``scaling.MOVE_MARGIN``) the placement changed on every crossing, several times per
    30-minute rate-limit window. Here the plan alone, without the operator's rate limit: it
    moves once, on the first rise, and never back."""
    threshold = l4_full_at() * 0.7  # measured tok/s; planned = measured / targetUtilization
    low, high = threshold * (1 - amplitude), threshold * (1 + amplitude)
    s = spec(outputTokensPerSecond=low)
    policy = scaling.Policy.from_spec(s)
    history = scaling.start(policy, 0.0)
    current, moves, pools = None, [], set()
    for t in range(30, 4 * 3600, 30):
        demand = high if (t // (period / 2)) % 2 else low
        history, decision = scaling.step(history, policy, Sample(float(t), demand))
        plan, _, _ = planned_replicas(s, decision, policy, current=current)
        if current is not None and where(plan.placement) != where(current):
            moves.append(t)
        current = plan.placement
        pools.add(current.pool)
    assert len(pools) == 2 and moves  # the rise did cross the threshold
    window = 1800
    for start in moves:
        assert len([m for m in moves if start <= m < start + window]) <= 1, moves
    assert len(moves) == 1, moves


def test_a_fall_waits_for_the_scale_down_window_then_a_cheaper_placement_wins():
    s = spec()
    policy = scaling.Policy.from_spec(s)
    history = scaling.start(policy, 0.0)
    history, busy = scaling.step(history, policy, Sample(30, 3000))
    big, _, _ = planned_replicas(s, busy, policy)
    for t in range(60, 330, 30):
        history, quiet = scaling.step(history, policy, Sample(t, 30))
        assert quiet.planned == busy.planned, t  # the highest over 300 s is still 3000
    history, quiet = scaling.step(history, policy, Sample(360, 30))
    assert quiet.planned == pytest.approx(30 / 0.7)
    small, _, _ = planned_replicas(s, quiet, policy, current=big.placement)
    assert small.cost.per_hour < big.cost.per_hour


def test_the_static_demand_is_the_floor_until_there_is_a_window_of_history():
    s = spec(outputTokensPerSecond=400)
    policy = scaling.Policy.from_spec(s)
    history = scaling.start(policy, 0.0)
    history, first = scaling.step(history, policy, Sample(30, 5))
    assert first.planned == pytest.approx(400 / 0.7)
    history, later = scaling.step(history, policy, Sample(301, 5))
    assert later.planned == pytest.approx(5 / 0.7)


def test_a_missing_metric_keeps_the_planned_demand_and_says_why():
    s = spec({"minReplicas": 0, "coldStart": "allowed", "idleAfterSeconds": 60})
    policy = scaling.Policy.from_spec(s)
    history = scaling.start(policy, 0.0)
    history, _ = scaling.step(history, policy, Sample(30, 300))
    kept, decision = scaling.step(history, policy, Sample(600, None, missing="Prometheus: 503"))
    assert kept == history
    assert decision.planned == history.planned and not decision.idle
    assert "Prometheus: 503" in decision.reason and "kept" in decision.reason


def test_idle_goes_to_min_replicas_zero_is_cold_and_traffic_wakes_it():
    s = spec({"minReplicas": 0, "coldStart": "allowed", "idleAfterSeconds": 120})
    policy = scaling.Policy.from_spec(s)
    history = scaling.start(policy, 0.0)
    history, busy = scaling.step(history, policy, Sample(30, 300, running=4))
    running, _, _ = planned_replicas(s, busy, policy)
    history, quiet = scaling.step(history, policy, Sample(90, 0, running=0))
    assert not quiet.idle
    history, idle = scaling.step(history, policy, Sample(150, 0, running=0))
    assert idle.idle and idle.source == "idle"
    cold, replicas, _ = planned_replicas(s, idle, policy, current=running.placement)
    assert replicas == 0
    assert cold.placement.pool == running.placement.pool  # the plan stays
    assert scaling.temperature(cold.placement.tier, replicas) == "cold"
    history, woken = scaling.step(history, policy, Sample(900, None, wake=True))
    assert woken.source == "wake" and not woken.idle
    _, replicas, _ = planned_replicas(s, woken, policy, current=cold.placement)
    assert replicas >= 1


def test_waiting_requests_raise_the_demand_beyond_the_served_rate():
    policy = scaling.Policy.from_spec(spec())
    history = scaling.start(policy, 0.0)
    _, served = scaling.step(history, policy, Sample(30, 700, running=8, waiting=0))
    _, queued = scaling.step(history, policy, Sample(30, 700, running=8, waiting=8))
    assert queued.planned == pytest.approx(2 * served.planned)


def test_max_replicas_caps_and_says_how_many_the_demand_needs():
    s = spec({"maxReplicas": 2}, pools=["l4"])
    policy = scaling.Policy.from_spec(s)
    _, decision = scaling.step(scaling.start(policy, 0.0), policy, Sample(30, 1000))
    _, replicas, needed = planned_replicas(s, decision, policy)
    assert replicas == 2 and needed > 2


def test_the_cel_rules_have_their_pydantic_twins():
    with pytest.raises(ValueError, match="coldStart: allowed"):
        spec({"minReplicas": 0})
    with pytest.raises(ValueError, match="minReplicas must not exceed maxReplicas"):
        spec({"minReplicas": 3, "maxReplicas": 2})
    defaults = spec().scaling
    assert (defaults.scale_up_stabilization_seconds, defaults.scale_down_stabilization_seconds) == (
        0,
        300,
    )
    assert defaults.target_utilization == 0.7


def test_without_spec_scaling_there_is_no_policy():
    s = spec().model_copy(update={"scaling": None})
    assert scaling.Policy.from_spec(s) is None


def test_temperature():
    assert scaling.temperature("gpu", 2) == "hot"
    assert scaling.temperature("offload", 1) == "warm"
    assert scaling.temperature("cpu", 1) == "warm"
    assert scaling.temperature("gpu", 0) == "cold"


def test_cold_start_is_weights_over_the_assumed_bandwidth():
    assert scaling.cold_start_seconds(
        15_000_000_000, scaling.LOAD_BYTES_PER_SECOND
    ) == pytest.approx(48.0, abs=0.1)
    assert scaling.cold_start_seconds(None, scaling.LOAD_BYTES_PER_SECOND) is None


def test_cost_of_the_last_day_counts_each_stretch_inside_it():
    history = record((), 0.0, 10.0)  # $10/h from t=0
    history = record(history, 3600.0, 0.0)  # cold after an hour
    history = record(history, 3600.0 * 3, 2.0)  # $2/h from hour 3
    assert last_24h(history, 3600.0 * 5) == pytest.approx(10 + 4)
    later = DAY_SECONDS + 3600.0 * 5  # the first stretch is now outside the day
    assert last_24h(record(history, later, 2.0), later) == pytest.approx(2.0 * 24)
    assert len(record(history, later + DAY_SECONDS, 1.0)) <= 2

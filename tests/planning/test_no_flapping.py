"""No flapping, through the whole decision chain (``flap_chain``): stabilised demand
(``scaling.step``) → the plan (``scaled_plan.plan_scaled``, every re-plan, on a cluster with a
cheap L4 pool and an expensive H100 pool) → ``operator.moves.decide`` with the default 30-minute
``--min-move-interval``.

The thresholds are where the planner's choice changes with the demand: found here by bisection
on the real planner (the L4 pool full at eight replicas sends the deployment to the H100s; one
more replica makes another precision or KV type as cheap). Demands swing around them as square
and sine waves, periods 30 s to 4 h, for eight simulated hours, and as random walks.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Callable
from pathlib import Path

import pytest
from flap_chain import Chain, where
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from planning_clusters import h100_nodes, l4_nodes

from memplace.api import ModelDeploymentSpec
from memplace.planning import scaling
from memplace.planning.discovery import build_cluster

CONFIGS = Path(__file__).parents[1] / "fixtures" / "configs"
CLUSTER = build_cluster(nodes=l4_nodes(2) + h100_nodes(1))
"""Eight L4s at $1/h each and eight H100s at about $11/h each (GKE list prices, ``catalogue``)."""
HOURS = 8 * 3600.0
PERIODS = [30, 120, 600, 1800, 3600, 14400]
"""Full periods of the swings, seconds: from one measurement window to four hours."""
MIN, MAX = 1, 8
UTILIZATION = 0.7  # spec.scaling.targetUtilization's default


def spec(static: float) -> ModelDeploymentSpec:
    return ModelDeploymentSpec.model_validate(
        {
            "model": {
                "name": "Qwen/Qwen3-8B",
                "config": json.loads((CONFIGS / "qwen3-8b.json").read_text()),
            },
            "workload": {"contextTokens": 4096, "concurrency": 4, "outputTokensPerSecond": static},
            "slo": {"timePerOutputTokenMs": 250},
            "quality": {"maxLoss": 0.02},
            "scaling": {"demand": "Measured", "minReplicas": MIN, "maxReplicas": MAX},
        }
    )


def fresh(planned: float) -> str:
    """Where a first placement for ``planned`` tok/s (headroom included) goes."""
    chain = Chain(spec(50.0), CLUSTER)
    placement = chain.plan(scaling.Decision(planned, "measured", "", False)).plan.placement
    assert placement is not None
    return where(placement)


@functools.cache
def thresholds() -> tuple[float, ...]:
    """Planned demands (tok/s) at which the first placement changes, between 40 and 2000."""
    grid = [40.0 * 1.04**i for i in range(100) if 40.0 * 1.04**i <= 2000]
    found = []
    for low, high in zip(grid, grid[1:], strict=False):
        below = fresh(low)
        if fresh(high) == below:
            continue
        for _ in range(40):
            middle = (low + high) / 2
            low, high = (middle, high) if fresh(middle) == below else (low, middle)
        found.append(high)
    return tuple(found)


@functools.cache
def pool_threshold() -> float:
    """The planned demand above which the L4 pool no longer holds it: H100s."""
    [threshold] = [
        t
        for t in thresholds()
        if json.loads(fresh(t))["pool"] == "h100" and json.loads(fresh(t * 0.999))["pool"] == "l4"
    ]
    return threshold


def square(centre: float, amplitude: float, period: float) -> Callable[[float], float]:
    return lambda t: centre * (1 + amplitude if (t // (period / 2)) % 2 else 1 - amplitude)


def sine(centre: float, amplitude: float, period: float) -> Callable[[float], float]:
    return lambda t: centre * (1 + amplitude * math.sin(2 * math.pi * t / period + math.pi))


def run(demand: Callable[[float], float], seconds: float = HOURS) -> Chain:
    chain = Chain(spec(demand(0.0)), CLUSTER)
    chain.run(demand, seconds)
    assert_bounded(chain)
    return chain


def assert_bounded(chain: Chain) -> None:
    """At most one move per rate-limit window (any window, not only aligned ones), each one
    completed before the next starts; replicas never leave [min, max]."""
    for earlier, later in zip(chain.started, chain.started[1:], strict=False):
        assert later - earlier >= chain.interval_seconds, chain.started
    assert all(MIN <= replicas <= MAX for _, _, replicas, _ in chain.trace)


def test_the_cluster_has_thresholds_of_every_kind():
    """The simulation is about something: the L4 pool fills up, and other thresholds change
    only the precision or KV type within a pool."""
    assert pool_threshold() > 0
    assert len(thresholds()) >= 5, thresholds()


@pytest.mark.parametrize("shape", [square, sine])
@pytest.mark.parametrize("amplitude", [0.03, 0.08])
def test_a_small_swing_around_any_threshold_moves_at_most_once(shape, amplitude):
    """±3% and ±8% around every threshold, each period: the first crossing may move it, no
    crossing after that does (the tolerance band and the move margin hold it). Before the move
    margin, ±8% moved the deployment every 31 minutes at every threshold, held back only by the
    rate limit."""
    for threshold in thresholds():
        centre = threshold * UTILIZATION  # measured tok/s: planned = measured / utilisation
        for period in PERIODS:
            chain = run(shape(centre, amplitude, period))
            assert len(chain.started) <= 1, (threshold, period, chain.started)


@pytest.mark.parametrize("shape", [square, sine])
@pytest.mark.parametrize("amplitude", [0.3, 0.6])
def test_a_wide_swing_moves_at_most_once_per_window_around_thresholds(shape, amplitude):
    """±30% and ±60%: these moves follow the demand, each way, so only the rate limit bounds
    them (around every eighth threshold and the pool's, to keep the test quick: a wide swing
    crosses several)."""
    for threshold in {*thresholds()[::8], pool_threshold()}:
        for period in PERIODS:
            run(shape(threshold * UTILIZATION, amplitude, period))


def settled(chain: Chain, threshold: float) -> int:
    """The tier follows the demand: once the measured demand has stayed clearly on one side of
    the pool threshold (past the move margin) for longer than the scale-down window, the rate
    limit and a move together, the deployment runs on that side's pool. How many windows were
    checked."""
    settle = 300 + chain.interval_seconds + chain.move_seconds + 2 * 30
    planned = [(t, measured / UTILIZATION, pool) for t, measured, _, pool in chain.trace]
    followed = 0
    for i, (t, _, pool) in enumerate(planned):
        if t < settle:
            continue
        past = [p for s, p, _ in planned[: i + 1] if s >= t - settle]
        if all(p > threshold for p in past):
            assert pool == "h100", (t, chain.started)
            followed += 1
        elif all(p * (1 + scaling.MOVE_MARGIN) < threshold * 0.999 for p in past):
            assert pool == "l4", (t, chain.started)
            followed += 1
    return followed


@pytest.mark.parametrize("shape", [square, sine])
@pytest.mark.parametrize("amplitude", [0.3, 0.6])
@pytest.mark.parametrize("period", [7200, 14400])
def test_a_demand_that_stays_up_or_down_longer_than_the_window_moves_back(shape, amplitude, period):
    """Half periods of one and two hours, past the 30-minute rate limit: the deployment goes to
    the H100s on every rise and back to the L4s on every fall."""
    threshold = pool_threshold()
    chain = run(shape(threshold * UTILIZATION, amplitude, period))
    assert settled(chain, threshold) > 0
    pools = [pool for _, _, _, pool in chain.trace]
    swaps = sum(a != b for a, b in zip(pools, pools[1:], strict=False))
    assert swaps >= 2 * (HOURS // period) - 1, chain.started


@settings(
    max_examples=30, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
@given(
    steps=st.lists(st.floats(-0.25, 0.25), min_size=48, max_size=48),
    noise=st.lists(st.floats(-0.05, 0.05), min_size=16, max_size=16),
)
def test_a_random_walk_around_the_pool_threshold_is_bounded_and_followed(steps, noise):
    """Ten-minute levels, each up to 25% from the last, between half and twice the threshold,
    with up to 5% of noise on every window (a fixed pattern of 16 windows)."""
    threshold = pool_threshold()
    ratios = [1.0]  # of the threshold
    for step in steps:
        ratios.append(min(2.0, max(0.5, ratios[-1] * (1 + step))))
    levels = [ratio * threshold * UTILIZATION for ratio in ratios]

    def demand(t: float) -> float:
        level = levels[min(len(levels) - 1, max(0, int(t // 600)))]
        return level * (1 + noise[int(t // 30) % len(noise)])

    settled(run(demand), threshold)


def test_within_the_margin_the_running_placement_stays_and_says_why_past_it_it_moves():
    threshold = pool_threshold()
    chain = Chain(spec(50.0), CLUSTER)
    high = chain.plan(scaling.Decision(threshold * 1.05, "measured", "", False)).plan
    assert high.placement is not None and high.placement.pool == "h100"
    chain.running = high.placement
    kept = chain.plan(scaling.Decision(threshold * 0.95, "measured", "", False)).plan
    assert kept.placement is not None and where(kept.placement) == where(high.placement)
    [cheaper, *_] = kept.alternatives
    assert (cheaper.code, cheaper.pool) == ("KeptRunning", "l4")
    assert "hysteresis" in cheaper.reason and "hysteresis" in kept.message
    assert cheaper.per_hour is not None and kept.cost is not None
    assert cheaper.per_hour < kept.cost.per_hour
    moved = chain.plan(scaling.Decision(threshold * 0.85, "measured", "", False)).plan
    assert moved.placement is not None and moved.placement.pool == "l4"

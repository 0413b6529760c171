"""The planner's fast paths at scale against the plain ones they replace.

``room._room_answers`` against ``choose.cheapest``, ``explain._alternatives`` against
``choose.alternative_indices``, the solver's aggregated items (``solve.aggregate``) against one
item per deployment, and ``solve.polish``: each fast path must give what the plain one gives."""

import itertools
import random

import pytest
from planning_clusters import a100_nodes, cpu_nodes, h100_nodes, l4_nodes
from test_plan import request, spec

from memplace.planning import solve as solving
from memplace.planning.batch import _undominated
from memplace.planning.choose import alternative_indices, cheapest, no_capacity
from memplace.planning.decide import plan_cluster
from memplace.planning.explain import _alternative_at, _alternatives
from memplace.planning.inventory import build_cluster
from memplace.planning.ranking import _static
from memplace.planning.room import _room_answers
from memplace.planning.solve import Item, Option, Room, aggregate, polish, solve, spread


def _filled(seed: int):
    """A cluster part-filled by a greedy plan (so that some pools lack room), and requests."""
    rng = random.Random(seed)
    cluster = build_cluster(
        nodes=l4_nodes(rng.randint(1, 3))
        + a100_nodes(rng.randint(1, 2))
        + h100_nodes(1)
        + cpu_nodes(1)
    )
    shapes = [
        spec(workload={"outputTokensPerSecond": d}, quality={"maxLoss": q})
        for d, q in itertools.product((0, 200, 900), (0.0, 0.05))
    ]
    requests = [request(f"d{i}", spec=rng.choice(shapes)) for i in range(12)]
    state = cluster.mutable_copy()
    for r in requests[:8]:  # plan_cluster plans on a copy: take each one's room here
        plan = plan_cluster([r], state)[0]
        if plan.placement is not None:
            state = state.reserve(plan.placement, plan.estimate, r.owner)
    return state, requests


def test_the_filled_clusters_leave_some_candidates_without_room():
    lacking = 0
    for seed in range(8):
        state, requests = _filled(seed)
        for r in requests:
            ranking = _static(r, state).ranking
            lacking += len(_room_answers(ranking, state, r.full_pools)[1])
    assert lacking > 0  # else the comparisons below would not see a NoCapacity


@pytest.mark.parametrize("seed", range(8))
def test_room_answers_are_what_cheapest_answers(seed):
    state, requests = _filled(seed)
    for r in requests:
        ranking = _static(r, state).ranking
        chosen, full = _room_answers(ranking, state, r.full_pools)
        want_chosen, want_full = cheapest(
            ranking,
            lambda key, i, ranked=ranking.ranked: no_capacity(ranked[i], state.capacity(key[0])),
        )
        assert chosen == want_chosen
        assert len(full) == len(want_full)
        assert sorted(full) == sorted(want_full)
        assert all(full[i] == want_full[i] for i in want_full)
        assert all(i not in full for i in ranking.feasible if i not in want_full)


@pytest.mark.parametrize("seed", range(8))
def test_the_kept_alternatives_are_the_ones_alternative_indices_gives(seed):
    state, requests = _filled(seed)
    for r in requests * 2:  # the second round reads what the first kept
        ranking = _static(r, state).ranking
        chosen, full = _room_answers(ranking, state, r.full_pools)
        plain = [
            _alternative_at(ranking, i, why, state.memo)
            for i, why in alternative_indices(ranking, chosen, full)
        ]
        assert _alternatives(ranking, chosen, full, state.memo) == plain


def test_a_pool_found_full_for_a_deployment_answers_no_room_for_all_its_candidates():
    state, requests = _filled(1)
    r = requests[0]
    ranking = _static(r, state).ranking
    pool = next(iter(ranking.feasible_by_pool))
    chosen, full = _room_answers(ranking, state, frozenset({pool}))
    assert all(i in full for i in ranking.feasible_by_pool[pool])
    assert "is full for this deployment" in full[ranking.feasible_by_pool[pool][0]].message
    assert chosen is None or chosen not in ranking.feasible_by_pool[pool]


def _option(key, pool, slots, replicas, cost, resident=0, shared=False):
    return Option(key, pool, slots, resident, replicas, cost, shared)


def _naive_undominated(options):
    kept = []
    for o in options:
        if any(
            r.pool == o.pool
            and r.slots == o.slots
            and r.shared == o.shared
            and r.cost <= o.cost + 1e-9
            and r.replicas <= o.replicas
            and (not o.shared or r.resident <= o.resident)
            for r in kept
        ):
            continue
        kept.append(o)
    return kept


def test_dominated_options_are_dropped_as_the_pairwise_rule_drops_them():
    rng = random.Random(3)
    for _ in range(200):
        options = sorted(
            (
                _option(
                    k,
                    rng.choice("ab"),
                    rng.choice((1, 2)),
                    rng.randint(1, 3),
                    round(rng.uniform(1, 4), 1),
                    rng.choice((10, 20)),
                    rng.random() < 0.5,
                )
                for k in range(12)
            ),
            key=lambda o: o.cost,
        )
        assert _undominated(options) == _naive_undominated(options)


def test_interchangeable_items_are_one_item_with_their_count():
    a = (_option(0, "p", 1, 1, 1.0), _option(1, "p", 1, 2, 2.0))
    b = (_option(0, "p", 2, 1, 3.0),)
    items = [Item(a), Item(b, priority=1), Item(a), Item(a, current=0), Item(a)]
    groups, members = aggregate(items)
    assert [g.count for g in groups] == [3, 1, 1]
    assert members == [[0, 2, 4], [1], [3]]
    # the earlier members get the better-ranked options, the last ones are left out
    assert spread([(1, 1), 0, 0], groups, members) == [0, 0, 1, 0, None]


def _expanded_best(items, rooms):
    """(placed weight, cost) of the best assignment, one item at a time, by brute force."""
    weights = solving.level_weights([i.priority for i in items])
    rows = solving._rows(items, rooms)
    best = None
    for pick in itertools.product(*[[None, *range(len(i.options))] for i in items]):
        used = [0] * len(rows)
        for r, (terms, _) in enumerate(rows):
            for i, j, c in terms:
                if pick[i] == j:
                    used[r] += c
        if any(u > rows[r][1] for r, u in enumerate(used)):
            continue
        placed = sum(weights[items[i].priority] for i, j in enumerate(pick) if j is not None)
        cost = sum(items[i].options[j].cost for i, j in enumerate(pick) if j is not None)
        if best is None or (placed, -cost) > (best[0], -best[1]):
            best = (placed, round(cost, 4))
    return best


@pytest.mark.parametrize("backend", ["highs", "cp-sat"])
@pytest.mark.parametrize("seed", range(6))
def test_the_aggregated_model_has_the_optimum_of_one_item_per_deployment(seed, backend):
    rng = random.Random(seed)
    specs = [
        tuple(
            sorted(
                (
                    _option(k, rng.choice(("p", "q")), rng.choice((1, 2)), 1, rng.randint(1, 9))
                    for k in range(rng.randint(1, 3))
                ),
                key=lambda o: o.cost,
            )
        )
        for _ in range(3)
    ]
    items = [Item(rng.choice(specs), priority=rng.choice((0, 0, 1))) for _ in range(7)]
    rooms = {"p": Room((2, 1)), "q": Room((2,))}
    solution = solve(items, rooms, time_limit_s=10.0, solver=backend)
    weights = solving.level_weights([i.priority for i in items])
    placed = sum(weights[items[i].priority] for i, j in enumerate(solution.chosen) if j is not None)
    cost = sum(items[i].options[j].cost for i, j in enumerate(solution.chosen) if j is not None)
    assert (placed, round(cost, 4)) == _expanded_best(items, rooms)
    assert solution.optimal


def test_polish_takes_the_better_ranked_option_of_the_same_cost_where_room_allows():
    # option 0 (rank first) and 1 cost the same; the solver's answer took 1 for both items
    options = (_option(0, "p", 2, 1, 2.0), _option(1, "q", 2, 1, 2.0))
    items = [Item(options), Item(options)]
    rows = solving._rows(items, {"p": Room((2,)), "q": Room((2, 2))})
    # room for one 2-GPU replica in p: the earlier item moves there, the later one stays in q
    assert polish(items, rows, [1, 1], threshold=0.1) == [0, 1]


def test_polish_never_raises_the_cost_and_lowers_it_after_a_time_limit():
    options = (_option(0, "p", 1, 1, 1.0), _option(1, "q", 1, 1, 5.0))
    items = [Item(options, count=3)]
    rows = solving._rows(items, {"p": Room((1, 1)), "q": Room((4,))})
    # a best-so-far with all three in q: two fit in p, the third stays
    assert polish(items, rows, [(0, 3)], threshold=0.1) == [(2, 1)]


@pytest.mark.parametrize("enabled", [True, False])
def test_the_collector_is_paused_for_a_batch_and_left_as_it_was(enabled, monkeypatch):
    import gc

    from memplace.planning import batch

    seen = []
    real = batch.solve

    def solve_and_look(*a, **k):
        seen.append(gc.isenabled())
        return real(*a, **k)

    monkeypatch.setattr(batch, "solve", solve_and_look)
    cluster = build_cluster(nodes=l4_nodes(1))
    was = gc.isenabled()
    (gc.enable if enabled else gc.disable)()
    try:
        batch.plan_batch([request("a"), request("b")], cluster)
        assert seen == [False]
        assert gc.isenabled() is enabled
    finally:
        (gc.enable if was else gc.disable)()

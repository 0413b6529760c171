from types import SimpleNamespace as NS

from memplace.planning.capacity import PoolCapacity
from memplace.planning.choose import alternatives, cheapest, no_capacity, rank
from memplace.planning.feasibility import Evaluation, Rejection


def ev(
    pool="a",
    per_hour=1.0,
    gpus=1,
    replicas=1,
    bits=16,
    kv_bits=16,
    tier="gpu",
    precision="bf16",
    variant=None,
    rejections=(),
):
    candidate = NS(
        pool=NS(name=pool, cpu_only=False, gpu_name="L4"),
        gpus=gpus,
        tier=tier,
        precision=NS(id=precision, weight_bits=bits),
        kv=NS(id="bf16", bits=kv_bits),
        variant=NS(name=variant),
    )
    return Evaluation(
        candidate,
        None,
        None,
        0.0,
        0,
        1,
        0,
        replicas,
        replicas,
        per_hour,
        per_hour,
        tuple(rejections),
    )


def order(evals, current=None):
    ranking = rank(evals, current)
    return [(e.candidate.pool.name, e.per_hour, e.candidate.precision.id) for e in ranking.ranked]


def test_cheapest_first():
    assert order([ev("b", 2.0), ev("a", 3.0), ev("c", 1.0)])[0][0] == "c"


def test_equal_cost_prefers_fewer_gpus_then_higher_precision_then_pool_name():
    evals = [ev("b", 1.0, gpus=2), ev("z", 1.0, bits=4, precision="int4"), ev("y", 1.0)]
    assert [p for p, _, _ in order(evals)] == ["y", "z", "b"]


def test_float_noise_never_decides():
    assert [p for p, _, _ in order([ev("b", 1.0), ev("a", 1.0 + 1e-12)])] == ["a", "b"]


def test_the_current_placement_wins_an_exact_tie():
    current = NS(
        pool="b",
        precision="bf16",
        kv_cache_dtype="bf16",
        tier="gpu",
        gpus_per_replica=1,
        variant=None,
    )
    assert order([ev("a"), ev("b")], current)[0][0] == "b"


def test_gpu_tier_wins_a_tie_against_offload_and_cpu():
    evals = [ev("a", tier="cpu"), ev("a", tier="offload"), ev("a", tier="gpu")]
    assert [e.candidate.tier for e in rank(evals).ranked] == ["gpu", "offload", "cpu"]


def test_cheapest_skips_candidates_without_room_and_records_why():
    ranking = rank(
        [
            ev("full", 1.0),
            ev("free", 2.0),
            ev("bad", 0.5, rejections=[Rejection("TooSlow", "TPOT 71 ms > SLO 60 ms")]),
        ]
    )
    caps = {"full": PoolCapacity(["n"], [[1]], False), "free": PoolCapacity(["n"], [[1, 1]], False)}
    caps["full"].place(1, 0, 1)
    chosen, full = cheapest(ranking, lambda key, i: no_capacity(ranking.ranked[i], caps[key[0]]))
    assert ranking.ranked[chosen].candidate.pool.name == "free"
    (why,) = full.values()
    assert why.code == "NoCapacity" and why.resolvable and "room for 0" in why.message


def test_pools_marked_full_are_excluded():
    cap = PoolCapacity(["n"], [[1]], False)
    assert no_capacity(ev("a"), cap, frozenset({"a"})).code == "NoCapacity"


def test_alternatives_list_runners_up_and_the_best_per_other_pool_with_one_reason_each():
    slow = Rejection("TooSlow", "TPOT 71 ms > SLO 60 ms")
    ranking = rank(
        [
            ev("l4", 0.5, rejections=[slow]),
            ev("a100", 2.0),
            ev("h100", 3.0),
            ev("a100", 2.5, bits=8, precision="fp8"),
        ]
    )
    chosen, full = cheapest(ranking, lambda key, i: None)
    alts = alternatives(ranking, chosen, full)
    got = [(e.candidate.pool.name, e.candidate.precision.id, why.code) for e, why in alts]
    assert got == [
        ("l4", "bf16", "TooSlow"),
        ("a100", "fp8", "MoreExpensive"),
        ("h100", "bf16", "MoreExpensive"),
    ]
    assert "$1.00/h more" in alts[2][1].message

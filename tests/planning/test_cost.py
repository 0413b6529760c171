from types import SimpleNamespace

import pytest

from memplace.planning.cost import (
    OPENCOST_BASE_PRICES,
    cost_per_million_tokens,
    replica_cost,
    split_node_price,
)

GIB = 1 << 30


def pool(price, gpus, vcpus, memory_gib, cpu_only=False):
    return SimpleNamespace(
        price_per_node_hour=price,
        gpus_per_node=gpus,
        vcpus_per_node=vcpus,
        memory_bytes_per_node=memory_gib * GIB,
        cpu_only=cpu_only,
    )


def test_the_split_adds_back_up_to_the_node_price():
    split = split_node_price(40.9657, 8, 96, 1152 * GIB)
    assert split.total(8, 96, 1152 * GIB) == pytest.approx(40.9657)


def test_the_split_keeps_opencosts_base_price_ratio():
    split = split_node_price(40.9657, 8, 96, 1152 * GIB)
    base = OPENCOST_BASE_PRICES
    assert split.per_gpu_hour / split.per_vcpu_hour == pytest.approx(base["gpu"] / base["cpu"])
    assert split.per_vcpu_hour / split.per_gib_hour == pytest.approx(base["cpu"] / base["ram_gib"])


def test_worked_example_from_the_module_docstring():
    split = split_node_price(40.97, 8, 96, 1152 * GIB)
    assert 8 * split.per_gpu_hour == pytest.approx(20.07, abs=0.01)
    assert 96 * split.per_vcpu_hour == pytest.approx(8.01, abs=0.01)
    assert 1152 * split.per_gib_hour == pytest.approx(12.89, abs=0.01)


def test_a_gpu_replica_pays_its_share_of_the_node_in_gpus_cpu_and_ram():
    p = pool(40.0, 8, 96, 1152)
    cost = replica_cost(p, 2)
    assert cost.total == pytest.approx(10.0)
    split = split_node_price(40.0, 8, 96, 1152 * GIB)
    assert cost.gpu == pytest.approx(2 * split.per_gpu_hour)
    assert cost.cpu == pytest.approx(24 * split.per_vcpu_hour)
    assert cost.ram == pytest.approx(288 * split.per_gib_hour)


def test_a_replica_on_a_shared_gpu_pays_for_the_memory_it_takes():
    p = pool(4.0, 4, 48, 192)
    assert replica_cost(p, 1, gpu_fraction=0.25).total == pytest.approx(0.25)


def test_a_cpu_replica_pays_the_vcpus_and_ram_of_its_node():
    p = pool(2.0, 0, 32, 256, cpu_only=True)
    cost = replica_cost(p, 0)
    assert cost.gpu == 0 and cost.total == pytest.approx(2.0)
    assert cost.cpu / cost.ram == pytest.approx(32 * 0.031611 / (256 * 0.004237))


def test_cost_per_million_tokens():
    assert cost_per_million_tokens(3.6, 1000) == pytest.approx(1.0)
    assert cost_per_million_tokens(3.6, 0) is None

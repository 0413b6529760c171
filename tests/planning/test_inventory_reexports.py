"""``planning.inventory`` was split into one module per step; it re-exports every public name
it had, so that the operator, ``batch``, ``feasibility`` and ``plan`` keep importing from it."""

import importlib

import pytest

from memplace.planning import inventory

# Every public name inventory.py defined or exported before the split (ceil_div, used nowhere,
# was deleted), and the module that holds it now.
HOMES = {
    "GENERIC_BANDWIDTH_PER_VCPU": "generic_cpu",
    "GENERIC_BF16_FLOPS_PER_VCPU": "generic_cpu",
    "GENERIC_CPU": "generic_cpu",
    "generic_cpu_instance": "generic_cpu",
    "GPU_MEMORY_UTILIZATION": "memory",
    "HOST_MEMORY_UTILIZATION": "pool_sizing",
    "SAFETY_MARGIN_BYTES": "pool_sizing",
    "STALE_AFTER_HEARTBEATS": "pool_sizing",
    "LABEL_GPU_COUNT": "nodes",
    "LABEL_GPU_PRODUCT": "nodes",
    "LABEL_INSTANCE_TYPE": "nodes",
    "LABEL_INSTANCE_TYPE_BETA": "nodes",
    "RESOURCE_GPU": "nodes",
    "Node": "nodes",
    "node_from_manifest": "nodes",
    "PLATFORM_LABELS": "discovery",
    "build_cluster": "discovery",
    "ExcludedPool": "pools",
    "Pool": "pools",
    "PoolCapacity": "capacity",
    "Cluster": "cluster",
    "gib": "quantities",
    "parse_quantity": "quantities",
}


@pytest.mark.parametrize("name", sorted(HOMES))
def test_inventory_re_exports_the_object_its_home_module_holds(name):
    home = importlib.import_module(f"memplace.planning.{HOMES[name]}")
    assert getattr(inventory, name) is getattr(home, name)


def test_inventory_all_lists_exactly_the_re_exported_names():
    assert sorted(inventory.__all__) == sorted(HOMES)

"""A batch target holds only while the spec and, with ``spec.scaling``, the planned demand are
those the batch planned (``consolidate.target_for``).

Before, a target was kept for the spec's generation alone: the startup batch planned a scaled
deployment at its static demand, and its "stay where you run" target then held it there
through every fall in the measured demand (the flap helper found test_operator_scaling failing
on it, depending on timing)."""

from __future__ import annotations

import types

from memplace.api import ModelDeploymentSpec, PlacementStatus
from memplace.operator import consolidate

KEY = ("ml", "chat")
SCALED = ModelDeploymentSpec.model_validate({
    "model": {"name": "m", "parameters": 8e9},
    "workload": {"outputTokensPerSecond": 100},
    "scaling": {"demand": "Measured", "maxReplicas": 4}})
STATIC = ModelDeploymentSpec.model_validate({"model": {"name": "m", "parameters": 8e9}})
TARGET = PlacementStatus(pool="l4", gpu_model="L4", precision="fp8", kv_cache_dtype="fp8",
                         tier="gpu", gpus_per_replica=1, replicas=2)


def state_with(generation, demand) -> object:
    return types.SimpleNamespace(targets={KEY: ((generation, demand), TARGET)})


def measured(planned: float) -> dict:
    return {"demand": {"source": "measured", "plannedTokensPerSecond": planned}}


def test_a_target_holds_while_the_planned_demand_is_the_batch_s():
    state = state_with(3, 250.0)
    assert consolidate.target_for(state, KEY, 3, SCALED, measured(250.0)) == TARGET


def test_a_new_demand_or_a_new_generation_drops_the_target():
    state = state_with(3, 250.0)
    assert consolidate.target_for(state, KEY, 3, SCALED, measured(40.0)) is None
    assert consolidate.target_for(state, KEY, 4, SCALED, measured(250.0)) is None


def test_without_spec_scaling_the_generation_alone_keys_it():
    state = state_with(3, None)
    assert consolidate.target_for(state, KEY, 3, STATIC, {}) == TARGET
    assert consolidate.target_for(state, KEY, 4, STATIC, {}) is None


def test_the_batch_plans_a_scaled_deployment_at_its_planned_demand():
    at_static = consolidate._at_demand(SCALED, {}, None)
    at_low = consolidate._at_demand(SCALED, measured(10.0), None)
    assert at_static.workload.output_tokens_per_second > at_low.workload.output_tokens_per_second
    assert consolidate._at_demand(STATIC, measured(10.0), None) is STATIC

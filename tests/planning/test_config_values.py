"""Bad config values are refused with a ConfigError naming the field, and through the planner
they make only their own deployment Invalid (issue 15's malformed objects, issue 9 point 5)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from planning_clusters import a100_nodes, l4_nodes

from memplace.api import ModelDeploymentSpec
from memplace.planning.architecture import (
    ConfigError,
    architecture_from_config,
    architecture_from_parameters,
)
from memplace.planning.discovery import build_cluster
from memplace.planning.plan import DeploymentRequest, plan_cluster

CONFIGS = Path(__file__).parents[1] / "fixtures" / "configs"


def qwen3_8b() -> dict:
    return json.loads((CONFIGS / "qwen3-8b.json").read_text())


BAD_VALUES = [
    ("num_hidden_layers", 1e18),
    ("num_hidden_layers", 0),
    ("num_hidden_layers", -4),
    ("num_hidden_layers", -5),
    ("num_hidden_layers", 10_001),
    ("hidden_size", 1e300),
    ("hidden_size", -1024),
    ("hidden_size", 0),
    ("hidden_size", 4096.5),
    ("hidden_size", True),
    ("hidden_size", "big"),
    ("vocab_size", -1),
    ("num_key_value_heads", -8),
    ("num_key_value_heads", 0),
    ("num_key_value_heads", 5),  # 32 query heads are not divisible by 5
    ("num_attention_heads", 0),
    ("intermediate_size", -1),
    ("head_dim", math.inf),
    ("max_position_embeddings", -1),
]
"""Issue 15's malformed configs (all of them) and their neighbours."""


@pytest.mark.parametrize(("field", "value"), BAD_VALUES, ids=lambda v: repr(v))
def test_a_bad_value_is_a_config_error_naming_the_field(field, value):
    with pytest.raises(ConfigError, match=field):
        architecture_from_config(qwen3_8b() | {field: value})


def test_hidden_size_that_does_not_split_into_heads_needs_head_dim():
    config = qwen3_8b() | {"hidden_size": 4097}
    del config["head_dim"]
    with pytest.raises(ConfigError, match="hidden_size.*num_attention_heads.*head_dim"):
        architecture_from_config(config)


def test_a_huge_but_bounded_model_is_refused_by_its_parameter_count():
    # every field below its own bound, the product above a quadrillion parameters
    config = qwen3_8b() | {
        "hidden_size": 900_000,
        "num_hidden_layers": 9_000,
        "intermediate_size": 9_000_000,
    }
    with pytest.raises(ConfigError, match="parameters"):
        architecture_from_config(config)


def test_layer_types_must_cover_every_layer():
    config = qwen3_8b() | {"layer_types": ["full_attention"] * 3}
    with pytest.raises(ConfigError, match="layer_types"):
        architecture_from_config(config)


def test_a_pattern_that_disagrees_with_the_layer_count_is_refused():
    config = json.loads((CONFIGS / "nemotron-h-56b-base-8k.json").read_text())
    config["num_hidden_layers"] -= 1
    with pytest.raises(ConfigError, match="hybrid_override_pattern"):
        architecture_from_config(config)


@pytest.mark.parametrize(
    "rope", [{"rope_type": "yarn", "factor": "x"}, {"type": "linear", "factor": -2}]
)
def test_a_bad_rope_scaling_factor_is_named(rope):
    with pytest.raises(ConfigError, match="rope_scaling"):
        architecture_from_config(qwen3_8b() | {"rope_scaling": rope})


@pytest.mark.parametrize("parameters", [1e308, math.inf, 2e15])
def test_absurd_parameter_counts_are_refused(parameters):
    with pytest.raises(ConfigError, match="parameters"):
        architecture_from_parameters(parameters)


def test_counts_never_go_negative_for_any_positive_config():
    arch = architecture_from_config(qwen3_8b() | {"num_hidden_layers": 1, "hidden_size": 64})
    assert all(g.parameters >= 0 and g.active_parameters >= 0 for g in arch.groups)


# --- through the planner: one deployment at a time ------------------------------------------


def _spec(config: dict | None = None, context: int = 8192, **model) -> ModelDeploymentSpec:
    body = {
        "model": {"name": "Qwen/Qwen3-8B", **({"config": config} if config else {}), **model},
        "workload": {"contextTokens": context, "concurrency": 4},
        "quality": {"maxLoss": 0.02},
    }
    return ModelDeploymentSpec.model_validate(body)


@pytest.fixture(scope="module")
def cluster():
    return build_cluster(nodes=l4_nodes(2) + a100_nodes(1))


@pytest.mark.parametrize(("field", "value"), BAD_VALUES, ids=lambda v: repr(v))
def test_a_bad_config_makes_only_its_own_deployment_invalid(cluster, field, value):
    requests = [
        DeploymentRequest("ml", "bad", _spec(qwen3_8b() | {field: value})),
        DeploymentRequest("ml", "good", _spec(qwen3_8b())),
    ]
    bad, good = plan_cluster(requests, cluster)
    assert bad.name == "bad" and bad.phase == "Invalid" and field in bad.message
    assert good.phase == "Placed"


def test_parameters_1e308_is_invalid_not_an_overflow(cluster):
    plans = plan_cluster(
        [
            DeploymentRequest("ml", "huge", _spec(parameters=1e308)),
            DeploymentRequest("ml", "ok", _spec(parameters=8e9)),
        ],
        cluster,
    )
    assert [(p.name, p.phase) for p in plans] == [("huge", "Invalid"), ("ok", "Placed")]
    assert "parameters" in plans[0].message


def test_context_beyond_max_position_embeddings_is_invalid(cluster):
    spec = _spec(qwen3_8b(), context=10**12)
    (plan,) = plan_cluster([DeploymentRequest("ml", "long", spec)], cluster)
    assert plan.phase == "Invalid"
    assert "contextTokens 1000000000000" in plan.message and "40960" in plan.message


def test_rope_scaling_extends_the_context_as_vllm_does(cluster):
    # Qwen3's model card: yarn factor 4 over original_max_position_embeddings 32768 → 131072
    yarn = {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32768}
    assert architecture_from_config(qwen3_8b() | {"rope_scaling": yarn}).max_context_tokens == (
        131072
    )
    spec = _spec(qwen3_8b() | {"rope_scaling": yarn}, context=100_000)
    (plan,) = plan_cluster([DeploymentRequest("ml", "long", spec)], cluster)
    assert plan.phase != "Invalid"


def test_a_variant_with_a_bad_config_is_listed_and_the_model_still_planned(cluster):
    spec = _spec(
        qwen3_8b(),
        variants=[
            {
                "name": "broken",
                "qualityLoss": 0.01,
                "config": qwen3_8b() | {"num_attention_heads": 0},
            }
        ],
    )
    (plan,) = plan_cluster([DeploymentRequest("ml", "v", spec)], cluster)
    assert plan.phase == "Placed"
    assert any(
        a.variant == "broken" and a.code == "Invalid" and "num_attention_heads" in a.reason
        for a in plan.alternatives
    )


def test_a_dense_model_without_intermediate_size_is_refused_naming_it():
    config = qwen3_8b()
    del config["intermediate_size"]
    with pytest.raises(ConfigError, match="intermediate_size"):
        architecture_from_config(config)

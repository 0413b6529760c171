"""The ModelAdapter resource and spec.adapters: the rules Python and the API server share."""

import pytest
from pydantic import ValidationError

from memplace.api import AdapterSpec, ModelAdapter, ModelDeploymentSpec


def adapter(**kw):
    return {"name": "acme", "source": "hf://org/acme", "rank": 16, **kw}


def test_a_model_adapter_names_its_base_and_derives_its_readable_memory():
    ma = ModelAdapter.model_validate(
        {
            "metadata": {"name": "acme-v2", "namespace": "ml"},
            "spec": {"baseDeployment": "chat", "source": "hf://org/acme", "rank": 16},
            "status": {"phase": "Loaded", "memoryBytes": 27262976, "memory": "wrong"},
        }
    )
    assert ma.spec.base_deployment == "chat"
    assert ma.status.memory == "26Mi"


def test_all_linear_is_listed_alone():
    assert AdapterSpec.model_validate(adapter(targetModules=["all-linear"]))
    with pytest.raises(ValidationError, match="list it alone"):
        AdapterSpec.model_validate(adapter(targetModules=["all-linear", "q_proj"]))


def test_spec_adapter_names_are_unique_and_ranks_bounded():
    model = {"name": "m", "parameters": 8e9}
    with pytest.raises(ValidationError, match="duplicate names: acme"):
        ModelDeploymentSpec.model_validate({"model": model, "adapters": [adapter(), adapter()]})
    with pytest.raises(ValidationError):
        AdapterSpec.model_validate(adapter(rank=0))
    with pytest.raises(ValidationError):
        ModelAdapter.model_validate(
            {
                "metadata": {"name": "Bad Name"},
                "spec": {"baseDeployment": "chat", "source": "x", "rank": 8},
            }
        )

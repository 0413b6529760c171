"""The ScaledObject memplace renders for a scaled deployment, validated against KEDA's own CRD
schema (``tests/fixtures/keda``, with its source)."""

from __future__ import annotations

from pathlib import Path

import jsonschema
import pytest
import yaml

from memplace.api import ModelDeploymentSpec
from memplace.operator import keda
from memplace.planning import scaling

CRD = Path(__file__).parents[1] / "fixtures" / "keda" / "keda.sh_scaledobjects.yaml"
BODY = {
    "metadata": {"name": "chat", "namespace": "ml", "uid": "u-1"},
    "spec": {
        "model": {"name": "Qwen/Qwen3-8B", "parameters": 8e9},
        "runtime": {"engine": "vllm"},
        "scaling": {"demand": "Measured", "minReplicas": 0, "maxReplicas": 4,
                    "coldStart": "allowed", "idleAfterSeconds": 600},
    },
}
FIELDS = {"placement": {"replicas": 2}, "estimate": {"outputTokensPerSecondPerReplica": 300.0}}


def schema() -> dict:
    crd = yaml.safe_load(CRD.read_text())
    [version] = [v for v in crd["spec"]["versions"] if v["name"] == "v1alpha1"]
    return version["schema"]["openAPIV3Schema"]


def rendered(**kw) -> dict:
    policy = scaling.Policy.from_spec(ModelDeploymentSpec.model_validate(BODY["spec"]))
    return keda.scaled_object(BODY, "chat-ab12cd34", FIELDS, policy,
                              prometheus_url="http://prometheus.monitoring:9090", window="5m", **kw)


@pytest.mark.parametrize("wake", [None, 'sum(rate(gateway_requests_total{service="{name}"}[1m]))'])
def test_the_scaled_object_is_valid_against_kedas_published_schema(wake):
    jsonschema.validate(rendered(wake_query=wake), schema())


def test_the_scaled_object_scales_the_serving_deployment_inside_the_plan():
    so = rendered(wake_query='sum(rate(gateway_requests_total{namespace="{namespace}",'
                             'service="{name}"}[1m]))')
    spec = so["spec"]
    assert spec["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                      "name": "chat-ab12cd34"}
    assert (spec["minReplicaCount"], spec["maxReplicaCount"]) == (0, 4)
    assert spec["cooldownPeriod"] == 600
    demand, wake = spec["triggers"]
    assert demand["metadata"]["threshold"] == "210.000"  # 300 tok/s × targetUtilization 0.7
    assert 'pod=~"chat-ab12cd34-.*"' in demand["metadata"]["query"]
    assert "generation_tokens" in demand["metadata"]["query"]
    assert wake["metadata"]["activationThreshold"] == "0"
    assert 'namespace="ml",service="chat"' in wake["metadata"]["query"]
    assert so["metadata"]["ownerReferences"][0]["uid"] == "u-1"


def test_a_schema_violation_is_caught():
    so = rendered()
    so["spec"]["triggers"] = []  # KEDA requires at least one trigger
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(so, schema())

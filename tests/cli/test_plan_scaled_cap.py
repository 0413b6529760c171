"""``memplace plan`` caps a scaled deployment at ``spec.scaling.maxReplicas`` as the operator
does (``planning.scaled_plan``): the cheapest feasible placement at exactly maxReplicas, and how
many replicas the demand needs."""

from __future__ import annotations

import json

import yaml
from test_plan_command import NODES

from memplace.api import ModelDeploymentSpec
from memplace.cli import main
from memplace.planning import scaling
from memplace.planning.inventory import build_cluster, node_from_manifest
from memplace.planning.plan import DeploymentRequest
from memplace.planning.scaled_plan import plan_scaled


def body(name: str, scaling_spec: dict, tokens: float = 100.0) -> dict:
    return {
        "apiVersion": "memplace.io/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": name, "namespace": "ml"},
        "spec": {
            "model": {"name": "m", "parameters": 8e9},
            "workload": {"contextTokens": 4096, "concurrency": 4, "outputTokensPerSecond": tokens},
            "placement": {"tiers": ["gpu"]},
            "scaling": scaling_spec,
        },
    }


def planned(tmp_path, capsys, *docs: dict) -> dict[str, dict]:
    (tmp_path / "nodes.yaml").write_text(NODES)
    (tmp_path / "md.yaml").write_text("---\n".join(json.dumps(d) for d in docs))
    assert main(["plan", str(tmp_path), "-o", "json"]) == 0
    return {e["name"]: e for e in json.loads(capsys.readouterr().out)}


def test_max_replicas_caps_the_plan_and_says_what_the_demand_needs(tmp_path, capsys):
    # 100 tok/s ÷ 0.7 headroom on L4s of ~54 tok/s each: 3 replicas without a cap.
    free = planned(tmp_path, capsys, body("chat", {"demand": "Static"}))["chat"]
    assert free["placement"]["replicas"] == 3
    chat = planned(tmp_path, capsys, body("chat", {"demand": "Static", "maxReplicas": 2}))["chat"]
    assert chat["phase"] == "Placed"
    assert chat["placement"]["replicas"] == 2
    assert chat["demand"] == {"replicasWanted": 3}
    assert "the demand needs 3 replicas, spec.scaling.maxReplicas is 2" in chat["message"]


def test_a_demand_the_cluster_cannot_hold_runs_max_replicas_as_in_the_operator(tmp_path, capsys):
    # 300 tok/s wants 8 one-GPU replicas; the node has 4 GPUs: Unschedulable without a cap.
    free = planned(tmp_path, capsys, body("chat", {"demand": "Static"}, tokens=300))["chat"]
    assert free["phase"] == "Unschedulable"
    doc = body("chat", {"demand": "Static", "maxReplicas": 2}, tokens=300)
    chat = planned(tmp_path, capsys, doc)["chat"]
    assert (chat["phase"], chat["placement"]["replicas"]) == ("Placed", 2)
    assert chat["demand"]["replicasWanted"] == 8


def test_the_cli_plan_is_the_operators_plan_for_a_capped_deployment(tmp_path, capsys):
    doc = body("chat", {"demand": "Static", "maxReplicas": 2})
    chat = planned(tmp_path, capsys, doc)["chat"]
    spec = ModelDeploymentSpec.model_validate(doc["spec"])
    policy = scaling.Policy.from_spec(spec)
    nodes = [node_from_manifest(n) for n in yaml.safe_load(NODES)["items"]]
    cluster = build_cluster(pools=[], nodes=nodes, reports=[], now=None)
    operator = plan_scaled(
        DeploymentRequest("ml", "chat", spec), cluster, policy, scaling.static_decision(policy)
    )
    assert operator.plan.status_fields()["placement"] == chat["placement"]
    assert operator.needed == chat["demand"]["replicasWanted"]


def test_under_the_cap_nothing_changes(tmp_path, capsys):
    chat = planned(tmp_path, capsys, body("chat", {"demand": "Static", "maxReplicas": 50}))["chat"]
    assert chat["placement"]["replicas"] == 3
    assert "demand" not in chat
    assert "the demand needs" not in chat["message"]

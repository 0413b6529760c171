"""`memplace plan` with malformed configs: each bad one Invalid naming its field, the rest
planned, no traceback (issue 15's malformed objects)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from memplace.cli import main

CONFIGS = Path(__file__).parent.parent / "fixtures" / "configs"
NODES = """
apiVersion: v1
kind: Node
metadata:
  name: a100-0
  labels:
    cloud.google.com/gke-nodepool: a100
    node.kubernetes.io/instance-type: a2-ultragpu-8g
    nvidia.com/gpu.product: NVIDIA-A100-SXM4-80GB
status:
  allocatable: {cpu: "94", memory: 1300Gi, nvidia.com/gpu: "8"}
"""
BAD = {
    "heads-0": {"num_attention_heads": 0},
    "kv-0": {"num_key_value_heads": 0},
    "kv-minus-8": {"num_key_value_heads": -8},
    "layers-0": {"num_hidden_layers": 0},
    "layers-minus-4": {"num_hidden_layers": -4},
    "layers-minus-5": {"num_hidden_layers": -5},
    "layers-1e18": {"num_hidden_layers": 1e18},
    "hidden-0": {"hidden_size": 0},
    "hidden-minus-1024": {"hidden_size": -1024},
    "hidden-1e300": {"hidden_size": 1e300},
    "vocab-minus-1": {"vocab_size": -1},
}


def deployment(name: str, model: dict, context: int = 8192) -> dict:
    return {
        "apiVersion": "memplace.io/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": name, "namespace": "ml"},
        "spec": {"model": model, "workload": {"contextTokens": context, "concurrency": 4}},
    }


@pytest.fixture
def files(tmp_path):
    config = json.loads((CONFIGS / "qwen3-8b.json").read_text())
    docs = [deployment(name, {"name": "m", "config": config | bad}) for name, bad in BAD.items()]
    docs.append(deployment("params-1e308", {"name": "m", "parameters": 1e308}))
    docs.append(deployment("context-1e12", {"name": "m", "config": config}, context=10**12))
    docs.append(deployment("good", {"name": "m", "config": config}))
    (tmp_path / "nodes.yaml").write_text(NODES)
    (tmp_path / "deployments.yaml").write_text(yaml.safe_dump_all(docs))
    return tmp_path


def test_each_bad_config_is_invalid_naming_its_field_and_the_good_one_is_placed(files, capsys):
    main(["plan", str(files), "-o", "json"])
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    out = {entry["name"]: entry for entry in json.loads(captured.out)}
    assert out["good"]["phase"] == "Placed"
    for name, bad in BAD.items():
        (field,) = bad
        assert out[name]["phase"] == "Invalid", name
        assert field in out[name]["message"], out[name]["message"]
    assert out["params-1e308"]["phase"] == "Invalid"
    assert "parameters" in out["params-1e308"]["message"]
    assert out["context-1e12"]["phase"] == "Invalid"
    assert "contextTokens" in out["context-1e12"]["message"]


def test_fail_on_invalid_exits_1_after_printing_all(files, capsys):
    assert main(["plan", str(files), "-o", "json", "--fail-on", "invalid"]) == 1
    assert len(json.loads(capsys.readouterr().out)) == len(BAD) + 3

"""``memplace plan`` with LoRA adapters: the saving column, and ``-o manifests`` printing what
the operator would apply (checked with kubernetes-validate)."""

import json
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from memplace.cli import main

KUBE_VERSION = "1.33.0"
LLAMA = json.loads(
    (Path(__file__).parents[1] / "fixtures" / "configs" / "llama-3.1-8b.json").read_text()
)
NODES = """
apiVersion: v1
kind: Node
metadata:
  name: l4-0
  labels:
    cloud.google.com/gke-nodepool: l4
    node.kubernetes.io/instance-type: g2-standard-48
    nvidia.com/gpu.product: NVIDIA-L4
status:
  allocatable: {cpu: "47", memory: 180Gi, nvidia.com/gpu: "4"}
"""


def deployment(name: str, engine: str, adapters: list[dict]) -> dict:
    return {
        "apiVersion": "memplace.io/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": name, "namespace": "ml"},
        "spec": {
            "model": {"name": "meta-llama/Llama-3.1-8B-Instruct", "config": LLAMA},
            "workload": {"contextTokens": 4096, "concurrency": 4, "outputTokensPerSecond": 50},
            "placement": {"tiers": ["gpu"]},
            "runtime": {"engine": engine},
            "adapters": adapters,
        },
    }


@pytest.fixture
def files(tmp_path):
    (tmp_path / "nodes.yaml").write_text(NODES)
    docs = [
        deployment("tenants", "vllm", [
            {"name": "acme", "source": "hf://org/acme", "rank": 16, "outputTokensPerSecond": 20},
        ]),
        deployment("tgi-tenants", "tgi", [{"name": "acme", "source": "hf://org/acme", "rank": 8}]),
        deployment("gguf", "llamacpp", [{"name": "a", "source": "/models/a.gguf", "rank": 8}]),
        {
            "apiVersion": "memplace.io/v1alpha1",
            "kind": "ModelAdapter",
            "metadata": {"name": "globex", "namespace": "ml"},
            "spec": {"baseDeployment": "tenants", "source": "hf://org/globex", "rank": 32},
        },
    ]
    (tmp_path / "deployments.yaml").write_text(yaml.safe_dump_all(docs))
    return tmp_path


def test_manifests_are_what_the_operator_would_apply_and_valid_kubernetes(files, capsys):
    assert main(["plan", str(files), "-o", "manifests"]) == 0
    out = capsys.readouterr().out
    assert "&id" not in out, "no YAML anchors"
    objects = list(yaml.safe_load_all(out))
    assert sorted((o["kind"], o["metadata"]["name"]) for o in objects) == [
        ("Deployment", "gguf"), ("Deployment", "tenants"), ("Deployment", "tgi-tenants"),
        ("Service", "gguf"), ("Service", "tenants"), ("Service", "tgi-tenants"),
    ]
    for manifest in objects:
        kubernetes_validate.validate(manifest, KUBE_VERSION, strict=True)
        assert "ownerReferences" not in manifest["metadata"]  # no uid offline
    by_name = {o["metadata"]["name"]: o for o in objects if o["kind"] == "Deployment"}

    def container(name):
        return by_name[name]["spec"]["template"]["spec"]["containers"][0]

    args = container("tenants")["args"]
    assert args[args.index("--max-lora-rank") + 1] == "32"
    assert args[args.index("--max-loras") + 1] == "2"
    at = args.index("--lora-modules")
    assert args[at + 1 : at + 3] == ["acme=org/acme", "globex=org/globex"]
    assert {"name": "LORA_ADAPTERS", "value": "acme=org/acme"} in container("tgi-tenants")["env"]
    gguf = container("gguf")["args"]
    assert gguf[gguf.index("--lora") + 1] == "/models/a.gguf"
    assert "--lora-init-without-apply" in gguf


def test_json_lists_each_adapter_and_the_cost_of_one_deployment_per_fine_tune(files, capsys):
    main(["plan", str(files), "-o", "json"])
    tenants = next(e for e in json.loads(capsys.readouterr().out) if e["name"] == "tenants")
    assert [(a["name"], a["origin"], a["state"]) for a in tenants["adapters"]] == [
        ("acme", "spec", "Loaded"), ("globex", "ModelAdapter", "Loaded")]
    assert tenants["cost"]["separatePerHour"] > tenants["cost"]["perHour"]
    assert tenants["estimate"]["adapterBytes"] > 0


def test_the_table_shows_the_lora_saving_and_each_adapter(files, capsys):
    main(["plan", str(files)])
    out = capsys.readouterr().out
    assert "LORA SAVING" in out
    assert "2 FT: $" in out
    assert "adapter globex (rank 32, 160Mi): Loaded" in out


def test_a_model_adapter_whose_base_is_not_in_the_inputs_is_reported_orphaned(files, capsys):
    (files / "orphans.yaml").write_text(yaml.safe_dump_all([
        {
            "apiVersion": "memplace.io/v1alpha1",
            "kind": "ModelAdapter",
            "metadata": {"name": name, "namespace": "ml"},
            "spec": {"baseDeployment": "gone", "source": f"hf://org/{name}", "rank": 8},
        }
        for name in ("lost-b", "lost-a")
    ]))  # fmt: skip
    assert main(["plan", str(files), "-o", "json"]) == 0
    captured = capsys.readouterr()
    entries = json.loads(captured.out)
    orphans = [e for e in entries if e.get("kind") == "ModelAdapter"]
    assert [(o["name"], o["phase"], o["reason"], o["baseDeployment"]) for o in orphans] == [
        ("lost-a", "Orphaned", "BaseNotFound", "gone"),
        ("lost-b", "Orphaned", "BaseNotFound", "gone"),
    ]
    assert "ml/gone" in orphans[0]["message"]
    # the deployments are all still there, and globex (whose base is an input) is no orphan
    assert {e["name"] for e in entries if "kind" not in e} == {"tenants", "tgi-tenants", "gguf"}
    lines = [line for line in captured.err.splitlines() if "Orphaned" in line]
    assert len(lines) == 2 and "ModelAdapter ml/lost-a Orphaned (BaseNotFound)" in lines[0]
    # the table says so on stderr too, and -q does not hide it
    assert main(["plan", str(files), "-q"]) == 0
    assert captured.err.count("Orphaned") == capsys.readouterr().err.count("Orphaned")


def test_the_examples_serve_a_model_adapter_beside_chat(capsys):
    examples = Path(__file__).parents[2] / "examples"
    assert main(["plan", str(examples)]) == 0
    out = capsys.readouterr().out
    table = out.split("\n\n", 1)[0].splitlines()
    assert "LORA SAVING" in table[0]
    (chat,) = [line for line in table if line.startswith("ml/chat ")]
    assert "1 FT: $" in chat
    assert "adapter chat-lora (rank 64, 333Mi): Loaded" in out

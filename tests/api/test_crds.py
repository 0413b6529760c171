"""The committed CRDs are exactly what the models generate, and valid Kubernetes CRDs."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes_validate import validate

from memplace.api import crds

ROOT = Path(__file__).resolve().parents[2]
FILES = sorted(crds.crd_documents())
KUBERNETES = "1.33.0"


def load(name: str, directory: str = "crds") -> dict[str, Any]:
    return yaml.safe_load((ROOT / directory / name).read_text(encoding="utf-8"))


def schema_of(name: str) -> dict[str, Any]:
    (version,) = load(name)["spec"]["versions"]
    return version["schema"]["openAPIV3Schema"]


def nodes(schema: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every schema node with its dotted path (`[]` for list items)."""
    yield path, schema
    for key, child in schema.get("properties", {}).items():
        yield from nodes(child, f"{path}.{key}")
    if isinstance(schema.get("items"), dict):
        yield from nodes(schema["items"], f"{path}[]")
    if isinstance(schema.get("additionalProperties"), dict):
        yield from nodes(schema["additionalProperties"], f"{path}{{}}")


def test_there_is_one_crd_per_kind() -> None:
    assert FILES == [
        "modeladapters.memplace.io.yaml",
        "modeldeployments.memplace.io.yaml",
        "nodememoryreports.memplace.io.yaml",
        "performanceprofiles.memplace.io.yaml",
        "placementpools.memplace.io.yaml",
    ]


def test_the_committed_crds_are_what_the_models_generate(tmp_path: Path) -> None:
    drifted = crds.check(ROOT)
    assert not drifted, (
        "CRDs drifted from the models in operator/memplace/api: run `make crds` "
        f"(python -m memplace.api.crds) and commit the result: {[str(p) for p in drifted]}"
    )
    crds.write(tmp_path)
    for directory in crds.CRD_DIRS:
        for name in FILES:
            assert (tmp_path / directory / name).read_bytes() == (ROOT / "crds" / name).read_bytes()


def test_check_reports_a_drifted_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    crds.write(tmp_path)
    assert crds.main(["--check", "--root", str(tmp_path)]) == 0
    (tmp_path / "charts/memplace/crds" / FILES[0]).write_text("edited\n", encoding="utf-8")
    assert crds.main(["--check", "--root", str(tmp_path)]) == 1
    assert FILES[0] in capsys.readouterr().err


def test_generation_is_deterministic() -> None:
    assert crds.crd_documents() == crds.crd_documents()


@pytest.mark.parametrize("name", FILES)
def test_the_chart_carries_identical_copies(name: str) -> None:
    chart = ROOT / "charts/memplace/crds" / name
    assert chart.read_bytes() == (ROOT / "crds" / name).read_bytes()


@pytest.mark.parametrize("name", FILES)
def test_each_crd_is_a_valid_apiextensions_v1_crd(name: str) -> None:
    assert validate(load(name), KUBERNETES, strict=True)


@pytest.mark.parametrize("name", FILES)
def test_each_schema_is_structural(name: str) -> None:
    text = (ROOT / "crds" / name).read_text(encoding="utf-8")
    assert "$ref" not in text and "$defs" not in text
    assert "&id" not in text  # no YAML anchors: each node stands alone
    for path, node in nodes(schema_of(name)):
        assert "type" in node, f"{path} has no type"
        assert "anyOf" not in node and "oneOf" not in node and "allOf" not in node, path
        assert "title" not in node, path
        assert "const" not in node, path
        assert node.get("uniqueItems") is not True, path
        assert not ("properties" in node and "additionalProperties" in node), path
        if node["type"] == "object" and path.count(".") > 1:
            assert (
                "properties" in node
                or "additionalProperties" in node
                or node.get("x-kubernetes-preserve-unknown-fields") is True
            ), f"{path} is an object with no fields and does not preserve unknown ones"
        if "exclusiveMinimum" in node:
            assert node["exclusiveMinimum"] is True and "minimum" in node, path
        if "default" in node:
            assert node["default"] is not None, path


@pytest.mark.parametrize("name", FILES)
def test_every_field_is_documented_for_kubectl_explain(name: str) -> None:
    for path, node in nodes(schema_of(name)):
        if path.startswith((".spec", ".status")) and not path.endswith(("[]", "{}")):
            assert node.get("description"), f"{path} has no description"


def test_the_slo_fields_explain_themselves() -> None:
    slo = schema_of("modeldeployments.memplace.io.yaml")["properties"]["spec"]["properties"]["slo"]
    assert set(slo["properties"]) == {"timeToFirstTokenMs", "timePerOutputTokenMs"}
    for field in slo["properties"].values():
        assert "milliseconds" in field["description"]
        assert field["type"] == "number" and field["nullable"] is True


@pytest.mark.parametrize(
    ("name", "kind", "scope", "short_name"),
    [
        ("modeldeployments.memplace.io.yaml", "ModelDeployment", "Namespaced", "mdep"),
        ("placementpools.memplace.io.yaml", "PlacementPool", "Cluster", "mpool"),
        ("nodememoryreports.memplace.io.yaml", "NodeMemoryReport", "Cluster", "nmr"),
        ("performanceprofiles.memplace.io.yaml", "PerformanceProfile", "Cluster", "mperf"),
    ],
)
def test_names_scope_and_status_subresource(
    name: str, kind: str, scope: str, short_name: str
) -> None:
    crd = load(name)
    assert crd["metadata"]["name"] == name.removesuffix(".yaml")
    assert crd["spec"]["names"]["kind"] == kind
    assert crd["spec"]["names"]["shortNames"] == [short_name]
    assert crd["spec"]["names"]["categories"] == ["memplace"]
    assert crd["spec"]["scope"] == scope
    (version,) = crd["spec"]["versions"]
    assert version["name"] == "v1alpha1" and version["served"] and version["storage"]
    assert version["subresources"] == {"status": {}}
    assert version["schema"]["openAPIV3Schema"]["required"] == ["spec"]


@pytest.mark.parametrize(
    ("name", "columns"),
    [
        (
            "modeldeployments.memplace.io.yaml",
            {
                "Phase": ".status.phase",
                "Precision": ".status.placement.precision",
                "Tier": ".status.placement.tier",
                "Pool": ".status.placement.pool",
                "GPUs": ".status.placement.gpusPerReplica",
                "Replicas": ".status.placement.replicas",
                "VRAM/GPU": ".status.estimate.totalPerGpu",
                "$/h": ".status.cost.perHour",
                "TPOT-p95": ".status.measured.timePerOutputTokenMs.p95",
                "SLOMet": '.status.conditions[?(@.type=="SLOMet")].status',
                "Age": ".metadata.creationTimestamp",
            },
        ),
        (
            "placementpools.memplace.io.yaml",
            {
                "Nodes": ".status.nodes",
                "GPUs": ".status.gpus",
                "$/node-h": ".status.pricePerNodeHour",
                "Sharing": ".spec.sharing",
                "Age": ".metadata.creationTimestamp",
            },
        ),
        (
            "nodememoryreports.memplace.io.yaml",
            {
                "GPUs": ".status.gpuCount",
                "Free": ".status.memoryFree",
                "Age": ".metadata.creationTimestamp",
            },
        ),
        (
            "performanceprofiles.memplace.io.yaml",
            {
                "GPU": ".spec.gpuModel",
                "Decode": ".status.decode.factor",
                "Samples": ".status.decode.samples",
                "Age": ".metadata.creationTimestamp",
            },
        ),
    ],
)
def test_printer_columns_point_at_fields_that_exist(name: str, columns: dict[str, str]) -> None:
    (version,) = load(name)["spec"]["versions"]
    printed = {c["name"]: c["jsonPath"] for c in version["additionalPrinterColumns"]}
    assert columns.items() <= printed.items()
    schema = version["schema"]["openAPIV3Schema"]
    for column in version["additionalPrinterColumns"]:
        node = schema
        if column["jsonPath"].startswith(".metadata"):
            continue
        # A filter such as ``conditions[?(@.type=="SLOMet")]`` (as cert-manager's columns use)
        # selects items of a list: walk into the list's items.
        path = re.sub(r"\[\?\(@\.\w+==\"\w+\"\)\]", ".[]", column["jsonPath"])
        for part in path.lstrip(".").split("."):
            node = node["items"] if part == "[]" else node["properties"][part]
        expected = {"date": "string", "number": "number", "integer": "integer"}
        assert node["type"] == expected.get(column["type"], column["type"]), column


def test_the_cel_rules_are_present() -> None:
    spec = schema_of("modeldeployments.memplace.io.yaml")["properties"]["spec"]["properties"]
    model_rules = spec["model"]["x-kubernetes-validations"]
    assert model_rules == [
        {
            "message": "the model needs at least one of config, configMapRef, source or parameters"
            " so that it can be sized",
            "rule": "has(self.config) || has(self.configMapRef) || has(self.source)"
            " || has(self.parameters)",
        }
    ]
    assert spec["model"]["properties"]["variants"]["items"]["x-kubernetes-validations"]
    workload_rules = [r["rule"] for r in spec["workload"]["x-kubernetes-validations"]]
    assert any("self.minReplicas <= self.maxReplicas" in r for r in workload_rules)
    assert any("self.promptTokens < self.contextTokens" in r for r in workload_rules)


def test_a_profile_key_cannot_change_and_its_window_is_bounded() -> None:
    root = schema_of("performanceprofiles.memplace.io.yaml")
    spec = root["properties"]["spec"]
    assert [r["rule"] for r in spec["x-kubernetes-validations"]] == ["self == oldSelf"]
    assert spec["properties"]["architecture"]["pattern"] == "^[0-9a-f]{12}$"
    decode = root["properties"]["status"]["properties"]["decode"]
    assert decode["properties"]["recentRatios"]["maxItems"] == 15
    assert "size(self.recentRatios) <= self.samples" in decode["x-kubernetes-validations"][0][
        "rule"
    ]
    assert any("self.metadata.name.matches" in r["rule"] for r in root["x-kubernetes-validations"])


def test_free_form_config_and_maps() -> None:
    spec = schema_of("modeldeployments.memplace.io.yaml")["properties"]["spec"]["properties"]
    config = spec["model"]["properties"]["config"]
    assert config["type"] == "object" and config["x-kubernetes-preserve-unknown-fields"] is True
    pool = schema_of("placementpools.memplace.io.yaml")["properties"]["spec"]
    selector = pool["properties"]["nodeSelector"]
    assert selector["additionalProperties"] == {"type": "string"}
    assert selector["minProperties"] == 1
    assert "nodeSelector" in pool["required"]


def test_defaults_reach_the_api_server() -> None:
    spec = schema_of("modeldeployments.memplace.io.yaml")["properties"]["spec"]["properties"]
    assert spec["workload"]["default"] == {}
    assert spec["workload"]["properties"]["minReplicas"]["default"] == 1
    assert spec["placement"]["properties"]["tiers"]["default"] == ["gpu", "offload", "cpu"]
    assert spec["runtime"]["properties"]["port"]["default"] == 8000
    assert spec["model"]["properties"]["configMapRef"]["properties"]["key"]["default"] == (
        "config.json"
    )


def test_conditions_are_a_map_keyed_by_type() -> None:
    for name in FILES:
        status = schema_of(name)["properties"]["status"]
        if "conditions" in status["properties"]:
            conditions = status["properties"]["conditions"]
            assert conditions["x-kubernetes-list-type"] == "map"
            assert conditions["x-kubernetes-list-map-keys"] == ["type"]
            assert "type" in conditions["items"]["required"]

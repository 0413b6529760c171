"""What `kubectl` shows of memplace: printer columns that resolve on a real status, `-o wide`,
the `memplace` category and `kubectl explain` text.

The CRD's additionalPrinterColumns are evaluated here on the status the planner writes for the
example deployments (`memplace plan examples/ -o json` is the same ``Plan.status_fields()``
the operator patches), the way the API server's table printer evaluates them: a jsonPath that
names no field prints an empty cell in `kubectl get mdep`, and fails here instead.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from memplace.cli import main

ROOT = Path(__file__).resolve().parents[1]
CRDS = sorted((ROOT / "crds").glob("*.yaml"))
MDEP = yaml.safe_load((ROOT / "crds" / "modeldeployments.memplace.io.yaml").read_text())
(VERSION,) = MDEP["spec"]["versions"]
COLUMNS = VERSION["additionalPrinterColumns"]
SCHEMA = VERSION["schema"]["openAPIV3Schema"]
# Columns that are empty on a planned status, and why.
EMPTY_UNTIL = {
    ".status.placement.variant": "null when the model itself is served, not a variant",
    ".metadata.creationTimestamp": "the API server sets it",
}
# Filled from the running pods, or set by the operator's status module, never by the planner.
LATER = {".status.measured.": "measured on the running pods, not planned",
         ".status.conditions": "conditions come from the operator's status module"}  # fmt: skip
TYPES = {"integer": (int,), "number": (int, float), "string": (str,), "boolean": (bool,)}


STEP = re.compile(r'\.([A-Za-z_$][\w$/-]*)|\[\?\(@\.(\w+)=="([^"]*)"\)\]')


def steps(path: str) -> list[tuple[str, str | None, str | None]]:
    """The JSONPath forms printer columns use: ``.a.b`` and ``[?(@.type=="X")]`` filters."""
    found = [(m[1], m[2], m[3]) for m in STEP.finditer(path)]
    assert "".join(m[0] for m in STEP.finditer(path)) == path, f"unsupported JSONPath: {path}"
    return found


def resolve(obj: Any, path: str) -> Any:
    for key, field, wanted in steps(path):
        if key:
            if not isinstance(obj, dict) or key not in obj:
                return None
            obj = obj[key]
        else:
            matches = [x for x in obj or [] if isinstance(x, dict) and x.get(field) == wanted]
            if not matches:
                return None
            obj = matches[0]
    return obj


def schema_at(path: str) -> dict[str, Any] | None:
    node: dict[str, Any] | None = SCHEMA
    for key, field, _ in steps(path):
        if key == "metadata" and node is SCHEMA:
            return {"type": "object"}  # ObjectMeta: the API server's, not in the CRD schema
        if key:
            node = (node or {}).get("properties", {}).get(key)
        else:
            node = (node or {}).get("items")
            if node is not None and field not in node.get("properties", {}):
                return None
        if node is None:
            return None
    return node


@pytest.fixture(scope="module")
def planned(tmp_path_factory) -> list[dict[str, Any]]:
    """The examples as the cluster would hold them once the operator wrote their status."""
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["plan", str(ROOT / "examples"), "-o", "json"]) == 0
    return [
        {"metadata": {"namespace": p.pop("namespace"), "name": p.pop("name")}, "status": p}
        for p in json.loads(out.getvalue())
    ]


@pytest.mark.parametrize("column", COLUMNS, ids=[c["name"] for c in COLUMNS])
def test_each_printer_column_names_a_field_of_the_schema_with_its_type(column):
    node = schema_at(column["jsonPath"])
    assert node is not None, f"{column['jsonPath']} is not in the ModelDeployment schema"
    if column["type"] in TYPES and not column["jsonPath"].startswith(".metadata"):
        expected = {"integer": {"integer"}, "number": {"number", "integer"}}.get(
            column["type"], {column["type"]}
        )
        assert node.get("type") in expected, (column, node.get("type"))


@pytest.mark.parametrize("column", COLUMNS, ids=[c["name"] for c in COLUMNS])
def test_each_printer_column_shows_a_value_for_a_placed_deployment(planned, column):
    path = column["jsonPath"]
    if path in EMPTY_UNTIL:
        pytest.skip(EMPTY_UNTIL[path])
    for prefix, why in LATER.items():
        if path.startswith(prefix):
            pytest.skip(why)
    placed = [obj for obj in planned if obj["status"]["phase"] == "Placed"]
    assert placed
    for obj in placed:
        value = resolve(obj, path)
        assert value is not None, f"{column['name']} ({path}) is empty for {obj['metadata']}"
        assert isinstance(value, TYPES.get(column["type"], (object,))), (column, value)


def test_an_unschedulable_deployment_still_shows_its_phase_and_message(planned):
    (frontier,) = [o for o in planned if o["metadata"]["name"] == "frontier"]
    shown = {c["name"]: resolve(frontier, c["jsonPath"]) for c in COLUMNS}
    assert shown["Phase"] == "Unschedulable" and shown["Message"]


def test_kubectl_get_shows_the_decision_and_wide_adds_the_detail():
    default = [c["name"] for c in COLUMNS if not c.get("priority")]
    wide = [c["name"] for c in COLUMNS if c.get("priority")]
    assert {"Phase", "Precision", "Tier", "Pool", "GPUs", "Replicas", "$/h", "Age"} <= set(default)
    assert {"KV", "Variant", "Message"} <= set(wide)


def test_the_memplace_category_lists_every_memplace_kind():
    kinds = set()
    for path in CRDS:
        crd = yaml.safe_load(path.read_text())
        assert crd["spec"]["group"] == "memplace.io"
        assert "memplace" in crd["spec"]["names"].get("categories", []), path.name
        kinds.add(crd["spec"]["names"]["kind"])
    assert kinds == {
        "ModelDeployment",
        "PlacementPool",
        "NodeMemoryReport",
        "PerformanceProfile",
        "ModelAdapter",
    }


def undescribed(schema: dict[str, Any], path: str = "") -> list[str]:
    missing = []
    for key, child in (schema.get("properties") or {}).items():
        where = f"{path}.{key}"
        if where != ".metadata" and not str(child.get("description", "")).strip():
            missing.append(where)
        missing += undescribed(child, where)
    for key in ("items", "additionalProperties"):
        if isinstance(schema.get(key), dict):
            missing += undescribed(schema[key], f"{path}[]")
    return missing


@pytest.mark.parametrize("path", CRDS, ids=[p.name for p in CRDS])
def test_kubectl_explain_has_text_for_every_field(path):
    crd = yaml.safe_load(path.read_text())
    (version,) = crd["spec"]["versions"]
    assert undescribed(version["schema"]["openAPIV3Schema"]) == []


def test_explain_spec_slo_says_unit_and_conditions_of_each_target():
    slo = SCHEMA["properties"]["spec"]["properties"]["slo"]
    for name, field in slo["properties"].items():
        text = field["description"]
        assert "milliseconds" in text, name
        assert "spec.workload." in text, name  # the prompt size or concurrency it holds at

"""Generate the CustomResourceDefinitions from the pydantic models.

    python -m memplace.api.crds            # write crds/ and charts/memplace/crds/
    python -m memplace.api.crds --check    # exit 1 and list the files that drifted

pydantic writes JSON Schema; Kubernetes wants a *structural* OpenAPI v3 schema. The conversion:

- `$ref` / `$defs` are inlined (the API server allows no references);
- `anyOf: [X, {type: null}]` (an `Optional`) becomes X with `nullable: true`;
- `const` becomes a one-value `enum`; `title` and `default: null` are dropped;
- `exclusiveMinimum: n` becomes `minimum: n` + `exclusiveMinimum: true` (`minimum: n+1` for
  integers); `additionalProperties: false` (pydantic's `extra="forbid"`) is dropped: the API
  server prunes unknown fields instead;
- free-form objects (`dict[str, Any]`) get `x-kubernetes-preserve-unknown-fields: true`;
  `dict[str, str]` keeps `additionalProperties: {type: string}`;
- descriptions (the models' attribute docstrings) are unwrapped into paragraphs.

Keys of each schema node come out in one fixed order, so the YAML is stable byte for byte.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ._base import ApiModel
from ._modeladapter import (
    MODEL_ADAPTER,
    MODEL_ADAPTER_NAME,
    ModelAdapterSpec,
    ModelAdapterStatus,
)
from ._modeldeployment import (
    MODEL_DEPLOYMENT,
    MODEL_DEPLOYMENT_NAME,
    ModelDeploymentSpec,
    ModelDeploymentStatus,
)
from ._nodememoryreport import NODE_MEMORY_REPORT, NodeMemoryReportSpec, NodeMemoryReportStatus
from ._performanceprofile import (
    PERFORMANCE_PROFILE,
    PERFORMANCE_PROFILE_NAME,
    PerformanceProfileSpec,
    PerformanceProfileStatus,
)
from ._placementpool import (
    PLACEMENT_POOL,
    PLACEMENT_POOL_NAME,
    PlacementPoolSpec,
    PlacementPoolStatus,
)
from ._resource import NameRule, ResourceInfo

__all__ = [
    "CRD_DIRS",
    "RESOURCES",
    "CrdSource",
    "PrinterColumn",
    "build_crd",
    "check",
    "crd_documents",
    "main",
    "render",
    "structural",
    "write",
]

CRD_DIRS: tuple[str, ...] = ("crds", "charts/memplace/crds")
"""Where the generated files go, relative to the repository root; the copies are identical."""

HEADER = (
    "# Generated from operator/memplace/api by `make crds` (python -m memplace.api.crds).\n"
    "# Do not edit: change the pydantic models and regenerate.\n"
)

_REPO_ROOT = Path(__file__).resolve().parents[3]

# The order keys of a schema node are written in; anything else follows, sorted.
_KEY_ORDER = (
    "description",
    "type",
    "format",
    "enum",
    "default",
    "minimum",
    "exclusiveMinimum",
    "maximum",
    "exclusiveMaximum",
    "minLength",
    "maxLength",
    "pattern",
    "minItems",
    "maxItems",
    "minProperties",
    "maxProperties",
    "nullable",
    "required",
    "items",
    "properties",
    "additionalProperties",
    "x-kubernetes-preserve-unknown-fields",
    "x-kubernetes-list-type",
    "x-kubernetes-list-map-keys",
    "x-kubernetes-map-type",
    "x-kubernetes-validations",
)
_DROPPED = {"title", "$defs", "examples"}


@dataclass(frozen=True)
class PrinterColumn:
    """One `additionalPrinterColumns` entry: a column of `kubectl get`."""

    name: str
    type: str
    json_path: str
    description: str
    priority: int = 0

    def to_crd(self) -> dict[str, Any]:
        column: dict[str, Any] = {
            "name": self.name,
            "type": self.type,
            "jsonPath": self.json_path,
            "description": self.description,
        }
        if self.priority:
            column["priority"] = self.priority
        return column


_AGE = PrinterColumn("Age", "date", ".metadata.creationTimestamp", "Time since creation.")


@dataclass(frozen=True)
class CrdSource:
    """What one CRD is generated from."""

    resource: ResourceInfo
    spec: type[ApiModel]
    status: type[ApiModel]
    columns: tuple[PrinterColumn, ...]
    description: str
    name_rule: NameRule | None = None
    """A rule on metadata.name, emitted as a CEL rule at the schema's root."""


RESOURCES: tuple[CrdSource, ...] = (
    CrdSource(
        resource=MODEL_DEPLOYMENT,
        spec=ModelDeploymentSpec,
        status=ModelDeploymentStatus,
        name_rule=MODEL_DEPLOYMENT_NAME,
        description="A model to serve: memplace chooses precision, tier, pool and replicas, "
        "cheapest first, and explains the choice in status.",
        columns=(
            PrinterColumn("Phase", "string", ".status.phase", "Where the deployment is."),
            PrinterColumn(
                "Precision", "string", ".status.placement.precision", "Weight precision."
            ),
            PrinterColumn("Tier", "string", ".status.placement.tier", "Where weights live."),
            PrinterColumn("Heat", "string", ".status.tier", "hot, warm or cold, by traffic."),
            PrinterColumn("Pool", "string", ".status.placement.pool", "The PlacementPool."),
            PrinterColumn(
                "GPUs", "integer", ".status.placement.gpusPerReplica", "GPUs per replica."
            ),
            PrinterColumn("Replicas", "integer", ".status.placement.replicas", "Replicas."),
            PrinterColumn(
                "VRAM/GPU",
                "string",
                ".status.estimate.totalPerGpu",
                "Estimated memory per GPU.",
            ),
            PrinterColumn("$/h", "number", ".status.cost.perHour", "Cost per hour (USD)."),
            PrinterColumn(
                "TPOT-p95",
                "number",
                ".status.measured.timePerOutputTokenMs.p95",
                "Measured p95 time per output token (ms).",
            ),
            PrinterColumn(
                "SLOMet",
                "string",
                '.status.conditions[?(@.type=="SLOMet")].status',
                "Whether the measured latency meets the SLO.",
            ),
            PrinterColumn(
                "KV", "string", ".status.placement.kvCacheDtype", "KV-cache type.", priority=1
            ),
            PrinterColumn(
                "Variant", "string", ".status.placement.variant", "Variant served.", priority=1
            ),
            PrinterColumn("Message", "string", ".status.message", "Summary.", priority=1),
            _AGE,
        ),
    ),
    CrdSource(
        resource=PLACEMENT_POOL,
        spec=PlacementPoolSpec,
        status=PlacementPoolStatus,
        name_rule=PLACEMENT_POOL_NAME,
        description="A set of interchangeable nodes, their GPUs and their price, for memplace "
        "to place models on.",
        columns=(
            PrinterColumn("Nodes", "integer", ".status.nodes", "Nodes in the pool."),
            PrinterColumn("GPUs", "integer", ".status.gpus", "GPUs in the pool."),
            PrinterColumn(
                "$/node-h", "number", ".status.pricePerNodeHour", "Price per node-hour (USD)."
            ),
            PrinterColumn("Sharing", "string", ".spec.sharing", "GPU sharing."),
            PrinterColumn("Spot", "boolean", ".spec.spot", "Spot nodes.", priority=1),
            PrinterColumn("Price-Source", "string", ".status.priceSource", "Price.", priority=1),
            _AGE,
        ),
    ),
    CrdSource(
        resource=NODE_MEMORY_REPORT,
        spec=NodeMemoryReportSpec,
        status=NodeMemoryReportStatus,
        description="GPU and host memory measured on one node by the memplace agent; "
        "named after the node.",
        columns=(
            PrinterColumn("GPUs", "integer", ".status.gpuCount", "GPUs reported."),
            PrinterColumn("Free", "string", ".status.memoryFree", "Free/total GPU memory."),
            PrinterColumn("NVML", "boolean", ".status.nvml.available", "NVML usable.", priority=1),
            PrinterColumn("Driver", "string", ".status.nvml.driverVersion", "Driver.", priority=1),
            PrinterColumn("Observed", "date", ".status.observedAt", "Last measurement."),
            _AGE,
        ),
    ),
    CrdSource(
        resource=MODEL_ADAPTER,
        spec=ModelAdapterSpec,
        status=ModelAdapterStatus,
        name_rule=MODEL_ADAPTER_NAME,
        description="A LoRA fine-tune served beside its base ModelDeployment (same namespace): "
        "memplace sizes and places it with the base, in the base's pods.",
        columns=(
            PrinterColumn("Base", "string", ".spec.baseDeployment", "The base ModelDeployment."),
            PrinterColumn("Rank", "integer", ".spec.rank", "LoRA rank."),
            PrinterColumn("Phase", "string", ".status.phase", "Loaded, Rejected, Orphaned."),
            PrinterColumn("Memory", "string", ".status.memory", "The adapter's weights."),
            PrinterColumn("Source", "string", ".spec.source", "Where it is read.", priority=1),
            PrinterColumn("Message", "string", ".status.message", "Why.", priority=1),
            _AGE,
        ),
    ),
    CrdSource(
        resource=PERFORMANCE_PROFILE,
        spec=PerformanceProfileSpec,
        status=PerformanceProfileStatus,
        name_rule=PERFORMANCE_PROFILE_NAME,
        description="Learned corrections (measured ÷ predicted) to memplace's decode, prefill "
        "and memory estimates for one architecture, GPU model, precision, KV dtype, engine, "
        "GPUs per replica and tier.",
        columns=(
            PrinterColumn("GPU", "string", ".spec.gpuModel", "GPU model."),
            PrinterColumn("Precision", "string", ".spec.precision", "Weight precision."),
            PrinterColumn("Engine", "string", ".spec.engine", "Serving runtime."),
            PrinterColumn("GPUs", "integer", ".spec.gpusPerReplica", "GPUs per replica."),
            PrinterColumn("Decode", "number", ".status.decode.factor", "TPOT factor."),
            PrinterColumn("Samples", "integer", ".status.decode.samples", "Decode samples."),
            PrinterColumn("Prefill", "number", ".status.prefill.factor", "TTFT factor."),
            PrinterColumn("Memory", "number", ".status.memory.factor", "Memory factor."),
            PrinterColumn("Model", "string", ".spec.model", "Learned from.", priority=1),
            PrinterColumn("KV", "string", ".spec.kvCacheDtype", "KV-cache type.", priority=1),
            PrinterColumn("Tier", "string", ".spec.tier", "Tier.", priority=1),
            PrinterColumn("Updated", "date", ".status.decode.lastUpdated", "Last decode sample."),
            _AGE,
        ),
    ),
)


def _description(text: str) -> str:
    """Unwrap a docstring: lines of a paragraph joined, paragraphs kept apart."""
    paragraphs = [" ".join(p.split()) for p in text.strip().split("\n\n")]
    return "\n\n".join(p for p in paragraphs if p)


def _ordered(node: dict[str, Any]) -> dict[str, Any]:
    known = [k for k in _KEY_ORDER if k in node]
    rest = sorted(k for k in node if k not in _KEY_ORDER)
    return {k: node[k] for k in (*known, *rest)}


def structural(schema: dict[str, Any], defs: dict[str, Any] | None = None) -> dict[str, Any]:
    """A pydantic JSON Schema node as a Kubernetes structural schema node (see module doc)."""
    defs = schema.get("$defs", {}) if defs is None else defs
    node = dict(schema)

    if "$ref" in node:
        name = node.pop("$ref").rsplit("/", 1)[-1]
        # The referring field's own keys (its description, default) win over the model's.
        return structural({**defs[name], **node}, defs)

    if "anyOf" in node:
        options = node.pop("anyOf")
        non_null = [o for o in options if o != {"type": "null"}]
        if len(non_null) != 1:
            raise ValueError(f"unions cannot be expressed in a structural schema: {options}")
        merged = structural({**non_null[0], **node}, defs)
        if len(non_null) < len(options):
            merged["nullable"] = True
        return _ordered(merged)

    for key in _DROPPED:
        node.pop(key, None)
    if "default" in node and node["default"] is None:
        del node["default"]
    if "const" in node:
        node["enum"] = [node.pop("const")]
    if "description" in node:
        node["description"] = _description(node["description"])

    for bound, inclusive in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        if bound in node and not isinstance(node[bound], bool):
            value = node.pop(bound)
            if node.get("type") == "integer":
                node[inclusive] = value + 1 if bound == "exclusiveMinimum" else value - 1
            else:
                node[inclusive] = value
                node[bound] = True

    if node.get("type") == "object":
        extra = node.pop("additionalProperties", None)
        if "properties" in node:
            node["properties"] = {k: structural(v, defs) for k, v in node["properties"].items()}
            if extra not in (None, False):
                raise ValueError("an object cannot have both properties and extra properties")
        elif extra is True or extra == {} or extra is None:
            node["x-kubernetes-preserve-unknown-fields"] = True
        elif isinstance(extra, dict):
            node["additionalProperties"] = structural(extra, defs)
    if "items" in node:
        node["items"] = structural(node["items"], defs)
    if "type" not in node:
        raise ValueError(f"a structural schema node needs a type: {schema}")
    return _ordered(node)


def _root_schema(source: CrdSource) -> dict[str, Any]:
    def part(model: type[ApiModel], description: str) -> dict[str, Any]:
        schema = model.model_json_schema(by_alias=True, mode="validation")
        return structural({**schema, "description": description})

    rules = (
        [{"rule": source.name_rule.cel, "message": f"metadata.name {source.name_rule.message}"}]
        if source.name_rule
        else []
    )
    return {
        "description": _description(source.description),
        "type": "object",
        "required": ["spec"],
        **({"x-kubernetes-validations": rules} if rules else {}),
        "properties": {
            "apiVersion": {
                "description": "The versioned schema of this object: memplace.io/v1alpha1.",
                "type": "string",
            },
            "kind": {
                "description": f"The kind of this object: {source.resource.kind}.",
                "type": "string",
            },
            "metadata": {"type": "object"},
            "spec": part(source.spec, source.spec.__doc__ or ""),
            "status": part(source.status, source.status.__doc__ or ""),
        },
    }


def build_crd(source: CrdSource) -> dict[str, Any]:
    """The CustomResourceDefinition for one resource, as a dict in a fixed order."""
    res = source.resource
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": res.crd_name,
            "labels": {
                "app.kubernetes.io/name": "memplace",
                "app.kubernetes.io/part-of": "memplace",
            },
        },
        "spec": {
            "group": res.group,
            "names": {
                "kind": res.kind,
                "listKind": f"{res.kind}List",
                "plural": res.plural,
                "singular": res.singular,
                "shortNames": list(res.short_names),
                "categories": list(res.categories),
            },
            "scope": res.scope,
            "versions": [
                {
                    "name": res.version,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": [c.to_crd() for c in source.columns],
                    "schema": {"openAPIV3Schema": _root_schema(source)},
                }
            ],
        },
    }


def render(crd: dict[str, Any]) -> str:
    """The YAML text of one CRD file, header comment included."""
    # A JSON round trip unshares nodes, so that YAML writes no anchors or aliases.
    plain = json.loads(json.dumps(crd))
    return HEADER + yaml.safe_dump(plain, sort_keys=False, allow_unicode=True, width=100)


def crd_documents() -> dict[str, str]:
    """File name → YAML text, for every CRD."""
    return {f"{s.resource.crd_name}.yaml": render(build_crd(s)) for s in RESOURCES}


def write(root: Path = _REPO_ROOT) -> list[Path]:
    """Write every CRD file into each of `CRD_DIRS` under `root`; return the paths written."""
    written = []
    for directory in CRD_DIRS:
        (root / directory).mkdir(parents=True, exist_ok=True)
        for name, text in crd_documents().items():
            path = root / directory / name
            path.write_text(text, encoding="utf-8")
            written.append(path)
    return written


def check(root: Path = _REPO_ROOT) -> list[Path]:
    """The CRD files under `root` that are missing or differ from what the models generate."""
    drifted = []
    for directory in CRD_DIRS:
        for name, text in crd_documents().items():
            path = root / directory / name
            if not path.is_file() or path.read_text(encoding="utf-8") != text:
                drifted.append(path)
    return drifted


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m memplace.api.crds",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--check", action="store_true", help="write nothing; exit 1 listing the files that differ"
    )
    parser.add_argument(
        "--root", type=Path, default=_REPO_ROOT, help="the repository root (default: %(default)s)"
    )
    args = parser.parse_args(argv)
    if args.check:
        drifted = check(args.root)
        for path in drifted:
            print(f"drifted: {path}", file=sys.stderr)
        if drifted:
            print("run `make crds` to regenerate them from the models", file=sys.stderr)
        return 1 if drifted else 0
    for path in write(args.root):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

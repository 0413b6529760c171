"""Render charts/memplace offline (helm-python-sdk: Helm v4's Go SDK over ctypes, no binary).

``render_chart(values)`` returns the parsed objects of every template, hooks included, the way
``helm template`` would print them; ``VARIATIONS`` are the value sets every test runs against.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

helm = pytest.importorskip("helm_python", reason="helm-python-sdk is not installed")

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "memplace"
RELEASE = "memplace"
NAMESPACE = "memplace"
KUBE_VERSION = "1.33.0"

VARIATIONS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "peering-2-replicas": {"operator": {"replicas": 2, "peering": {"enabled": True}}},
    "host-pid": {"agent": {"hostPID": True}},
    "offload-hostpath": {"agent": {"offload": {"enabled": True}}},
    "service-monitor": {"serviceMonitor": {"enabled": True, "labels": {"release": "kps"}}},
    "network-policy": {
        "networkPolicy": {"enabled": True, "apiServer": {"cidrs": ["172.18.0.2/32"]}}
    },
    "agent-disabled": {"agent": {"enabled": False}},
    "grafana-dashboard": {"grafana": {"dashboard": {"enabled": True}}},
}


def render_chart(values: dict[str, Any] | None = None, chart: Path = CHART) -> list[dict]:
    """Every object the chart renders with ``values``, in template order."""
    with helm.Chart.load(chart) as loaded:
        manifests = loaded.render(values or {}, name=RELEASE, namespace=NAMESPACE, is_install=True)
    objects = []
    for path in sorted(manifests):
        if path.endswith("NOTES.txt"):
            continue
        objects.extend(doc for doc in yaml.safe_load_all(manifests[path]) if doc)
    return objects


def find(objects: list[dict], kind: str, name: str | None = None) -> list[dict]:
    return [
        obj
        for obj in objects
        if obj["kind"] == kind and (name is None or obj["metadata"]["name"] == name)
    ]


def one(objects: list[dict], kind: str, name: str | None = None) -> dict:
    found = find(objects, kind, name)
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]

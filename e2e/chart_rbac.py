"""The local operator under the chart's own RBAC (``E2E_OPERATOR_RBAC=chart``), not as admin.

The chart's operator ServiceAccount and every Role, ClusterRole and binding that names it are
taken from the rendered chart (``tests/chart/rendering.py``: helm-python-sdk, no binary),
renamed for the run (cluster-scoped names get the run id, so an installed release's objects are
never touched) and moved to the run's namespace. ``memplace run`` then logs in with a
TokenRequest token of that ServiceAccount: every call the operator makes is authorised by the
chart's rules, by the real API server.
"""

from __future__ import annotations

import base64
import copy
import importlib.util
from pathlib import Path
from typing import Any

import yaml

__all__ = ["KINDS", "kubeconfig_for_token", "operator_rbac", "render_chart"]

ROOT = Path(__file__).resolve().parent.parent
KINDS = ("ServiceAccount", "Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding")


def render_chart() -> list[dict[str, Any]]:
    """The chart rendered with its defaults, as tests/chart renders it; ImportError (with the
    reason) when helm-python-sdk is missing."""
    path = ROOT / "tests" / "chart" / "rendering.py"
    spec = importlib.util.spec_from_file_location("memplace_chart_rendering", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except BaseException as error:  # pytest.importorskip raises a Skipped, not an ImportError
        raise ImportError(f"cannot render the chart: {error}") from error
    return list(module.render_chart({}))


def _operator_account(objects: list[dict[str, Any]]) -> str:
    deployment = next(
        o
        for o in objects
        if o["kind"] == "Deployment" and o["metadata"]["name"].endswith("operator")
    )
    return deployment["spec"]["template"]["spec"]["serviceAccountName"]


def operator_rbac(
    objects: list[dict[str, Any]], run_id: str, namespace: str
) -> tuple[str, list[dict[str, Any]]]:
    """(ServiceAccount name, objects to create) for the chart's operator identity in
    ``namespace``: its ServiceAccount, the bindings whose subjects name it, and the roles those
    bindings refer to; cluster-scoped names suffixed ``-e2e-<run_id>``."""
    account = _operator_account(objects)
    chart_namespace = next(
        o["metadata"]["namespace"]
        for o in objects
        if o["kind"] == "ServiceAccount" and o["metadata"]["name"] == account
    )

    def names_account(binding: dict[str, Any]) -> bool:
        return any(
            s.get("kind") == "ServiceAccount"
            and s.get("name") == account
            and s.get("namespace", chart_namespace) == chart_namespace
            for s in binding.get("subjects") or []
        )

    def renamed(name: str, kind: str) -> str:
        return f"{name}-e2e-{run_id}" if kind.startswith("Cluster") else name

    bindings = [
        o
        for o in objects
        if o["kind"] in ("RoleBinding", "ClusterRoleBinding") and names_account(o)
    ]
    wanted_roles = {(b["roleRef"]["kind"], b["roleRef"]["name"]) for b in bindings}
    found: list[dict[str, Any]] = []
    for obj in objects:
        kind, name = obj["kind"], obj["metadata"]["name"]
        if kind not in KINDS:
            continue
        keep = (
            (kind == "ServiceAccount" and name == account)
            or (kind in ("Role", "ClusterRole") and (kind, name) in wanted_roles)
            or obj in bindings
        )
        if not keep:
            continue
        obj = copy.deepcopy(obj)
        obj["metadata"] = {
            "name": renamed(name, kind),
            **({} if kind.startswith("Cluster") else {"namespace": namespace}),
            "labels": {"memplace.io/e2e-run": run_id},
        }
        if "roleRef" in obj:
            obj["roleRef"]["name"] = renamed(obj["roleRef"]["name"], obj["roleRef"]["kind"])
            obj["subjects"] = [{"kind": "ServiceAccount", "name": account, "namespace": namespace}]
        found.append(obj)
    if not any(o["kind"].endswith("Binding") for o in found):
        raise AssertionError(f"the chart binds no role to its operator account {account!r}")
    return account, found


def kubeconfig_for_token(server: str, token: str, ca_path: str | None, insecure: bool) -> str:
    """A kubeconfig (YAML text) for ``server`` with a bearer ``token``."""
    cluster: dict[str, Any] = {"server": server}
    if insecure:
        cluster["insecure-skip-tls-verify"] = True
    elif ca_path:
        cluster["certificate-authority-data"] = base64.b64encode(
            Path(ca_path).read_bytes()
        ).decode()
    return yaml.safe_dump(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "current-context": "operator",
            "clusters": [{"name": "e2e", "cluster": cluster}],
            "users": [{"name": "operator", "user": {"token": token}}],
            "contexts": [{"name": "operator", "context": {"cluster": "e2e", "user": "operator"}}],
        }
    )

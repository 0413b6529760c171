"""E2E_OPERATOR_RBAC=chart: the chart's operator identity, renamed for one e2e run."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "e2e"))
from chart_rbac import operator_rbac, render_chart  # noqa: E402

RULES = [{"apiGroups": ["memplace.io"], "resources": ["modeldeployments"], "verbs": ["list"]}]


def _chart() -> list[dict]:
    subject = [{"kind": "ServiceAccount", "name": "op", "namespace": "memplace"}]
    return [
        {
            "kind": "Deployment",
            "metadata": {"name": "memplace-operator", "namespace": "memplace"},
            "spec": {"template": {"spec": {"serviceAccountName": "op"}}},
        },
        {"kind": "ServiceAccount", "metadata": {"name": "op", "namespace": "memplace"}},
        {"kind": "ServiceAccount", "metadata": {"name": "agent", "namespace": "memplace"}},
        {"kind": "ClusterRole", "metadata": {"name": "op-role"}, "rules": RULES},
        {"kind": "ClusterRole", "metadata": {"name": "agent-role"}, "rules": []},
        {"kind": "Role", "metadata": {"name": "peering", "namespace": "memplace"}, "rules": []},
        {
            "kind": "ClusterRoleBinding",
            "metadata": {"name": "op"},
            "subjects": subject,
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": "op-role",
            },
        },
        {
            "kind": "RoleBinding",
            "metadata": {"name": "peering", "namespace": "memplace"},
            "subjects": subject,
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "peering"},
        },
        {
            "kind": "ClusterRoleBinding",
            "metadata": {"name": "agent"},
            "subjects": [{"kind": "ServiceAccount", "name": "agent", "namespace": "memplace"}],
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": "agent-role",
            },
        },
    ]


def test_only_the_operators_account_and_its_roles_are_taken_renamed_for_the_run():
    account, objects = operator_rbac(_chart(), "abc123", "e2e-ns")
    assert account == "op"
    found = {(o["kind"], o["metadata"]["name"], o["metadata"].get("namespace")) for o in objects}
    assert found == {
        ("ServiceAccount", "op", "e2e-ns"),
        ("ClusterRole", "op-role-e2e-abc123", None),
        ("ClusterRoleBinding", "op-e2e-abc123", None),
        ("Role", "peering", "e2e-ns"),
        ("RoleBinding", "peering", "e2e-ns"),
    }
    by_name = {o["metadata"]["name"]: o for o in objects}
    assert by_name["op-e2e-abc123"]["roleRef"]["name"] == "op-role-e2e-abc123"
    assert by_name["op-e2e-abc123"]["subjects"] == [
        {"kind": "ServiceAccount", "name": "op", "namespace": "e2e-ns"}
    ]
    assert by_name["peering"]["roleRef"]["name"] == "peering"  # a Role stays in the namespace
    assert by_name["op-role-e2e-abc123"]["rules"] == RULES
    assert all(o["metadata"]["labels"] == {"memplace.io/e2e-run": "abc123"} for o in objects)


def test_a_chart_that_binds_nothing_to_the_operator_is_an_error():
    chart = [o for o in _chart() if "Binding" not in o["kind"]]
    with pytest.raises(AssertionError, match="binds no role"):
        operator_rbac(chart, "abc123", "e2e-ns")


def test_the_real_chart_gives_the_operator_its_cluster_role():
    try:
        objects = render_chart()
    except ImportError as error:
        pytest.skip(str(error))
    account, rbac = operator_rbac(objects, "abc123", "e2e-ns")
    kinds = sorted(o["kind"] for o in rbac)
    assert "ServiceAccount" in kinds and "ClusterRoleBinding" in kinds
    role = next(o for o in rbac if o["kind"] == "ClusterRole")
    granted = {r for rule in role["rules"] for r in rule.get("resources", [])}
    assert {"modeldeployments", "deployments", "services"} <= granted
    assert not any(o["metadata"]["name"].startswith("memplace-agent") for o in rbac)
    assert account == "memplace-operator"

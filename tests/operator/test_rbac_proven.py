"""The operator needs no permission the chart does not grant, and the check would notice.

Every integration test's ``operator`` runs under the chart's RBAC (``rbac_support``, wired in
``conftest._running``). Here: the request attributes are derived as the API server derives them,
the rules are scoped as bindings scope them, the operator's own requests really are checked
(its writes are seen as granted), and a chart without one rule makes the operator's request 403.
"""

from __future__ import annotations

import pytest
from operator_support import (
    NS,
    SERVICES,
    add_pool,
    eventually,
    md_url,
    model_deployment,
    status_of,
)
from rbac_support import Attributes, Grant, RbacAuthorizer, attributes, chart_grants


@pytest.mark.parametrize(("method", "path", "query", "expected"), [
    ("GET", "/api/v1/nodes", {}, ("list", "", "nodes", "", None, None)),
    ("GET", "/api/v1/nodes", {"watch": "true"}, ("watch", "", "nodes", "", None, None)),
    ("GET", "/api/v1/namespaces", {}, ("list", "", "namespaces", "", None, None)),
    ("GET", "/api/v1/namespaces/ml", {}, ("get", "", "namespaces", "", "ml", "ml")),
    ("PUT", "/api/v1/namespaces/ml/finalize", {},
     ("update", "", "namespaces", "finalize", "ml", "ml")),
    ("GET", "/api/v1/namespaces/ml/configmaps/cfg", {}, ("get", "", "configmaps", "", "ml", "cfg")),
    ("POST", "/apis/apps/v1/namespaces/ml/deployments", {},
     ("create", "apps", "deployments", "", "ml", None)),
    ("PATCH", "/apis/memplace.io/v1alpha1/namespaces/ml/modeldeployments/a/status", {},
     ("patch", "memplace.io", "modeldeployments", "status", "ml", "a")),
    ("DELETE", "/apis/apps/v1/namespaces/ml/deployments/a", {},
     ("delete", "apps", "deployments", "", "ml", "a")),
    ("DELETE", "/apis/apps/v1/namespaces/ml/deployments", {},
     ("deletecollection", "apps", "deployments", "", "ml", None)),
])
def test_request_attributes_are_derived_from_method_and_path_as_the_api_server_does(
        method, path, query, expected):
    assert attributes(method, path, query) == Attributes(*expected)


@pytest.mark.parametrize("path", ["/api", "/api/v1", "/apis", "/apis/apps/v1", "/version"])
def test_discovery_paths_are_no_resource_requests(path):
    assert attributes("GET", path, {}) is None


def test_a_rule_allows_its_verbs_group_resource_scope_and_names_only():
    rule = {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get", "patch"]}
    patch = Attributes("patch", "apps", "deployments", "", "ml", "a")
    assert Grant(rule, None).allows(patch)
    assert Grant(rule, "ml").allows(patch) and not Grant(rule, "other").allows(patch)
    assert not Grant(rule, None).allows(Attributes("create", "apps", "deployments", "", "ml", None))
    assert not Grant(rule, None).allows(Attributes("patch", "", "deployments", "", "ml", "a"))
    assert not Grant(rule, None).allows(Attributes("patch", "apps", "deployments", "scale", "ml",
                                                   "a"))
    assert not Grant(rule | {"resourceNames": ["b"]}, None).allows(patch)
    assert Grant({"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}, None).allows(patch)


def test_only_rules_bound_to_the_operator_s_service_account_count():
    role = {"kind": "ClusterRole", "metadata": {"name": "r"},
            "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]}]}
    local = {"kind": "Role", "metadata": {"name": "l", "namespace": "ops"},
             "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]}]}

    def binding(kind, name, ref_kind, ref, namespace=None):
        meta = {"name": name} | ({"namespace": namespace} if namespace else {})
        return {"kind": kind, "metadata": meta, "roleRef": {"kind": ref_kind, "name": ref},
                "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": "ops"}]}

    objects = [role, local, binding("ClusterRoleBinding", "op", "ClusterRole", "r"),
               binding("RoleBinding", "op", "Role", "l", "ops"),
               binding("ClusterRoleBinding", "someone-else", "ClusterRole", "r")]
    grants = chart_grants(objects, service_account="op")
    assert [(g.rule["resources"], g.namespace) for g in grants] == [
        (["pods"], None), (["configmaps"], "ops")]


async def test_the_operator_s_requests_are_checked_and_its_writes_are_granted(cluster, operator):
    authorizer = cluster.authorize
    if authorizer is None:
        pytest.skip("helm-python-sdk is not installed: the chart cannot be rendered")
    await add_pool(cluster, "a100", 30.0)
    await cluster.create(md_url(), model_deployment("summarizer"))
    await eventually(lambda: cluster.stored(SERVICES, NS, "summarizer"), what="the Service")
    await eventually(lambda: status_of(cluster, "summarizer").get("placement"), what="status")
    writes = {("create", "apps", "deployments"), ("create", "", "services"),
              ("patch", "memplace.io", "modeldeployments/status"), ("create", "", "events"),
              ("watch", "memplace.io", "modeldeployments")}
    await eventually(lambda: writes <= authorizer.used,
                     what=f"{sorted(writes - authorizer.used)} seen as granted")
    assert authorizer.denied == []


async def test_a_chart_without_the_rule_for_services_makes_the_operator_s_create_403(
        cluster, operator):
    chart = cluster.authorize
    if chart is None:
        pytest.skip("helm-python-sdk is not installed: the chart cannot be rendered")
    without = [Grant({**g.rule, "verbs": [v for v in g.rule["verbs"] if v != "create"]},
                     g.namespace) if g.rule.get("resources") == ["services"] else g
               for g in chart.grants]
    cluster.authorize = narrower = RbacAuthorizer(without, cluster.operator_token)
    try:
        await add_pool(cluster, "a100", 30.0)
        await cluster.create(md_url(), model_deployment("summarizer"))
        await eventually(lambda: narrower.denied, what="a refused request")
        assert narrower.denied[0] == ("services is forbidden: the operator cannot create "
                                      "services in API group '' in the namespace 'ml'")
        assert cluster.stored(SERVICES, NS, "summarizer") is None
    finally:
        cluster.authorize = chart  # the fixture checks the chart's own grants at teardown

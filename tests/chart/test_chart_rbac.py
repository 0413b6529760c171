"""Least privilege: exactly the verbs each component uses, no wildcards, no Secrets."""

from __future__ import annotations

from .rendering import NAMESPACE, find, one, render_chart

OPERATOR_RULES = {
    ("memplace.io", "modeldeployments"): {"get", "list", "watch", "patch"},  # get: 409 re-read
    ("memplace.io", "modeldeployments/status"): {"patch"},
    ("memplace.io", "modeldeployments/finalizers"): {"update"},  # blockOwnerDeletion
    ("memplace.io", "placementpools"): {"list", "watch"},
    ("memplace.io", "placementpools/status"): {"patch"},
    ("memplace.io", "nodememoryreports"): {"list", "watch"},
    ("apps", "deployments"): {"get", "list", "watch", "create", "patch", "delete"},
    ("", "services"): {"get", "list", "watch", "create", "patch"},
    ("", "configmaps"): {"get"},
    ("", "events"): {"create"},
    ("", "nodes"): {"list", "watch"},
    ("", "pods"): {"list", "watch"},
    ("memplace.io", "performanceprofiles"): {"get", "list", "watch", "create", "patch"},
    ("memplace.io", "modeladapters"): {"list", "watch"},
    ("memplace.io", "modeladapters/status"): {"patch"},
    ("memplace.io", "performanceprofiles/status"): {"patch"},
    ("", "namespaces"): {"list", "watch"},
    ("apiextensions.k8s.io", "customresourcedefinitions"): {"list", "watch"},
    ("monitoring.coreos.com", "podmonitors"): {"create"},  # prometheus.scrape: auto (default)
    ("keda.sh", "scaledobjects"): {"get", "create", "patch"},  # spec.scaling under KEDA (keda.py)
    ("http.keda.sh", "httpscaledobjects"): {"get", "create", "patch"},  # the add-on (keda_http)
}
PEERING_RULES = {("kopf.dev", "clusterkopfpeerings"): {"get", "list", "watch", "patch"}}
AGENT_RULES = {
    ("memplace.io", "nodememoryreports"): {"create", "patch"},
    ("memplace.io", "nodememoryreports/status"): {"patch"},
    ("", "nodes"): {"get"},
}
# The one `update`: with the OwnerReferencesPermissionEnforcement admission plugin (OpenShift),
# an owner reference with blockOwnerDeletion needs `update` on the owner's finalizers.
UPDATE_ALLOWED = {"modeldeployments/finalizers"}


def permissions(role: dict) -> dict[tuple[str, str], set[str]]:
    """(apiGroup, resource) -> verbs, merged over the role's rules."""
    granted: dict[tuple[str, str], set[str]] = {}
    for rule in role["rules"]:
        assert "nonResourceURLs" not in rule
        assert "resourceNames" not in rule or rule["resourceNames"]
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                granted.setdefault((group, resource), set()).update(rule["verbs"])
    return granted


def test_nothing_is_granted_by_wildcard_and_no_secret_is_readable(rendered):
    for role in find(rendered, "ClusterRole") + find(rendered, "Role"):
        for rule in role["rules"]:
            for field in ("apiGroups", "resources", "verbs", "resourceNames"):
                assert not any("*" in item for item in rule.get(field, [])), (role, rule)
            assert "secrets" not in rule["resources"]
            assert not {"escalate", "bind", "impersonate"} & set(rule["verbs"])
            if "update" in rule["verbs"]:
                assert set(rule["resources"]) <= UPDATE_ALLOWED, rule


def test_the_operator_gets_exactly_what_it_uses(default_objects):
    role = one(default_objects, "ClusterRole", "memplace-operator")
    assert permissions(role) == OPERATOR_RULES


def test_pod_annotations_or_no_scraping_need_no_podmonitor_rule():
    for scrape in ("annotations", "none"):
        role = one(render_chart({"prometheus": {"scrape": scrape}}), "ClusterRole",
                   "memplace-operator")
        expected = dict(OPERATOR_RULES)
        del expected[("monitoring.coreos.com", "podmonitors")]
        assert permissions(role) == expected


def test_peering_adds_only_the_cluster_peerings():
    objects = render_chart({"operator": {"replicas": 2, "peering": {"enabled": True}}})
    role = one(objects, "ClusterRole", "memplace-operator")
    assert permissions(role) == OPERATOR_RULES | PEERING_RULES


def test_the_agent_gets_exactly_what_it_uses(default_objects):
    role = one(default_objects, "ClusterRole", "memplace-agent")
    assert permissions(role) == AGENT_RULES


def test_host_pid_adds_only_listing_pods_to_name_gpu_processes():
    objects = render_chart({"agent": {"hostPID": True}})
    role = one(objects, "ClusterRole", "memplace-agent")
    assert permissions(role) == AGENT_RULES | {("", "pods"): {"list"}}


def test_each_role_is_bound_to_its_own_service_account(rendered):
    accounts = {sa["metadata"]["name"] for sa in find(rendered, "ServiceAccount")}
    pods = {
        obj["metadata"]["name"]: obj["spec"]["template"]["spec"]["serviceAccountName"]
        for obj in find(rendered, "Deployment") + find(rendered, "DaemonSet")
    }
    for binding in find(rendered, "ClusterRoleBinding"):
        name = binding["metadata"]["name"]
        assert binding["roleRef"] == {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "ClusterRole",
            "name": name,
        }
        one(rendered, "ClusterRole", name)
        (subject,) = binding["subjects"]
        assert subject == {"kind": "ServiceAccount", "name": pods[name], "namespace": NAMESPACE}
        assert subject["name"] in accounts
    assert len(find(rendered, "ClusterRoleBinding")) == len(pods)


def test_service_account_tokens_are_mounted_only_where_the_pod_asks(rendered):
    for account in find(rendered, "ServiceAccount"):
        assert account["automountServiceAccountToken"] is False

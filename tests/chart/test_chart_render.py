"""The chart renders, with defaults and each main variation, into objects Kubernetes 1.33
accepts."""

from __future__ import annotations

import kubernetes_validate
import pytest

from .rendering import CHART, KUBE_VERSION, NAMESPACE, find, one, render_chart

helm = pytest.importorskip("helm_python")

# Kinds defined by CRDs, which kubernetes-validate's built-in schemas cannot know.
CRD_KINDS = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"): "Prometheus Operator CRD",
    ("kopf.dev/v1", "ClusterKopfPeering"): "Kopf's peering CRD, shipped by this chart",
}

DEFAULT_OBJECTS = [
    ("ClusterRole", "memplace-agent"),
    ("ClusterRoleBinding", "memplace-agent"),
    ("DaemonSet", "memplace-agent"),
    ("Service", "memplace-agent-metrics"),
    ("ServiceAccount", "memplace-agent"),
    ("Deployment", "memplace-operator"),
    ("PodDisruptionBudget", "memplace-operator"),
    ("ClusterRole", "memplace-operator"),
    ("ClusterRoleBinding", "memplace-operator"),
    ("Service", "memplace-operator-metrics"),
    ("ServiceAccount", "memplace-operator"),
]


def test_every_rendered_object_is_valid_for_kubernetes_1_33_strict(rendered):
    """Strict: unknown fields fail too. Objects of CRD-defined kinds are skipped (CRD_KINDS
    says why); every other kind must have a built-in schema."""
    assert rendered, "the chart rendered nothing"
    for obj in rendered:
        if (obj["apiVersion"], obj["kind"]) in CRD_KINDS:
            continue
        kubernetes_validate.validate(obj, KUBE_VERSION, strict=True)


def test_the_default_render_is_exactly_the_documented_objects(default_objects):
    rendered = sorted((o["kind"], o["metadata"]["name"]) for o in default_objects)
    assert rendered == sorted(DEFAULT_OBJECTS)


def test_namespaced_objects_go_to_the_release_namespace(rendered):
    cluster_scoped = {
        "ClusterRole",
        "ClusterRoleBinding",
        "CustomResourceDefinition",
        "ClusterKopfPeering",
    }
    for obj in rendered:
        if obj["kind"] not in cluster_scoped:
            assert obj["metadata"]["namespace"] == NAMESPACE, obj["metadata"]["name"]


def test_every_object_carries_the_standard_labels(rendered):
    for obj in rendered:
        labels = obj["metadata"]["labels"]
        assert labels["app.kubernetes.io/name"] == "memplace"
        assert labels["app.kubernetes.io/instance"] == "memplace"
        assert labels["app.kubernetes.io/part-of"] == "memplace"


def test_the_operator_runs_standalone_with_one_replica_by_default(default_objects):
    deployment = one(default_objects, "Deployment")
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["args"] == [
        "run",
        "--all-namespaces",
        "--metrics-port",
        "8080",
        "--health-port",
        "8081",
        "--measure-interval",
        "30s",
        "--measure-window",
        "5m",
        "--scrape",
        "auto",
    ]
    env = {e["name"]: e for e in container["env"]}
    assert env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert env["POD_NAMESPACE"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace"
    assert env["HOME"]["value"] == env["TMPDIR"]["value"] == "/tmp"
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http-health"}
    assert {p["containerPort"] for p in container["ports"]} == {8080, 8081}
    assert not find(default_objects, "CustomResourceDefinition")
    assert not find(default_objects, "ClusterKopfPeering")


def test_peering_runs_two_replicas_that_meet_in_a_cluster_peering():
    objects = render_chart({"operator": {"replicas": 2, "peering": {"enabled": True}}})
    deployment = one(objects, "Deployment")
    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["strategy"]["type"] == "RollingUpdate"
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[args.index("--peering") + 1] == "memplace"
    crd = one(objects, "CustomResourceDefinition", "clusterkopfpeerings.kopf.dev")
    assert crd["spec"]["scope"] == "Cluster"
    assert crd["spec"]["names"]["kind"] == "ClusterKopfPeering"
    peering = one(objects, "ClusterKopfPeering", "memplace")
    # The CRD must exist before Helm can map the kind: the object is a post-install hook.
    assert "post-install" in peering["metadata"]["annotations"]["helm.sh/hook"]


def test_peering_without_the_crd_when_another_kopf_operator_installed_it():
    objects = render_chart(
        {"operator": {"replicas": 2, "peering": {"enabled": True, "createCRD": False}}}
    )
    assert not find(objects, "CustomResourceDefinition")
    one(objects, "ClusterKopfPeering", "memplace")


def test_the_agent_runs_on_gpu_nodes_without_taking_a_gpu(default_objects):
    daemonset = one(default_objects, "DaemonSet")
    pod = daemonset["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod[
        "tolerations"
    ]
    assert pod["runtimeClassName"] == "nvidia"
    assert "hostPID" not in pod
    container = pod["containers"][0]
    assert container["args"][:2] == ["agent", "--node-name"]
    assert container["args"][2] == "$(NODE_NAME)"
    assert container["args"][3:7] == ["--interval", "10s", "--metrics-port", "9401"]
    env = {e["name"]: e for e in container["env"]}
    assert env["NODE_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "spec.nodeName"
    assert env["NVIDIA_VISIBLE_DEVICES"]["value"] == "all"
    assert env["NVIDIA_DRIVER_CAPABILITIES"]["value"] == "utility"
    for section in ("requests", "limits"):
        assert not any("nvidia.com" in key for key in container["resources"].get(section, {}))


def test_the_offload_path_is_mounted_read_only_when_enabled():
    objects = render_chart({"agent": {"offload": {"enabled": True}}})
    pod = one(objects, "DaemonSet")["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["args"][-2:] == ["--offload-path", "/var/lib/memplace/offload"]
    mount = next(m for m in container["volumeMounts"] if m["name"] == "offload")
    assert mount == {"name": "offload", "mountPath": "/var/lib/memplace/offload", "readOnly": True}


def test_runtime_class_can_be_left_to_the_node_default():
    objects = render_chart({"agent": {"runtimeClassName": ""}})
    assert "runtimeClassName" not in one(objects, "DaemonSet")["spec"]["template"]["spec"]


def test_disabling_the_agent_removes_all_of_it():
    objects = render_chart(
        {
            "agent": {"enabled": False},
            "serviceMonitor": {"enabled": True},
            "networkPolicy": {"enabled": True},
        }
    )
    assert not [
        o for o in objects if o["metadata"]["labels"].get("app.kubernetes.io/component") == "agent"
    ]
    assert len(find(objects, "ServiceMonitor")) == 1
    assert len(find(objects, "NetworkPolicy")) == 1


def test_service_monitors_scrape_both_metrics_services():
    objects = render_chart({"serviceMonitor": {"enabled": True, "labels": {"release": "kps"}}})
    monitors = find(objects, "ServiceMonitor")
    assert {m["metadata"]["name"] for m in monitors} == {"memplace-operator", "memplace-agent"}
    services = find(objects, "Service")
    for monitor in monitors:
        assert monitor["metadata"]["labels"]["release"] == "kps"
        selector = monitor["spec"]["selector"]["matchLabels"]
        matched = [s for s in services if selector.items() <= s["metadata"]["labels"].items()]
        assert len(matched) == 1
        port_names = {p["name"] for p in matched[0]["spec"]["ports"]}
        assert monitor["spec"]["endpoints"][0]["port"] in port_names


def test_network_policy_admits_only_metrics_and_health_and_reaches_the_api_server():
    objects = render_chart(
        {"networkPolicy": {"enabled": True, "apiServer": {"cidrs": ["172.18.0.2/32"]}}}
    )
    policy = one(objects, "NetworkPolicy", "memplace-operator")
    assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"]
    (ingress,) = policy["spec"]["ingress"]
    assert {p["port"] for p in ingress["ports"]} == {8080, 8081}
    assert ingress["from"][0]["namespaceSelector"]["matchLabels"] == {
        "kubernetes.io/metadata.name": "monitoring"
    }
    api = policy["spec"]["egress"][0]
    assert api["to"] == [{"ipBlock": {"cidr": "172.18.0.2/32"}}]
    assert {p["port"] for p in api["ports"]} == {443, 6443}
    agent = one(objects, "NetworkPolicy", "memplace-agent")
    assert {p["port"] for p in agent["spec"]["ingress"][0]["ports"]} == {9401}
    assert agent["spec"]["egress"] == [api]


def test_the_image_can_be_pinned_by_digest():
    digest = "sha256:" + "a" * 64
    objects = render_chart({"image": {"digest": digest}})
    image = one(objects, "Deployment")["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image == f"ghcr.io/memplace/memplace@{digest}"


def test_notes_say_how_to_look_at_placements():
    with helm.Chart.load(CHART) as chart:
        rendered = chart.render({}, name="memplace", namespace=NAMESPACE)
    notes = rendered["memplace/templates/NOTES.txt"]
    assert "kubectl describe mdep" in notes
    assert "namespace memplace" in notes


def operator_args(values: dict) -> list[str]:
    deployment = one(render_chart(values), "Deployment", "memplace-operator")
    return deployment["spec"]["template"]["spec"]["containers"][0]["args"]


def test_without_a_prometheus_url_the_operator_measures_nothing_but_says_so():
    args = operator_args({})
    assert "--prometheus-url" not in args
    assert args[args.index("--measure-interval") + 1] == "30s"
    assert args[args.index("--measure-window") + 1] == "5m"
    assert args[args.index("--scrape") + 1] == "auto"


def test_the_prometheus_values_become_the_operators_flags_and_the_ca_is_mounted():
    values = {"prometheus": {
        "url": "https://prometheus.monitoring:9090",
        "tls": {"caConfigMap": "prometheus-ca", "caKey": "ca.pem"},
        "bearerTokenFile": "/var/run/secrets/kubernetes.io/serviceaccount/token",
        "measureInterval": "1m", "measureWindow": "10m", "scrape": "annotations"}}
    deployment = one(render_chart(values), "Deployment", "memplace-operator")
    pod = deployment["spec"]["template"]["spec"]
    args = pod["containers"][0]["args"]
    flags = {args[i]: args[i + 1] for i in range(len(args) - 1) if args[i].startswith("--")}
    assert flags["--prometheus-url"] == "https://prometheus.monitoring:9090"
    assert flags["--prometheus-ca-file"] == "/etc/memplace/prometheus-ca/ca.pem"
    assert flags["--prometheus-token-file"] == "/var/run/secrets/kubernetes.io/serviceaccount/token"
    assert (flags["--measure-interval"], flags["--measure-window"]) == ("1m", "10m")
    assert flags["--scrape"] == "annotations"
    assert "--prometheus-insecure" not in args
    [volume] = [v for v in pod["volumes"] if v["name"] == "prometheus-ca"]
    assert volume["configMap"] == {"name": "prometheus-ca",
                                   "items": [{"key": "ca.pem", "path": "ca.pem"}]}
    [mount] = [m for m in pod["containers"][0]["volumeMounts"] if m["name"] == "prometheus-ca"]
    assert mount == {"name": "prometheus-ca", "mountPath": "/etc/memplace/prometheus-ca",
                     "readOnly": True}


def test_a_prometheus_url_that_is_not_http_is_refused_at_install():
    with pytest.raises(Exception, match="url"):
        render_chart({"prometheus": {"url": "prometheus:9090"}})


TUNING_FLAGS = ("--resync", "--stuck-after", "--input-timeout", "--min-move-interval",
                "--move-timeout", "--consolidate-every", "--consolidation-threshold",
                "--disruption-budget", "--load-bandwidth", "--peering-lifetime")


def test_by_default_the_chart_leaves_the_operator_s_timings_to_the_operator():
    args = operator_args({})
    assert not [flag for flag in TUNING_FLAGS if flag in args]


def test_the_timing_values_become_flags_that_memplace_run_accepts():
    from memplace.cli import build_parser

    values = {"operator": {
        "resync": "5s", "stuckAfter": "5m", "inputTimeout": "2m",
        "moves": {"minInterval": "1h", "timeout": "20m"},
        "consolidation": {"every": "30m", "threshold": 0, "disruptionBudget": 0},
        "loadBandwidth": "1.5",
        "peering": {"enabled": True, "name": "memplace", "lifetime": "30s"}, "replicas": 2}}
    args = operator_args(values)
    flags = {args[i]: args[i + 1] for i in range(len(args) - 1) if args[i] in TUNING_FLAGS}
    assert flags == {
        "--resync": "5s", "--stuck-after": "5m", "--input-timeout": "2m",
        "--min-move-interval": "1h", "--move-timeout": "20m", "--consolidate-every": "30m",
        "--consolidation-threshold": "0", "--disruption-budget": "0",  # 0 is a value, not unset
        "--load-bandwidth": "1.5", "--peering-lifetime": "30s"}
    parsed = build_parser().parse_args(args)
    assert (parsed.resync, parsed.min_move_interval, parsed.disruption_budget) == ("5s", "1h", 0)
    assert parsed.consolidation_threshold == 0.0


@pytest.mark.parametrize("values", [
    {"operator": {"resync": "soon"}},
    {"operator": {"moves": {"minInterval": "-5m"}}},
    {"operator": {"consolidation": {"threshold": 1.5}}},
    {"operator": {"consolidation": {"disruptionBudget": -1}}},
    {"operator": {"loadBandwidth": "fast"}},
])
def test_a_timing_value_the_operator_would_refuse_is_refused_at_install(values):
    with pytest.raises(Exception, match="operator"):
        render_chart(values)


def test_the_install_doc_s_timing_table_names_the_operator_s_own_defaults():
    import re
    from pathlib import Path

    from memplace.cli import build_parser

    doc = (Path(__file__).resolve().parents[2] / "docs" / "install.md").read_text()
    rows = re.findall(r"^\| `operator\.([\w.]+)` \| `(--[\w-]+)` \| ([^|]+) \|$", doc, re.M)
    assert {flag for _, flag, _ in rows} == set(TUNING_FLAGS)
    run = build_parser()._subparsers._group_actions[0].choices["run"]  # noqa: SLF001
    defaults = {a.option_strings[0]: a.default for a in run._actions if a.option_strings}
    for _, flag, documented in rows:
        default = defaults[flag]
        if default is None:
            assert documented.startswith("off"), flag
        elif isinstance(default, float):
            assert float(documented.split()[0]) == default, flag
        else:
            assert documented.split()[0] == str(default), flag

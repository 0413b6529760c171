"""The Grafana dashboard ConfigMap: off by default; on, it carries the sidecar's label and the
dashboard file byte for byte. Its queries are checked against a real Prometheus in
tests/operator/test_dashboard_queries.py."""

from __future__ import annotations

import json

from .rendering import CHART, find, one, render_chart

DASHBOARD = CHART / "dashboards" / "memplace.json"


def test_no_dashboard_by_default():
    assert not [cm for cm in find(render_chart(), "ConfigMap") if "memplace.json" in cm["data"]]


def test_the_dashboard_configmap_carries_the_sidecar_label_and_the_file():
    objects = render_chart({"grafana": {"dashboard": {"enabled": True}}})
    configmap = one(objects, "ConfigMap", "memplace-dashboard")
    assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert configmap["data"]["memplace.json"] == DASHBOARD.read_text().rstrip("\n")
    assert json.loads(configmap["data"]["memplace.json"])["uid"] == "memplace-overview"


def test_labels_annotations_and_namespace_follow_the_values():
    values = {"grafana": {"dashboard": {
        "enabled": True, "labels": {"dashboards": "ml"}, "annotations": {"grafana_folder": "ML"},
        "namespace": "monitoring"}}}  # fmt: skip
    configmap = one(render_chart(values), "ConfigMap", "memplace-dashboard")
    assert configmap["metadata"]["namespace"] == "monitoring"
    assert configmap["metadata"]["labels"]["dashboards"] == "ml"
    assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"  # Helm merges maps
    assert configmap["metadata"]["annotations"] == {"grafana_folder": "ML"}


def test_every_panel_has_a_query_and_a_unit():
    dashboard = json.loads(DASHBOARD.read_text())
    for panel in dashboard["panels"]:
        assert panel["targets"] and all(t["expr"] for t in panel["targets"]), panel["title"]
        assert panel["fieldConfig"]["defaults"]["unit"], panel["title"]


def test_the_notes_name_the_dashboard_configmap_only_when_it_is_shipped():
    from .rendering import NAMESPACE, helm

    def notes(values):
        with helm.Chart.load(CHART) as chart:
            return chart.render(values, name="memplace", namespace=NAMESPACE)[
                "memplace/templates/NOTES.txt"
            ]

    assert "memplace-dashboard" not in notes({})
    assert "ConfigMap memplace-dashboard in memplace" in notes(
        {"grafana": {"dashboard": {"enabled": True}}}
    )

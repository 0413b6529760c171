"""scrape: a PodMonitor per deployment when the cluster serves that CRD, else prometheus.io/*
pod annotations; never both. Unit, and the real operator against KMock."""

from __future__ import annotations

import kmock
import pytest
from operator_support import DEPLOYMENTS, NS, add_pool, eventually, md_url, model_deployment

from memplace.operator import scrape

PODMONITORS = "monitoring.coreos.com/v1/podmonitors"
BODY = {"apiVersion": "memplace.io/v1alpha1", "kind": "ModelDeployment",
        "metadata": {"name": "summarizer", "namespace": NS, "uid": "u-1"}}


@pytest.mark.parametrize("mode, expected", [
    ("annotations", {"prometheus.io/scrape": "true", "prometheus.io/port": "8000",
                     "prometheus.io/path": "/metrics"}),
    ("podmonitor", {}), ("none", {}),
])
def test_only_the_annotations_mode_annotates_pods(mode, expected):
    assert scrape.pod_annotations(mode, 8000) == expected


def test_a_pod_monitor_selects_its_deployments_pods_and_is_owned_by_it():
    monitor = scrape.pod_monitor(BODY)
    assert (monitor["apiVersion"], monitor["kind"]) == ("monitoring.coreos.com/v1", "PodMonitor")
    assert (monitor["metadata"]["name"], monitor["metadata"]["namespace"]) == ("summarizer", NS)
    assert monitor["spec"]["selector"] == {"matchLabels": {"memplace.io/deployment": "summarizer"}}
    assert monitor["spec"]["podMetricsEndpoints"] == [{"port": "http", "path": "/metrics"}]
    [owner] = monitor["metadata"]["ownerReferences"]
    assert (owner["kind"], owner["uid"], owner["controller"]) == ("ModelDeployment", "u-1", True)


def template_annotations(cluster) -> dict:
    deployment = cluster.stored(DEPLOYMENTS, NS, "summarizer") or {}
    return deployment["spec"]["template"]["metadata"].get("annotations") or {}


async def test_without_the_podmonitor_crd_the_pods_carry_scrape_annotations(cluster, operator):
    await add_pool(cluster, "a100", 30.0)
    await cluster.create(md_url(), model_deployment("summarizer"))
    await eventually(lambda: cluster.stored(DEPLOYMENTS, NS, "summarizer"))
    assert template_annotations(cluster) == {
        "prometheus.io/scrape": "true", "prometheus.io/port": "8000",
        "prometheus.io/path": "/metrics"}


async def test_with_the_podmonitor_crd_each_deployment_gets_a_podmonitor_instead(
    cluster, start_operator
):
    cluster.resources[PODMONITORS] = kmock.ResourceInfo(
        kind="PodMonitor", singular="podmonitor", namespaced=True,
        verbs={"create", "delete", "get", "list", "patch", "watch"})
    async with start_operator():
        await add_pool(cluster, "a100", 30.0)
        await cluster.create(md_url(), model_deployment("summarizer"))
        monitor = await eventually(lambda: cluster.stored(PODMONITORS, NS, "summarizer"),
                                   what="the PodMonitor")
        assert monitor["spec"]["selector"]["matchLabels"] == {
            "memplace.io/deployment": "summarizer"}
        assert template_annotations(cluster) == {}  # never scraped twice

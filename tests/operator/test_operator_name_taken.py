"""A Deployment of the name memplace renders, owned by someone else, is never adopted or
overwritten; the deployment says so in status and a Warning (``NameTaken``) while it retries
every minute (the audit found it only in the operator's log)."""

from __future__ import annotations

from operator_support import (
    DEPLOYMENTS,
    NS,
    add_pool,
    condition,
    events_for,
    eventually,
    md_url,
    model_deployment,
    status_of,
)

FOREIGN = {
    "apiVersion": "apps/v1", "kind": "Deployment",
    "metadata": {"name": "summarizer", "namespace": NS, "labels": {"team": "other"}},
    "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "other"}},
             "template": {"metadata": {"labels": {"app": "other"}},
                          "spec": {"containers": [{"name": "web", "image": "nginx"}]}}},
}


async def test_a_name_taken_by_a_foreign_deployment_shows_in_status_and_a_warning(
    cluster, operator
):
    await add_pool(cluster, "a100", 30.0)
    await cluster.create(f"/apis/apps/v1/namespaces/{NS}/deployments", FOREIGN)
    await cluster.create(md_url(), model_deployment("summarizer"))

    warned = await eventually(lambda: events_for(cluster, "summarizer", "NameTaken"))
    assert "exists and is not owned by this ModelDeployment" in warned[0]["message"]
    assert warned[0]["type"] == "Warning"
    status = await eventually(lambda: (s := status_of(cluster, "summarizer")).get("message")
                              and s)
    assert "not owned" in status["message"]
    assert condition(status, "Placed")["reason"] == "NameTaken"
    stored = cluster.stored(DEPLOYMENTS, NS, "summarizer")
    assert stored["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx"  # untouched
    assert not stored["metadata"].get("ownerReferences")

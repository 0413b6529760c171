"""The KEDA HTTP add-on "installed" in KMock (its HTTPScaledObject resource served beside KEDA's
ScaledObject), with the real operator under the chart's RBAC: memplace owns an HTTPScaledObject
valid against the add-on's published schema, its ScaledObject carries the trigger on it (one
replica owner), and both follow a move to the successor Deployment. Without the add-on nothing
under http.keda.sh is asked for beyond discovery.

Prometheus is given as a loopback port that refuses: ``keda.keep`` needs ``--prometheus-url``
set, not answering (measuring fails and keeps the replicas, as it should), so these tests need
no prometheus binary.
"""

from __future__ import annotations

import asyncio

import kmock
from operator_support import DEPLOYMENTS, NS, add_pool, eventually, md_url, model_deployment
from test_keda import schema as scaled_object_schema
from test_keda_http import SCALER, validate
from test_operator_moves import owned, pool_of, selected, set_ready

from memplace.operator.prometheus import PrometheusConfig

SO = "keda.sh/v1alpha1/scaledobjects"
HTTPSO = "http.keda.sh/v1alpha1/httpscaledobjects"
REFUSED = PrometheusConfig(url="http://127.0.0.1:9", timeout_seconds=1)


def install(cluster, *resources: str) -> None:
    """Serve KEDA's resources, as if their CRDs were installed."""
    kinds = {SO: ("ScaledObject", "scaledobject"), HTTPSO: ("HTTPScaledObject", "httpscaledobject")}
    for resource in resources:
        kind, singular = kinds[resource]
        cluster.resources[resource] = kmock.ResourceInfo(
            kind=kind,
            singular=singular,
            namespaced=True,
            verbs={"create", "delete", "get", "list", "patch", "watch"},
        )


def scaled(name: str) -> dict:
    return model_deployment(
        name,
        scaling={
            "demand": "Measured",
            "minReplicas": 0,
            "maxReplicas": 3,
            "coldStart": "allowed",
            "idleAfterSeconds": 120,
        },
    )


async def test_with_the_http_add_on_memplace_owns_a_valid_httpso_that_follows_a_move(
    cluster, start_operator
):
    install(cluster, SO, HTTPSO)
    async with start_operator(prometheus=REFUSED, measure_window="3s", min_move_interval_seconds=0):
        await add_pool(cluster, "dear", 50.0)
        await cluster.create(md_url(), scaled("summarizer"))
        httpso = await eventually(
            lambda: cluster.stored(HTTPSO, NS, "summarizer"),
            timeout=30,
            what="the HTTPScaledObject",
        )
        validate(httpso)
        assert httpso["spec"]["scaleTargetRef"]["name"] == "summarizer"
        assert httpso["spec"]["scaleTargetRef"]["service"] == "summarizer"
        assert httpso["spec"]["hosts"][0] == f"summarizer.{NS}"
        assert httpso["spec"]["replicas"] == {"min": 0, "max": 3}
        assert httpso["metadata"]["annotations"] == {
            "httpscaledobject.keda.sh/skip-scaledobject-creation": "true"
        }
        assert httpso["metadata"]["ownerReferences"][0]["kind"] == "ModelDeployment"
        so = await eventually(lambda: cluster.stored(SO, NS, "summarizer"), what="ScaledObject")
        import jsonschema

        jsonschema.validate(so, scaled_object_schema())
        assert so["spec"]["triggers"][-1] == {
            "type": "external-push",
            "name": "http",
            "metadata": {"scalerAddress": SCALER, "httpScaledObject": "summarizer"},
        }

        # A cheaper pool: a move. Once the successor serves, both objects point at it.
        await set_ready(cluster, "summarizer")
        await add_pool(cluster, "cheap", 10.0)
        [successor] = await eventually(
            lambda: [n for n, d in owned(cluster, "summarizer").items() if pool_of(d) == "cheap"],
            what="the successor Deployment",
        )
        await set_ready(cluster, successor)
        await eventually(lambda: selected(cluster, "summarizer") == successor, what="the switch")
        await eventually(
            lambda: (
                cluster.stored(HTTPSO, NS, "summarizer")["spec"]["scaleTargetRef"]["name"]
                == successor
            ),
            timeout=30,
            what="the HTTPScaledObject on the successor",
        )
        await eventually(
            lambda: (
                cluster.stored(SO, NS, "summarizer")["spec"]["scaleTargetRef"]["name"] == successor
            ),
            timeout=30,
            what="the ScaledObject on the successor",
        )
        validate(cluster.stored(HTTPSO, NS, "summarizer"))
        assert cluster.stored(DEPLOYMENTS, NS, successor) is not None


async def test_without_the_add_on_only_its_discovery_is_asked(cluster, start_operator):
    install(cluster, SO)
    async with start_operator(prometheus=REFUSED, measure_window="3s"):
        await add_pool(cluster, "dear", 50.0)
        await cluster.create(md_url(), scaled("summarizer"))
        so = await eventually(
            lambda: cluster.stored(SO, NS, "summarizer"), timeout=30, what="the ScaledObject"
        )
        assert [t["type"] for t in so["spec"]["triggers"]] == ["prometheus"]
        await asyncio.sleep(2)  # several measurement windows
    asked = [(r.method.value, r.url.path) for r in cluster.seen() if "http.keda.sh" in r.url.path]
    assert asked == [("GET", "/apis/http.keda.sh/v1alpha1")]

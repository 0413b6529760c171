"""The KEDA HTTP add-on's HTTPScaledObject: the first request to a cold model wakes it.

Where the cluster serves ``http.keda.sh/v1alpha1`` ``httpscaledobjects`` (the add-on's CRD),
the add-on's interceptor can hold a request for a Deployment at zero replicas while KEDA
scales it up, then forward it: the request that finds the model cold is the one that wakes it,
with no Prometheus query in between. :func:`http_scaled_object` renders the object memplace
owns for that, named as the ModelDeployment, in its namespace, owned by it:

- ``scaleTargetRef``: the Deployment that serves, and the model's Service by its port *name*
  (``http``, as ``render.render_service`` names it: it survives a ``spec.runtime.port`` edit);
- ``hosts``: the Service's in-cluster DNS names (``NAME.NAMESPACE``, ``NAME.NAMESPACE.svc``,
  ``NAME.NAMESPACE.svc.cluster.local``, the last for the default cluster domain). The
  interceptor routes by the ``Host`` header (port stripped), so a client calls the
  interceptor's proxy Service with ``Host:`` set to one of these. The spec has no field for a
  host and none is invented: a gateway in front rewrites ``Host`` to one of them. No
  ``pathPrefixes``: every path of the model's API is routed;
- ``scalingMetric.concurrency``: requests in flight, ``targetValue`` = ``spec.workload.
  concurrency`` × ``targetUtilization`` (rounded down, at least 1). Concurrency, not
  ``requestRate``: an LLM request lasts from a second to minutes, so requests per second says
  little about load, while requests in flight is exactly what a replica was sized for
  (``spec.workload.concurrency`` sequences: its KV cache and its SLO);
- ``replicas``: ``min`` = ``spec.scaling.minReplicas``, ``max`` = ``maxReplicas`` or the
  plan's replicas, and ``scaledownPeriod`` = ``idleAfterSeconds``: the same bounds and
  cool-down as memplace's ScaledObject (``keda.scaled_object``).

**One owner of the replica count.** By default the add-on creates a ScaledObject of its own for
every HTTPScaledObject, named as it (kedacore/http-add-on ``operator/controllers/http/
scaled_object.go``): named as memplace's ScaledObject, the two would overwrite each other, and
two scalers on one Deployment fight. So the HTTPScaledObject carries
``httpscaledobject.keda.sh/skip-scaledobject-creation: "true"`` — the add-on then creates no
ScaledObject (``operator/controllers/http/app.go``) — and memplace's ScaledObject stays the
only one, with a third trigger, :func:`trigger`: ``external-push`` to the add-on's external
scaler with ``httpScaledObject`` naming this object, the add-on's documented way to combine its
scaler with others (its e2e check ``tests/checks/scaling_phase_deployment_with_skip_so_
creation_httpso``). KEDA's HPA runs the highest of the three triggers' replica counts: the
token demand, the wake-up query and the interceptor's requests in flight. With the skip
annotation the add-on reads only the routing fields and ``scalingMetric``; ``replicas`` and
``scaledownPeriod`` are rendered equal to the ScaledObject's so the object reads true.

The external scaler's address is ``--keda-http-scaler`` (default :data:`SCALER`, where the
add-on's own manifests put it). The object is checked against the add-on's published CRD
schema in the tests (``tests/fixtures/keda/http.keda.sh_httpscaledobjects.yaml``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from memplace.planning import scaling

from . import kube, render
from .settings import Settings
from .state import State

__all__ = [
    "HTTP",
    "PORT_NAME",
    "SCALER",
    "SKIP_SCALED_OBJECT",
    "hosts",
    "http_scaled_object",
    "present",
    "target_value",
    "trigger",
]

HTTP = "http.keda.sh/v1alpha1"
SKIP_SCALED_OBJECT = "httpscaledobject.keda.sh/skip-scaledobject-creation"
"""The add-on creates no ScaledObject for an HTTPScaledObject annotated ``"true"``
(kedacore/http-add-on ``operator/controllers/http/app.go``)."""
SCALER = Settings.keda_http_scaler
"""The add-on's external scaler (gRPC) as its manifests install it: Service ``external-scaler``
port 9090 (``config/scaler/service.yaml``) with the name prefix ``keda-add-ons-http-`` in
namespace ``keda`` (``config/scaler/kustomization.yaml``); kedacore/http-add-on at commit
59b2f6a115ad735a108d830f4d525f8462497c7d; its e2e tests use the same address
(``test/helpers/env.go``)."""
PORT_NAME = "http"
"""The model Service's port name (``render.render_service``)."""


def hosts(name: str, namespace: str) -> list[str]:
    """The Service's in-cluster DNS names, shortest first: what a client's ``Host`` header may
    say when it calls the interceptor for this model."""
    short = f"{name}.{namespace}"
    return [short, f"{short}.svc", f"{short}.svc.cluster.local"]


def bounds(fields: Mapping[str, Any], policy: scaling.Policy) -> tuple[int, int, int]:
    """Replicas min and max, and the seconds idle before zero, that the ScaledObject and the
    HTTPScaledObject both render: ``minReplicas``; ``maxReplicas``, else the replicas the plan
    sized the placement for; ``idleAfterSeconds``, else KEDA's own default of 300 s
    (keda.sh/docs, "Scaling Deployments", cooldownPeriod)."""
    planned = int(((fields.get("placement") or {}).get("replicas")) or 1)
    idle = int(policy.idle_after_seconds or 300)
    return policy.min_replicas, policy.max_replicas or planned, idle


def target_value(concurrency: int, policy: scaling.Policy) -> int:
    """Requests in flight per replica the add-on's metric aims at: the concurrency a replica was
    sized for, times the headroom, rounded down so the headroom is never exceeded; at least 1."""
    return max(1, int(concurrency * policy.target_utilization + 1e-9))


def http_scaled_object(
    body: Mapping[str, Any],
    deployment: str,
    fields: Mapping[str, Any],
    policy: scaling.Policy,
    concurrency: int,
) -> dict[str, Any]:
    """The HTTPScaledObject of one ModelDeployment (named as it, in its namespace, owned by it),
    scaling Deployment ``deployment`` behind the model's Service."""
    owner = render.Owner.of(body)
    low, high, idle = bounds(fields, policy)
    return {
        "apiVersion": HTTP,
        "kind": "HTTPScaledObject",
        "metadata": {
            "name": owner.name,
            "namespace": owner.namespace,
            "labels": render.labels_for(owner.name),
            "annotations": {SKIP_SCALED_OBJECT: "true"},
            "ownerReferences": [owner.reference()],
        },
        "spec": {
            "hosts": hosts(owner.name, owner.namespace),
            "scaleTargetRef": {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "name": deployment,
                "service": owner.name,
                "portName": PORT_NAME,
            },
            "replicas": {"min": low, "max": high},
            "scaledownPeriod": idle,
            "scalingMetric": {"concurrency": {"targetValue": target_value(concurrency, policy)}},
        },
    }


def trigger(name: str, scaler: str) -> dict[str, Any]:
    """The trigger of memplace's ScaledObject that asks the add-on's external scaler about
    HTTPScaledObject ``name`` (in the ScaledObject's namespace)."""
    return {
        "type": "external-push",
        "name": "http",
        "metadata": {"scalerAddress": scaler, "httpScaledObject": name},
    }


async def present(state: State, api: kube.Kube) -> bool:
    """Whether the cluster serves the add-on's HTTPScaledObjects (discovery, once per run)."""
    if state.keda_http is None:
        state.keda_http = await kube.serves(api, HTTP, "httpscaledobjects")
    return state.keda_http

"""KEDA's ScaledObject for a scaled ModelDeployment: scale-from-zero by KEDA, inside the plan.

When KEDA's CRDs are in the cluster (``keda.sh/v1alpha1`` serves ``scaledobjects``), the
ecosystem's scaler is the better one to wake a cold model: it runs next to the HPA and reacts
within its polling interval. :func:`scaled_object` renders the object memplace owns for that:

- ``scaleTargetRef``: the Deployment that serves;
- ``minReplicaCount``: ``spec.scaling.minReplicas`` (0 lets KEDA scale to zero);
  ``maxReplicaCount``: ``spec.scaling.maxReplicas``, else the replicas the plan sized the
  placement for: KEDA moves replicas inside the plan, memplace still chooses the placement;
- a ``prometheus`` trigger on the demand query (generated tokens per second over the
  deployment's pods, the same PromQL as ``promql``), ``threshold`` = a replica's estimated
  throughput × ``targetUtilization``: KEDA's HPA then runs demand ÷ threshold replicas, what
  ``planning.scaling`` computes;
- with a wake-up query, a second ``prometheus`` trigger with ``activationThreshold: "0"``:
  traffic at the gateway wakes a model that has no pods to measure;
- where the KEDA HTTP add-on is installed, an ``external-push`` trigger to its scaler
  (``keda_http.trigger``): the add-on's interceptor holds the first request to a cold model and
  wakes it. memplace then also owns the model's HTTPScaledObject, annotated so that the add-on
  makes no ScaledObject of its own: this ScaledObject stays the one owner of the replica count
  (``keda_http``).

The trigger metadata keys are those of KEDA's Prometheus scaler (``serverAddress``, ``query``,
``threshold``, ``activationThreshold``: kedacore/keda ``pkg/scalers/prometheus_scaler.go``); the
object is checked against KEDA's published CRD schema in the tests
(``tests/fixtures/keda/keda.sh_scaledobjects.yaml``).

When :func:`present` finds KEDA and ``--prometheus-url`` is set, a ``spec.scaling`` deployment
with ``coldStart: allowed`` is scaled by KEDA (:func:`manages`): the measurement loop keeps its
ScaledObject (and HTTPScaledObject) pointed at the serving Deployment every window
(:func:`keep`, also after a move) and re-plans nothing for the demand, and every apply keeps the
replicas KEDA set.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from memplace.planning import scaling

from . import inputs, keda_http, kube, promql, render
from .state import State

__all__ = ["KEDA", "keep", "manages", "present", "scaled_object"]

KEDA = "keda.sh/v1alpha1"
PLURALS = {"ScaledObject": "scaledobjects", "HTTPScaledObject": "httpscaledobjects"}
"""The resource of each KEDA kind memplace writes."""


def scaled_object(
    body: Mapping[str, Any],
    deployment: str,
    fields: Mapping[str, Any],
    policy: scaling.Policy,
    *,
    prometheus_url: str,
    window: str,
    wake_query: str | None = None,
    http_scaler: str | None = None,
) -> dict[str, Any]:
    """The ScaledObject of one ModelDeployment (named as it, in its namespace, owned by it);
    ``http_scaler``: the HTTP add-on's external scaler, for the trigger on its
    HTTPScaledObject of the same name."""
    owner = render.Owner.of(body)
    low, high, cooldown = keda_http.bounds(fields, policy)
    engine = ((body.get("spec") or {}).get("runtime") or {}).get("engine") or "vllm"
    matchers = f'namespace="{owner.namespace}",pod=~"{deployment}-.*"'
    demand = next(
        q.promql
        for q in promql.queries(engine, matchers, window)
        if q.figure == "output_tokens_per_second"
    )
    per_replica = ((fields.get("estimate") or {}).get("outputTokensPerSecondPerReplica")) or 1.0
    triggers: list[dict[str, Any]] = [
        {
            "type": "prometheus",
            "name": "demand",
            "metadata": {
                "serverAddress": prometheus_url,
                "query": demand,
                "threshold": f"{per_replica * policy.target_utilization:.3f}",
            },
        }
    ]
    if wake_query:
        query = wake_query.replace("{namespace}", owner.namespace).replace("{name}", owner.name)
        triggers.append(
            {
                "type": "prometheus",
                "name": "wake",
                "metadata": {
                    "serverAddress": prometheus_url,
                    "query": query,
                    "threshold": "1",
                    "activationThreshold": "0",
                },
            }
        )
    if http_scaler:
        triggers.append(keda_http.trigger(owner.name, http_scaler))
    return {
        "apiVersion": KEDA,
        "kind": "ScaledObject",
        "metadata": {
            "name": owner.name,
            "namespace": owner.namespace,
            "labels": render.labels_for(owner.name),
            "ownerReferences": [owner.reference()],
        },
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": deployment},
            "minReplicaCount": low,
            "maxReplicaCount": high,
            "cooldownPeriod": cooldown,
            "advanced": {
                "horizontalPodAutoscalerConfig": {
                    "behavior": {
                        "scaleUp": {"stabilizationWindowSeconds": int(policy.scale_up_seconds)},
                        "scaleDown": {"stabilizationWindowSeconds": int(policy.scale_down_seconds)},
                    }
                }
            },
            "triggers": triggers,
        },
    }


def manages(state: State, spec: Mapping[str, Any]) -> bool:
    """KEDA scales this deployment: KEDA found, Prometheus known, and a scaled spec that may go
    cold (``coldStart: allowed``)."""
    scaling_spec = spec.get("scaling") or {}
    return (
        bool(state.keda)
        and state.settings.prometheus is not None
        and (scaling_spec.get("coldStart") == "allowed")
    )


async def present(state: State, api: kube.Kube) -> bool:
    """Whether the cluster serves KEDA's ScaledObjects (discovery, once per operator run)."""
    if state.keda is None:
        state.keda = await kube.serves(api, KEDA, "scaledobjects")
    return state.keda


async def keep(state: State, api: kube.Kube, body: Mapping[str, Any], serving: str) -> None:
    """The deployment's KEDA objects, pointed at Deployment ``serving``: the HTTPScaledObject
    first where the HTTP add-on is installed (the ScaledObject's trigger names it), then the
    ScaledObject, which is kept even when the HTTPScaledObject fails (a move must still retarget
    it); the first failure is raised after both were tried. Nothing without ``spec.scaling``
    or Prometheus; ``http.keda.sh`` is only asked about (discovery) once KEDA is found."""
    try:
        spec = inputs.parse_spec(body.get("spec") or {})
    except inputs.InvalidSpec:
        return  # the reconcile reports it
    policy = scaling.Policy.from_spec(spec)
    prometheus = state.settings.prometheus
    if policy is None or prometheus is None:
        return
    http = await keda_http.present(state, api)
    failed: Exception | None = None
    if http:
        wanted_http = keda_http.http_scaled_object(
            body, serving, body.get("status") or {}, policy, spec.workload.concurrency
        )
        try:
            await _ensure(api, wanted_http)
        except Exception as error:  # noqa: BLE001 — the ScaledObject is still kept
            failed = error
    wanted = scaled_object(
        body,
        serving,
        body.get("status") or {},
        policy,
        prometheus_url=prometheus.url,
        window=state.settings.measure_window,
        wake_query=(spec.scaling.wake_query if spec.scaling else None) or state.settings.wake_query,
        http_scaler=state.settings.keda_http_scaler if http else None,
    )
    await _ensure(api, wanted)
    if failed is not None:
        raise failed


def _url(wanted: Mapping[str, Any], name: bool = True) -> str:
    meta = wanted["metadata"]
    return kube.path(
        wanted["apiVersion"],
        PLURALS[wanted["kind"]],
        meta["namespace"],
        meta["name"] if name else None,
    )


async def _ensure(api: kube.Kube, wanted: Mapping[str, Any]) -> None:
    """Create ``wanted`` (a ScaledObject or an HTTPScaledObject), or merge-patch its spec and
    the annotations memplace sets where the stored one differs."""
    meta = wanted["metadata"]
    stored = await api.get(_url(wanted))
    if stored is None:
        try:
            await api.create(_url(wanted, name=False), dict(wanted))
            return
        except kube.Conflict:
            pass
    annotations = meta.get("annotations") or {}
    held = ((stored or {}).get("metadata") or {}).get("annotations") or {}
    patch: dict[str, Any] = {}
    if stored is None or stored.get("spec") != wanted["spec"]:
        patch["spec"] = wanted["spec"]
    if any(held.get(k) != v for k, v in annotations.items()):
        patch["metadata"] = {"annotations": dict(annotations)}
    if patch:
        await api.merge_patch(_url(wanted), patch)

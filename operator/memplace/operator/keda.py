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
  traffic at the gateway wakes a model that has no pods to measure.

The trigger metadata keys are those of KEDA's Prometheus scaler (``serverAddress``, ``query``,
``threshold``, ``activationThreshold``: kedacore/keda ``pkg/scalers/prometheus_scaler.go``); the
object is checked against KEDA's published CRD schema in the tests
(``tests/fixtures/keda/keda.sh_scaledobjects.yaml``).

When :func:`present` finds KEDA and ``--prometheus-url`` is set, a ``spec.scaling`` deployment
with ``coldStart: allowed`` is scaled by KEDA (:func:`manages`): the measurement loop keeps its
ScaledObject pointed at the serving Deployment every window (:func:`ensure`, also after a move)
and re-plans nothing for the demand, and every apply keeps the replicas KEDA set.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from memplace.planning import scaling

from . import kube, promql, render
from .state import State

__all__ = ["KEDA", "ensure", "manages", "present", "scaled_object"]

KEDA = "keda.sh/v1alpha1"


def scaled_object(
    body: Mapping[str, Any],
    deployment: str,
    fields: Mapping[str, Any],
    policy: scaling.Policy,
    *,
    prometheus_url: str,
    window: str,
    wake_query: str | None = None,
) -> dict[str, Any]:
    """The ScaledObject of one ModelDeployment (named as it, in its namespace, owned by it)."""
    meta = body.get("metadata") or {}
    owner = render.Owner(name=meta["name"], namespace=meta["namespace"], uid=meta["uid"])
    engine = ((body.get("spec") or {}).get("runtime") or {}).get("engine") or "vllm"
    matchers = f'namespace="{owner.namespace}",pod=~"{deployment}-.*"'
    demand = next(q.promql for q in promql.queries(engine, matchers, window)
                  if q.figure == "output_tokens_per_second")
    per_replica = ((fields.get("estimate") or {}).get("outputTokensPerSecondPerReplica")) or 1.0
    planned = int(((fields.get("placement") or {}).get("replicas")) or 1)
    triggers: list[dict[str, Any]] = [{
        "type": "prometheus",
        "name": "demand",
        "metadata": {
            "serverAddress": prometheus_url,
            "query": demand,
            "threshold": f"{per_replica * policy.target_utilization:.3f}",
        },
    }]
    if wake_query:
        query = wake_query.replace("{namespace}", owner.namespace).replace("{name}", owner.name)
        triggers.append({
            "type": "prometheus",
            "name": "wake",
            "metadata": {"serverAddress": prometheus_url, "query": query,
                         "threshold": "1", "activationThreshold": "0"},
        })
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
            "minReplicaCount": policy.min_replicas,
            "maxReplicaCount": policy.max_replicas or max(planned, 1),
            # KEDA waits cooldownPeriod after the last active trigger before going to zero;
            # its default is 300 s (keda.sh/docs, "Scaling Deployments", cooldownPeriod).
            "cooldownPeriod": int(policy.idle_after_seconds or 300),
            "advanced": {"horizontalPodAutoscalerConfig": {"behavior": {
                "scaleUp": {"stabilizationWindowSeconds": int(policy.scale_up_seconds)},
                "scaleDown": {"stabilizationWindowSeconds": int(policy.scale_down_seconds)},
            }}},
            "triggers": triggers,
        },
    }


def manages(state: State, spec: Mapping[str, Any]) -> bool:
    """KEDA scales this deployment: KEDA found, Prometheus known, and a scaled spec that may go
    cold (``coldStart: allowed``)."""
    scaling_spec = spec.get("scaling") or {}
    return bool(state.keda) and state.settings.prometheus is not None and (
        scaling_spec.get("coldStart") == "allowed"
    )


async def present(state: State, api: kube.Kube) -> bool:
    """Whether the cluster serves KEDA's ScaledObjects (discovery, once per operator run)."""
    if state.keda is None:
        try:
            found = await api.get(f"/apis/{KEDA}")
        except Exception:  # noqa: BLE001 — discovery refused or failing: no KEDA
            found = None
        names = {r.get("name") for r in (found or {}).get("resources") or []}
        state.keda = "scaledobjects" in names
    return state.keda


async def ensure(api: kube.Kube, scaled: Mapping[str, Any], stored: Mapping[str, Any] | None
                 ) -> None:
    """Create the ScaledObject, or merge-patch its spec when it differs from ``stored``."""
    meta = scaled["metadata"]
    url = kube.path(KEDA, "scaledobjects", meta["namespace"])
    if stored is None:
        try:
            await api.create(url, dict(scaled))
            return
        except kube.Conflict:
            pass
    elif stored.get("spec") == scaled["spec"]:
        return
    await api.merge_patch(f"{url}/{meta['name']}", {"spec": scaled["spec"]})

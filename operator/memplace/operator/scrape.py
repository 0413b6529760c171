"""How Prometheus finds the model pods: a PodMonitor when the cluster has the CRD, else the usual
``prometheus.io/*`` pod annotations; ``--scrape`` chooses (chart value ``prometheus.scrape``).

- ``auto`` (the default): discovery decides, once per operator run: the PodMonitor CRD of the
  Prometheus Operator (``monitoring.coreos.com/v1``, resource ``podmonitors``) served → PodMonitors,
  else annotations;
- ``podmonitor``: one PodMonitor per ModelDeployment, in its namespace, owned by it (the garbage
  collector deletes it with it), selecting its pods (``memplace.io/deployment``) on the engine's
  ``http`` port, ``/metrics``. The Prometheus Operator labels each target with ``namespace`` and
  ``pod``, which is what ``promql.selector`` matches;
- ``annotations``: ``prometheus.io/scrape: "true"``, ``prometheus.io/port`` and
  ``prometheus.io/path`` on the pod template, as the ``kubernetes-pods`` job of Prometheus'
  example configuration and the prometheus-community chart read them (that job relabels
  ``__meta_kubernetes_namespace`` and ``__meta_kubernetes_pod_name`` to ``namespace`` and ``pod``);
- ``none``: the cluster's own configuration scrapes the pods (or nothing does).

Never both at once: a pod scraped by a PodMonitor and by an annotation job would count twice in
every ``sum`` of ``promql``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Any, Literal

from . import kube, render
from .state import State

__all__ = [
    "MODES",
    "Mode",
    "ensure_pod_monitor",
    "pod_annotations",
    "pod_monitor",
    "resolve",
]

Mode = Literal["auto", "podmonitor", "annotations", "none"]
MODES: tuple[Mode, ...] = ("auto", "podmonitor", "annotations", "none")
MONITORING = "monitoring.coreos.com/v1"


async def resolve(state: State, api: kube.Kube) -> Mode:
    """``--scrape``, with ``auto`` settled by discovery once per run (kept in ``state``)."""
    if state.scrape_mode is None:
        state.scrape_mode = await _discovered(state.settings.scrape, api)
    return state.scrape_mode


async def _discovered(wanted: Mode, api: kube.Kube) -> Mode:
    if wanted != "auto":
        return wanted
    return "podmonitor" if await kube.serves(api, MONITORING, "podmonitors") else "annotations"


def pod_annotations(mode: Mode, port: int) -> dict[str, str]:
    """The pod template's scrape annotations in ``mode`` (none unless ``annotations``)."""
    if mode != "annotations":
        return {}
    return {
        "prometheus.io/scrape": "true",
        "prometheus.io/port": str(port),
        "prometheus.io/path": "/metrics",
    }


def pod_monitor(body: Mapping[str, Any]) -> dict[str, Any]:
    """The PodMonitor of one ModelDeployment (named as it, in its namespace, owned by it)."""
    owner = render.Owner.of(body)
    return {
        "apiVersion": MONITORING,
        "kind": "PodMonitor",
        "metadata": {
            "name": owner.name,
            "namespace": owner.namespace,
            "labels": render.labels_for(owner.name),
            "ownerReferences": [owner.reference()],
        },
        "spec": {
            "selector": {"matchLabels": {render.DEPLOYMENT_LABEL: owner.name}},
            "podMetricsEndpoints": [{"port": "http", "path": "/metrics"}],
        },
    }


async def ensure_pod_monitor(api: kube.Kube, body: Mapping[str, Any]) -> None:
    """Create the deployment's PodMonitor unless it exists (its spec never changes)."""
    monitor = pod_monitor(body)
    url = kube.path(MONITORING, "podmonitors", monitor["metadata"]["namespace"])
    with contextlib.suppress(kube.Conflict):  # already there
        await api.create(url, monitor)

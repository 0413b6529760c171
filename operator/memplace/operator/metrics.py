"""Prometheus metrics of the operator, on their own registry, served at ``/metrics``.

- ``memplace_deployments{phase}``: ModelDeployments by phase.
- ``memplace_placement_cost_per_hour{namespace,name,pool,precision,tier}``: USD per hour.
- ``memplace_estimated_gpu_memory_bytes{namespace,name,pool,precision,tier}``: per GPU.
- ``memplace_plan_duration_seconds``: time to plan one deployment (histogram).
- ``memplace_reconcile_errors_total{kind}``: reconciles that raised.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

__all__ = ["REGISTRY", "Metrics"]

REGISTRY = CollectorRegistry(auto_describe=True)
PHASES = ("Pending", "Placed", "Ready", "Unschedulable", "Invalid")
PLACEMENT_LABELS = ("namespace", "name", "pool", "precision", "tier")

DEPLOYMENTS = Gauge(
    "memplace_deployments", "ModelDeployments by phase.", ["phase"], registry=REGISTRY
)
COST = Gauge(
    "memplace_placement_cost_per_hour",
    "Placement cost in USD per hour.",
    PLACEMENT_LABELS,
    registry=REGISTRY,
)
GPU_MEMORY = Gauge(
    "memplace_estimated_gpu_memory_bytes",
    "Estimated GPU memory per GPU of a placement.",
    PLACEMENT_LABELS,
    registry=REGISTRY,
)
PLAN_DURATION = Histogram(
    "memplace_plan_duration_seconds",
    "Time to plan one deployment.",
    registry=REGISTRY,
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
ERRORS = Counter(
    "memplace_reconcile_errors_total", "Reconciles that failed.", ["kind"], registry=REGISTRY
)


class Metrics:
    """Per-run bookkeeping so that series of deleted or moved deployments disappear."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._phases: dict[tuple[str, str], str] = {}
        self._series: dict[tuple[str, str], tuple[str, ...]] = {}
        self._server: Any = None
        COST.clear()  # a new run rebuilds every series from the cluster
        GPU_MEMORY.clear()
        for phase in PHASES:
            DEPLOYMENTS.labels(phase).set(0)

    def serve(self, port: int, host: str = "0.0.0.0") -> int:
        """Start the /metrics endpoint; return its port (useful with port 0)."""
        server, _thread = start_http_server(port, addr=host, registry=REGISTRY)
        self._server = server
        return int(server.server_address[1])

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def observe(self, namespace: str, name: str, status: Mapping[str, Any]) -> None:
        """Record a deployment's phase, cost and estimate from its (new) status."""
        key = (namespace, name)
        placement = status.get("placement") or {}
        with self._lock:
            self._phases[key] = str(status.get("phase") or "Pending")
            self._count()
            old = self._series.pop(key, None)
            if old is not None:
                _remove(old)
            if placement:
                labels = (
                    namespace,
                    name,
                    str(placement.get("pool")),
                    str(placement.get("precision")),
                    str(placement.get("tier")),
                )
                per_hour = (status.get("cost") or {}).get("perHour")
                if per_hour is not None:
                    COST.labels(*labels).set(per_hour)
                per_gpu = (status.get("estimate") or {}).get("totalBytesPerGpu")
                if per_gpu is not None:
                    GPU_MEMORY.labels(*labels).set(per_gpu)
                self._series[key] = labels

    def forget(self, namespace: str, name: str) -> None:
        with self._lock:
            self._phases.pop((namespace, name), None)
            self._count()
            old = self._series.pop((namespace, name), None)
            if old is not None:
                _remove(old)

    def _count(self) -> None:
        counts = dict.fromkeys(PHASES, 0)
        for phase in self._phases.values():
            counts[phase] = counts.get(phase, 0) + 1
        for phase, count in counts.items():
            DEPLOYMENTS.labels(phase).set(count)


def _remove(labels: tuple[str, ...]) -> None:
    for gauge in (COST, GPU_MEMORY):
        with contextlib.suppress(KeyError):
            gauge.remove(*labels)

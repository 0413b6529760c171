"""Prometheus metrics of the operator, on their own registry, served at ``/metrics``.

- ``memplace_deployments{phase}``: ModelDeployments by phase.
- ``memplace_placement_cost_per_hour{namespace,name,pool,precision,tier}``: USD per hour.
- ``memplace_estimated_gpu_memory_bytes{namespace,name,pool,precision,tier}``: per GPU.
- ``memplace_plan_duration_seconds``: time to plan one deployment (histogram).
- ``memplace_reconcile_errors_total{kind}``: reconciles that raised.

Measured by the engines (``measure``), per placement, over ``--measure-window``:

- ``memplace_measured_time_to_first_token_seconds{…,quantile}`` and
  ``memplace_measured_time_per_output_token_seconds{…,quantile}``: ``quantile`` is ``0.5``,
  ``0.95`` or ``mean`` (an engine without a histogram gives only the mean);
- ``memplace_measured_output_tokens_per_second``, ``memplace_measured_kv_cache_usage_ratio``,
  ``memplace_measured_requests_running``, ``memplace_measured_requests_waiting``;
- ``memplace_estimate_error_ratio{…,figure}``: measured ÷ estimated (``timeToFirstToken``,
  ``timePerOutputToken``, ``gpuMemoryPerReplica``).
"""

from __future__ import annotations

import contextlib
import threading
import time
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
SPEND = Counter(
    "memplace_cost_usd",
    "What a deployment has cost since the operator started, in USD: its cost per hour "
    "integrated over time (increase(memplace_cost_usd_total[24h]) is the last day's cost).",
    ("namespace", "name"),
    registry=REGISTRY,
)
COST_LAST_24H = Gauge(
    "memplace_cost_last_24h_usd",
    "status.cost.last24h: the estimated cost of the last 24 hours (spec.scaling).",
    ("namespace", "name"),
    registry=REGISTRY,
)
REPLICAS = Gauge(
    "memplace_replicas",
    "Replicas of a deployment's placement, labelled hot, warm or cold (status.tier).",
    ("namespace", "name", "heat"),
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
LATENCY_LABELS = (*PLACEMENT_LABELS, "quantile")
MEASURED_TTFT = Gauge(
    "memplace_measured_time_to_first_token_seconds",
    "Time to first token the engine measured over the window.",
    LATENCY_LABELS,
    registry=REGISTRY,
)
MEASURED_TPOT = Gauge(
    "memplace_measured_time_per_output_token_seconds",
    "Time per output token the engine measured over the window.",
    LATENCY_LABELS,
    registry=REGISTRY,
)
MEASURED_TOKENS = Gauge(
    "memplace_measured_output_tokens_per_second",
    "Output tokens per second, all replicas, over the window.",
    PLACEMENT_LABELS,
    registry=REGISTRY,
)
MEASURED_KV = Gauge(
    "memplace_measured_kv_cache_usage_ratio",
    "KV-cache share in use (0-1), fullest replica, averaged over the window.",
    PLACEMENT_LABELS,
    registry=REGISTRY,
)
MEASURED_RUNNING = Gauge(
    "memplace_measured_requests_running",
    "Requests being generated, all replicas, averaged over the window.",
    PLACEMENT_LABELS,
    registry=REGISTRY,
)
MEASURED_WAITING = Gauge(
    "memplace_measured_requests_waiting",
    "Requests queued, all replicas, averaged over the window.",
    PLACEMENT_LABELS,
    registry=REGISTRY,
)
ESTIMATE_ERROR = Gauge(
    "memplace_estimate_error_ratio",
    "Measured divided by estimated, per figure.",
    (*PLACEMENT_LABELS, "figure"),
    registry=REGISTRY,
)
_MEASURED_PLAIN = (
    (MEASURED_TOKENS, "outputTokensPerSecond"),
    (MEASURED_KV, "kvCacheUsage"),
    (MEASURED_RUNNING, "requestsRunning"),
    (MEASURED_WAITING, "requestsWaiting"),
)
_MEASURED_LATENCY = ((MEASURED_TTFT, "timeToFirstTokenMs"), (MEASURED_TPOT, "timePerOutputTokenMs"))
_QUANTILES = (("p50", "0.5"), ("p95", "0.95"), ("mean", "mean"))
_GAUGES_MEASURED = (MEASURED_TTFT, MEASURED_TPOT, *(gauge for gauge, _ in _MEASURED_PLAIN))


class Metrics:
    """Per-run bookkeeping so that series of deleted or moved deployments disappear."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._phases: dict[tuple[str, str], str] = {}
        self._series: dict[tuple[str, str], tuple[str, ...]] = {}
        self._server: Any = None
        self._measured: dict[tuple[str, str], list[tuple[Gauge, tuple[str, ...]]]] = {}
        self._spending: dict[tuple[str, str], tuple[float, float]] = {}  # (per hour, since)
        COST.clear()  # a new run rebuilds every series from the cluster
        for gauge in (SPEND, COST_LAST_24H, REPLICAS):
            gauge.clear()
        GPU_MEMORY.clear()
        for gauge in (*_GAUGES_MEASURED, ESTIMATE_ERROR):
            gauge.clear()
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

    def accrue(self, namespace: str, name: str, per_hour: float | None = None) -> None:
        """Add what the deployment cost since the last call to ``memplace_cost_usd_total``;
        ``per_hour`` (when given) is its cost from now on."""
        key, now = (namespace, name), time.monotonic()
        with self._lock:
            rate, since = self._spending.get(key, (0.0, now))
            if rate > 0 and now > since:
                SPEND.labels(namespace, name).inc(rate * (now - since) / 3600.0)
            self._spending[key] = (rate if per_hour is None else per_hour, now)

    def observe(self, namespace: str, name: str, status: Mapping[str, Any]) -> None:
        """Record a deployment's phase, cost and estimate from its (new) status."""
        key = (namespace, name)
        placement = status.get("placement") or {}
        cost = status.get("cost") or {}
        self.accrue(namespace, name, float(cost.get("perHour") or 0.0) if placement else 0.0)
        if cost.get("last24h") is not None:
            COST_LAST_24H.labels(namespace, name).set(cost["last24h"])
        if status.get("tier"):
            for heat in ("hot", "warm", "cold"):
                with contextlib.suppress(KeyError):
                    REPLICAS.remove(namespace, name, heat)
            REPLICAS.labels(namespace, name, status["tier"]).set(placement.get("replicas") or 0)
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

    def observe_measured(
        self,
        namespace: str,
        name: str,
        placement: Mapping[str, Any],
        measured: Mapping[str, Any] | None,
    ) -> None:
        """Set the measured series of a deployment from its new ``status.measured`` fields;
        None (nothing measured this window) leaves the last figures in place."""
        if measured is None:
            return
        labels = (
            namespace,
            name,
            str(placement.get("pool")),
            str(placement.get("precision")),
            str(placement.get("tier")),
        )
        series: list[tuple[Gauge, tuple[str, ...]]] = []
        for gauge, field in _MEASURED_PLAIN:
            if measured.get(field) is not None:
                series.append((gauge, labels))
                gauge.labels(*labels).set(measured[field])
        for gauge, field in _MEASURED_LATENCY:
            for key, quantile in _QUANTILES:
                value = (measured.get(field) or {}).get(key)
                if value is not None:
                    series.append((gauge, (*labels, quantile)))
                    gauge.labels(*labels, quantile).set(value / 1000)
        for figure, ratio in (measured.get("estimateError") or {}).items():
            if ratio is not None:
                series.append((ESTIMATE_ERROR, (*labels, figure)))
                ESTIMATE_ERROR.labels(*labels, figure).set(ratio)
        with self._lock:
            self._drop_measured((namespace, name), keep=series)
            self._measured[(namespace, name)] = series

    def forget(self, namespace: str, name: str) -> None:
        with self._lock:
            self._phases.pop((namespace, name), None)
            self._count()
            old = self._series.pop((namespace, name), None)
            if old is not None:
                _remove(old)
            self._drop_measured((namespace, name))
            self._spending.pop((namespace, name), None)
            for gauge, labels in ((SPEND, ()), (COST_LAST_24H, ()), *(
                (REPLICAS, (heat,)) for heat in ("hot", "warm", "cold")
            )):
                with contextlib.suppress(KeyError):
                    gauge.remove(namespace, name, *labels)

    def _drop_measured(
        self, key: tuple[str, str], keep: list[tuple[Gauge, tuple[str, ...]]] = ()
    ) -> None:
        """Remove the measured series of ``key`` that are not in ``keep`` (a move or a figure
        that is no longer measured must not leave a stale series behind)."""
        for gauge, labels in self._measured.pop(key, []):
            if (gauge, labels) not in keep:
                with contextlib.suppress(KeyError):
                    gauge.remove(*labels)

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

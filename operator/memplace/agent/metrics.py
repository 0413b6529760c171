"""Prometheus metrics of the agent, on its own registry (served by ``serve``).

GPU gauges carry ``node``, ``gpu`` (the NVML index), ``uuid`` and ``model``; they are rebuilt on
every sample, so a GPU that disappears stops being exported instead of freezing at its last value.
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest, start_http_server

from memplace.agent.report import NodeSample

__all__ = ["AgentMetrics"]

_GPU_LABELS = ("node", "gpu", "uuid", "model")


class AgentMetrics:
    def __init__(self, node_name: str, registry: CollectorRegistry | None = None) -> None:
        self.node_name = node_name
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.total = Gauge(
            "memplace_gpu_memory_total_bytes", "GPU memory, total.", _GPU_LABELS, registry=r
        )
        self.used = Gauge(
            "memplace_gpu_memory_used_bytes", "GPU memory in use.", _GPU_LABELS, registry=r
        )
        self.free = Gauge(
            "memplace_gpu_memory_free_bytes", "GPU memory free.", _GPU_LABELS, registry=r
        )
        self.healthy = Gauge(
            "memplace_gpu_healthy",
            "1 if NVML read the GPU without error.",
            _GPU_LABELS,
            registry=r,
        )
        self.nvml_errors = Counter(
            "memplace_nvml_errors", "NVML errors met, by NVML error class.", ("kind",), registry=r
        )
        self.last_sample = Gauge(
            "memplace_agent_last_sample_timestamp_seconds",
            "When the agent last sampled (Unix time).",
            registry=r,
        )
        self.publish_errors = Counter(
            "memplace_agent_publish_errors",
            "Reports that could not be written after retries.",
            registry=r,
        )

    def observe(self, sample: NodeSample) -> None:
        """Set the gauges from one sample and count its NVML errors."""
        for gauge in (self.total, self.used, self.free, self.healthy):
            gauge.clear()
        for gpu in sample.gpus:
            labels = (self.node_name, str(gpu.index), gpu.uuid or "", gpu.name or "")
            self.healthy.labels(*labels).set(1 if gpu.healthy else 0)
            for gauge, value in (
                (self.total, gpu.memory_total_bytes),
                (self.used, gpu.memory_used_bytes),
                (self.free, gpu.memory_free_bytes),
            ):
                if value is not None:
                    gauge.labels(*labels).set(value)
        self.count_nvml_errors(sample.error_kinds)
        self.last_sample.set(sample.observed_at.timestamp())

    def count_nvml_errors(self, kinds: Iterable[str]) -> None:
        for kind in kinds:
            self.nvml_errors.labels(kind).inc()

    def publish_failed(self) -> None:
        self.publish_errors.inc()

    def text(self) -> str:
        """The exposition text, as a scrape would get it."""
        return generate_latest(self.registry).decode()

    def serve(self, port: int, addr: str = "0.0.0.0") -> None:
        """Serve ``/metrics`` on ``port`` from a daemon thread."""
        start_http_server(port, addr=addr, registry=self.registry)

"""The agent's Prometheus metrics, as a scrape reads them."""

from __future__ import annotations

from datetime import UTC, datetime

from prometheus_client.parser import text_string_to_metric_families

from memplace.agent.host import HostSample
from memplace.agent.metrics import AgentMetrics
from memplace.agent.nvml import PynvmlSampler
from memplace.agent.report import NodeSample

OBSERVED_AT = datetime(2025, 6, 1, 12, 0, 0, tzinfo=UTC)


def scraped(metrics: AgentMetrics) -> dict[tuple[str, frozenset], float]:
    """(sample name, labels) → value, parsed from the exposition text."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(metrics.text())
        for sample in family.samples
    }


def gpu_labels(index: int, uuid: str, model: str = "NVIDIA L4") -> frozenset:
    labels = {"node": "gpu-node-1", "gpu": str(index), "uuid": uuid, "model": model}
    return frozenset(labels.items())


def test_metrics_text_has_the_gpu_gauges_with_labels(nvml_fixture) -> None:
    metrics = AgentMetrics("gpu-node-1")
    sampling = PynvmlSampler(nvml_fixture("gpu-lost")).sample()
    metrics.observe(NodeSample.of(OBSERVED_AT, sampling, HostSample()))
    metrics.publish_failed()

    values = scraped(metrics)
    good = gpu_labels(0, "GPU-aaaa0000-bbbb-cccc-dddd-eeeeffff0000")
    lost = gpu_labels(1, "GPU-aaaa0000-bbbb-cccc-dddd-eeeeffff0001")
    assert values["memplace_gpu_memory_total_bytes", good] == 24152899584
    assert values["memplace_gpu_memory_used_bytes", good] == 2147483648
    assert values["memplace_gpu_memory_free_bytes", good] == 24152899584 - 2147483648
    assert values["memplace_gpu_healthy", good] == 1
    assert values["memplace_gpu_healthy", lost] == 0
    assert ("memplace_gpu_memory_total_bytes", lost) not in values
    errors = frozenset({"kind": "NVMLError_GpuIsLost"}.items())
    assert values["memplace_nvml_errors_total", errors] == 1
    stamp = values["memplace_agent_last_sample_timestamp_seconds", frozenset()]
    assert stamp == OBSERVED_AT.timestamp()
    assert values["memplace_agent_publish_errors_total", frozenset()] == 1


def test_a_gpu_that_disappears_is_no_longer_exported(nvml_fixture) -> None:
    metrics = AgentMetrics("n")
    fake = nvml_fixture("h100x2")
    sampler = PynvmlSampler(fake)
    metrics.observe(NodeSample.of(OBSERVED_AT, sampler.sample(), HostSample()))
    assert 'gpu="1"' in metrics.text()

    fake.gpus.pop()
    metrics.observe(NodeSample.of(OBSERVED_AT, sampler.sample(), HostSample()))
    assert 'gpu="1"' not in metrics.text()


def test_metrics_are_served_over_http(nvml_fixture, unused_tcp_port: int) -> None:
    import urllib.request

    metrics = AgentMetrics("gpu-node-1")
    metrics.observe(
        NodeSample.of(OBSERVED_AT, PynvmlSampler(nvml_fixture("h100x2")).sample(), HostSample())
    )
    metrics.serve(unused_tcp_port, addr="127.0.0.1")
    with urllib.request.urlopen(f"http://127.0.0.1:{unused_tcp_port}/metrics") as response:
        body = response.read().decode()
    assert "memplace_gpu_memory_free_bytes{" in body

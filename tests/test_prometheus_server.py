"""The test helper itself: a real Prometheus scrapes a loopback exporter and answers PromQL."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry, Gauge, start_http_server


@pytest.fixture()
def exporter() -> Iterator[tuple[str, Gauge]]:
    registry = CollectorRegistry()
    gauge = Gauge("memplace_test_value", "A value the test sets.", ["namespace", "pod"],
                  registry=registry)
    server, thread = start_http_server(0, addr="127.0.0.1", registry=registry)
    try:
        yield f"127.0.0.1:{server.server_address[1]}", gauge
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_prometheus_scrapes_the_exporter_and_keeps_its_namespace_and_pod_labels(
    prometheus, exporter
):
    target, gauge = exporter
    gauge.labels("ml", "summarizer-abc").set(42)
    server = prometheus([target])
    server.wait_until_scraped()
    [series] = server.wait_for('memplace_test_value{namespace="ml"}')
    assert series["metric"]["pod"] == "summarizer-abc"
    assert series["metric"]["job"] == "engines"  # honor_labels keeps ours, adds the job
    assert float(series["value"][1]) == 42.0


def test_a_stopped_server_no_longer_answers(prometheus, exporter):
    import httpx

    server = prometheus([exporter[0]])
    server.stop()
    with pytest.raises(httpx.HTTPError):
        server.query("up")

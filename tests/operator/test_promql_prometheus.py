"""The PromQL of ``promql`` answered by a real Prometheus scraping the fake vLLM exporter: the
quantile and rate arithmetic, and the renamed metrics. Skips without a prometheus binary."""

from __future__ import annotations

import asyncio
import datetime

import pytest

from memplace.operator import measure
from memplace.operator.prometheus import Prometheus, PrometheusConfig


async def measured(server, pods: list[str], *, until, timeout: float = 30.0):
    """Measure ``pods`` until ``until(measurement)`` holds (scrapes need a few seconds)."""
    client = Prometheus(PrometheusConfig(url=server.url))
    try:
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            now = datetime.datetime.now(datetime.UTC)  # the instant Prometheus evaluates at
            found = await measure.measure_one(client, "vllm", "ml", pods, "10s", now)
            if until(found):
                return found
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"never measured what was wanted: {found}")
            await asyncio.sleep(0.5)
    finally:
        await client.close()


async def test_replicas_histograms_are_added_before_the_quantile_is_taken(prometheus, fake_engine):
    engine = fake_engine()
    engine.set("ml", "summarizer-a", tpot_seconds=0.02, ttft_seconds=0.3)  # bucket (0.01, 0.025]
    engine.set("ml", "summarizer-b", tpot_seconds=0.06, ttft_seconds=0.3)  # bucket (0.05, 0.075]
    engine.set("ml", "someone-else", tpot_seconds=5.0)  # not this deployment's pod
    server = prometheus([engine.target])
    found = await measured(server, ["summarizer-a", "summarizer-b"],
                           until=lambda m: "tpot_p95" in m.figures and "ttft_p95" in m.figures)
    # Half the tokens are at most 25 ms, so the median is the bucket bound 25 ms; the p95 lies
    # 90 % into (50, 75] ms: 72.5 ms. Averaging each pod's own p95 would give ~49 ms instead.
    assert found.figures["tpot_p50"] == pytest.approx(0.025, rel=0.1)
    assert found.figures["tpot_p95"] == pytest.approx(0.0725, rel=0.05)
    # 300 ms lies in (250, 500] ms: Prometheus interpolates linearly within the bucket.
    assert found.figures["ttft_p50"] == pytest.approx(0.375, rel=0.05)


async def test_generated_tokens_are_a_rate_over_all_replicas_and_gauges_add_up(
    prometheus, fake_engine
):
    engine = fake_engine(tick=0.05, tokens_per_tick=10)  # 200 tokens/s per pod
    engine.set("ml", "summarizer-a", running=3, waiting=1, kv_cache_usage=0.2)
    engine.set("ml", "summarizer-b", running=5, waiting=2, kv_cache_usage=0.7)
    server = prometheus([engine.target])
    # A full 10 s window of 1 s scrapes: rate() over a part-filled one extrapolates less.
    server.wait_for('count_over_time({__name__=~"vllm.num_requests_running",pod="summarizer-b"}'
                    '[10s]) >= 9')
    found = await measured(server, ["summarizer-a", "summarizer-b"], until=lambda m: True)
    assert found.figures["output_tokens_per_second"] == pytest.approx(
        2 * engine.tokens_per_second_per_pod, rel=0.15)  # scrape timing jitters a little
    assert found.figures["requests_running"] == pytest.approx(8)
    assert found.figures["requests_waiting"] == pytest.approx(3)
    assert found.figures["kv_cache_usage"] == pytest.approx(0.7)  # the fullest replica


async def test_an_older_vllm_is_read_under_its_old_names(prometheus, fake_engine):
    engine = fake_engine(legacy=True)  # vllm:time_per_output_token_seconds, gpu_cache_usage_perc
    engine.set("ml", "summarizer-a", tpot_seconds=0.04, kv_cache_usage=0.5)
    server = prometheus([engine.target])
    found = await measured(server, ["summarizer-a"], until=lambda m: "tpot_p95" in m.figures)
    assert 0.025 < found.figures["tpot_p95"] <= 0.05  # the (25, 50] ms bucket
    assert found.figures["kv_cache_usage"] == pytest.approx(0.5)


async def test_a_pod_without_traffic_gives_reasons_not_numbers(prometheus, fake_engine):
    engine = fake_engine()
    engine.set("ml", "summarizer-a")
    server = prometheus([engine.target])
    server.wait_until_scraped()
    found = await measured(server, ["summarizer-idle"], until=lambda m: True)
    assert found.failure is None and not found.figures
    assert "no samples" in found.missing["tpot_p95"]

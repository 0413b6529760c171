"""A fake engine exporter: vLLM-format metrics for pods that do not exist, with settable latency.

It stands in for the model pods of KMock (which runs no containers) behind a real Prometheus
(``prometheus_server``, ``honor_labels: true``): every series carries the ``namespace`` and
``pod`` labels of a pod the test created in the emulator, as the Prometheus Operator's
relabelling would give them, plus vLLM's own ``model_name`` and ``engine`` labels.

A background thread "serves traffic" every ``tick`` seconds: per pod, one request's time to
first token and ``tokens_per_tick`` inter-token latencies (more after a late tick: the tokens
follow the wall clock) are observed into the histograms (with
vLLM's own bucket bounds, vllm/v1/metrics/loggers.py), the generated-tokens counter grows by the
same count, and the gauges hold the pod's KV-cache usage and requests running / waiting.
:meth:`FakeEngine.set` changes what a pod measures from then on. ``legacy=True`` exports the
names vLLM used before its renames (``time_per_output_token_seconds``,
``gpu_cache_usage_perc``: vLLM ≤ 0.9.1 / ≤ 0.10.1) instead of the current ones.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, replace

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

__all__ = ["FakeEngine", "PodLoad"]

# vllm/v1/metrics/loggers.py: the buckets of vllm:time_to_first_token_seconds and
# vllm:time_per_output_token_seconds / vllm:inter_token_latency_seconds.
TTFT_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0,
                7.5, 10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0)
TPOT_BUCKETS = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0,
                7.5, 10.0, 20.0, 40.0, 80.0)
LABELS = ("namespace", "pod", "model_name", "engine")
CURRENT_NAMES = ("vllm:inter_token_latency_seconds", "vllm:kv_cache_usage_perc")
LEGACY_NAMES = ("vllm:time_per_output_token_seconds", "vllm:gpu_cache_usage_perc")


@dataclass(frozen=True)
class PodLoad:
    """What one pod measures per request and holds at any moment."""

    ttft_seconds: float = 0.2
    tpot_seconds: float = 0.03
    kv_cache_usage: float = 0.4
    running: float = 4.0
    waiting: float = 0.0


class FakeEngine:
    """A /metrics endpoint on 127.0.0.1; :attr:`target` is its ``host:port`` for Prometheus."""

    def __init__(self, *, tick: float = 0.05, tokens_per_tick: int = 10, legacy: bool = False):
        self.registry = CollectorRegistry()
        self.tick = tick
        self.tokens_per_tick = tokens_per_tick
        tpot, kv = LEGACY_NAMES if legacy else CURRENT_NAMES
        self._ttft = Histogram("vllm:time_to_first_token_seconds", "TTFT.", LABELS,
                               buckets=TTFT_BUCKETS, registry=self.registry)
        self._tpot = Histogram(tpot, "Inter-token latency.", LABELS, buckets=TPOT_BUCKETS,
                               registry=self.registry)
        self._tokens = Counter("vllm:generation_tokens", "Generated tokens.", LABELS,
                               registry=self.registry)
        self._kv = Gauge(kv, "KV-cache usage.", LABELS, registry=self.registry)
        self._running = Gauge("vllm:num_requests_running", "Running.", LABELS,
                              registry=self.registry)
        self._waiting = Gauge("vllm:num_requests_waiting", "Waiting.", LABELS,
                              registry=self.registry)
        self._pods: dict[tuple[str, str], PodLoad] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._server, self._server_thread = start_http_server(
            0, addr="127.0.0.1", registry=self.registry
        )
        self.target = f"127.0.0.1:{self._server.server_address[1]}"
        self._traffic = threading.Thread(target=self._serve_traffic, daemon=True)
        self._traffic.start()

    def set(self, namespace: str, pod: str, **load: float) -> None:
        """Serve ``pod`` (adding it if new) with these figures from the next tick on."""
        with self._lock:
            self._pods[(namespace, pod)] = replace(self._pods.get((namespace, pod), PodLoad()),
                                                   **load)

    @property
    def tokens_per_second_per_pod(self) -> float:
        return self.tokens_per_tick / self.tick

    def _serve_traffic(self) -> None:
        """Tokens follow the wall clock (a late tick catches up), so the rate is exact."""
        started = time.monotonic()
        served: dict[tuple[str, str], int] = {}
        while not self._stop.wait(self.tick):
            with self._lock:
                pods = dict(self._pods)
            due = int((time.monotonic() - started) * self.tokens_per_second_per_pod)
            for (namespace, pod), load in pods.items():
                labels = (namespace, pod, "Qwen/Qwen3-8B", "0")
                tokens = due - served.get((namespace, pod), due - self.tokens_per_tick)
                served[(namespace, pod)] = due
                self._ttft.labels(*labels).observe(load.ttft_seconds)
                tpot = self._tpot.labels(*labels)
                for _ in range(tokens):
                    tpot.observe(load.tpot_seconds)
                self._tokens.labels(*labels).inc(tokens)
                self._kv.labels(*labels).set(load.kv_cache_usage)
                self._running.labels(*labels).set(load.running)
                self._waiting.labels(*labels).set(load.waiting)

    def close(self) -> None:
        self._stop.set()
        self._traffic.join()
        self._server.shutdown()
        self._server.server_close()
        self._server_thread.join()

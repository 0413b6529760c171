"""The PromQL memplace asks, per engine, and how each answer becomes a figure. Pure.

One query per figure, over one deployment's pods (``namespace`` and ``pod`` labels, as the
Prometheus Operator's PodMonitor and the usual ``kubernetes_sd`` relabelling name them) and one
window (``5m``). Every query aggregates across the replicas, so that each answer is one number:

- latency quantiles: ``histogram_quantile(q, sum by (le) (rate(<name>_bucket{…}[w])))``: the
  replicas' bucket rates are added *before* the quantile is taken, which is the only correct way
  to combine histograms (averaging per-pod quantiles is not a quantile of anything);
- a mean from totals: ``sum(rate(<seconds>[w])) / sum(rate(<count>[w]))`` (llama.cpp server, which
  exports no latency histogram);
- throughput: ``sum(rate(<tokens counter>[w]))``; a counter reset (a pod restart) is handled by
  ``rate`` itself;
- gauges: averaged over the window per pod (``avg_over_time``), then summed (requests running and
  waiting: the deployment's load, which issue 13's measured demand reads too) or the largest
  taken (KV-cache usage: the fullest replica is the one that starts queueing first).

Renamed metrics are read under both names, the new one first: ``new or (old unless on() new)``
keeps the old name's answer only when the new name has none, so an engine that exports both
during a deprecation window (vLLM 0.10.2–0.11) is not counted twice. A name with a colon is
also read with the colon as ``_``: prometheus_client ≥ 0.22 writes ``vllm_generation_tokens_total``
in the samples of an OpenMetrics scrape that asks for no escaping scheme (Prometheus 2.x does
not), while its ``# TYPE`` line keeps ``vllm:`` (prometheus/client_python#1177). docs/metrics.md
lists every name and the engine versions that introduced or renamed it.

:func:`figure` turns Prometheus' JSON answer into a float, or a :class:`NoFigure` saying why not:
an empty vector (not scraped, or no such metric), NaN (a quantile or a ratio over a window with
no requests: 0/0), +Inf (the quantile lies in the ``+Inf`` bucket), a negative or malformed
value. Nothing here raises on what Prometheus returns.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "ENGINES",
    "FIGURES",
    "EngineMetrics",
    "NoFigure",
    "Query",
    "figure",
    "duration_seconds",
    "queries",
    "selector",
]

FIGURES = (
    "ttft_p50",
    "ttft_p95",
    "ttft_mean",
    "tpot_p50",
    "tpot_p95",
    "tpot_mean",
    "output_tokens_per_second",
    "kv_cache_usage",
    "requests_running",
    "requests_waiting",
)
"""Every figure a query can give; an engine gives a subset (:attr:`EngineMetrics.reads`)."""

_DURATION = re.compile(r"^([0-9]+(ms|s|m|h|d|w|y))+$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}
_POD = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")


@dataclass(frozen=True)
class EngineMetrics:
    """The metric names one engine exports; each tuple is (current name, older names…).

    ``None``: the engine exports nothing for that figure, and :attr:`missing` says so."""

    label: str
    ttft_histogram: tuple[str, ...] | None = None
    tpot_histogram: tuple[str, ...] | None = None
    tpot_seconds_total: str | None = None
    """A counter of seconds spent generating (mean TPOT = its rate ÷ the tokens' rate)."""
    output_tokens_total: tuple[str, ...] | None = None
    output_tokens_histogram_sum: str | None = None
    """Tokens counted per finished request as a histogram's ``_sum`` (TGI)."""
    kv_cache_usage: tuple[str, ...] | None = None
    requests_running: tuple[str, ...] | None = None
    requests_waiting: tuple[str, ...] | None = None
    missing: Mapping[str, str] | None = None
    """Why figures are not measured, by figure-name prefix (`ttft` covers ttft_p50 …)."""


ENGINES: dict[str, EngineMetrics] = {
    # vllm/v1/metrics/loggers.py (vllm-project/vllm): PrometheusStatLogger. Renames: "Deprecated
    # in 0.9.2 - Renamed as vllm:kv_cache_usage_perc" (gpu_cache_usage_perc removed in 0.12) and
    # "Deprecated in 0.11 - Renamed as vllm:inter_token_latency_seconds" (time_per_output_token
    # hidden in 0.12, removed later). Counters get prometheus_client's `_total` suffix.
    "vllm": EngineMetrics(
        label="vLLM",
        ttft_histogram=("vllm:time_to_first_token_seconds",),
        tpot_histogram=("vllm:inter_token_latency_seconds", "vllm:time_per_output_token_seconds"),
        output_tokens_total=("vllm:generation_tokens_total",),
        kv_cache_usage=("vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc"),
        requests_running=("vllm:num_requests_running",),
        requests_waiting=("vllm:num_requests_waiting",),
    ),
    # llama.cpp tools/server (ggml-org/llama.cpp), server_task_result_metrics::to_metrics(), served
    # with --metrics: counters llamacpp:tokens_predicted_total / tokens_predicted_seconds_total,
    # gauges requests_processing / requests_deferred; kv_cache_usage_ratio only in older builds.
    "llamacpp": EngineMetrics(
        label="llama.cpp server",
        tpot_seconds_total="llamacpp:tokens_predicted_seconds_total",
        output_tokens_total=("llamacpp:tokens_predicted_total",),
        kv_cache_usage=("llamacpp:kv_cache_usage_ratio",),
        requests_running=("llamacpp:requests_processing",),
        requests_waiting=("llamacpp:requests_deferred",),
        missing={
            "ttft": "llama.cpp server exports no time-to-first-token metric",
            "tpot_p": "llama.cpp server exports totals, not a histogram: mean only",
        },
    ),
    # text-generation-inference router (huggingface/text-generation-inference), router/src:
    # histograms tgi_request_mean_time_per_token_duration and tgi_request_generated_tokens,
    # gauges tgi_batch_current_size and tgi_queue_size.
    "tgi": EngineMetrics(
        label="TGI",
        tpot_histogram=("tgi_request_mean_time_per_token_duration",),
        output_tokens_histogram_sum="tgi_request_generated_tokens_sum",
        requests_running=("tgi_batch_current_size",),
        requests_waiting=("tgi_queue_size",),
        missing={
            "ttft": "TGI exports no time-to-first-token metric",
            "kv_cache_usage": "TGI exports no KV-cache usage",
        },
    ),
}


@dataclass(frozen=True)
class Query:
    """One figure's PromQL."""

    figure: str
    promql: str


@dataclass(frozen=True)
class NoFigure:
    """Why a query gave no number (a reason for status, never an exception)."""

    reason: str
    unreachable: bool = False
    """The server did not answer usefully at all (connection, timeout, HTTP, auth): no other
    query will fare better, and the whole measurement is Unknown for this reason."""


def selector(namespace: str, pods: Sequence[str]) -> str:
    """``namespace="ml",pod=~"a-1|a-2"``: the label matchers for these pods.

    Pod names are DNS subdomains (lowercase letters, digits, ``-`` and ``.``): a ``.`` is
    escaped, anything else is refused, so no name can change the query's meaning."""
    if not pods:
        raise ValueError("no pods to measure")
    for name in (namespace, *pods):
        if not _POD.match(name):
            raise ValueError(f"{name!r} is not a Kubernetes name")
    alternatives = "|".join(sorted({pod.replace(".", "\\\\.") for pod in pods}))
    return f'namespace="{namespace}",pod=~"{alternatives}"'


def duration_seconds(window: str) -> float:
    """Seconds in a Prometheus duration: ``5m`` → 300, ``1h30m`` → 5400."""
    if not _DURATION.match(window):
        raise ValueError(f"{window!r} is not a Prometheus duration such as 5m")
    return sum(int(n) * _UNIT_SECONDS[unit] for n, unit in re.findall(r"([0-9]+)(ms|s|m|h|d|w|y)",
                                                                      window))


def queries(engine: str, matchers: str, window: str) -> list[Query]:
    """The queries for ``engine`` over ``matchers`` (:func:`selector`) and ``window``.

    Raises ValueError for an engine memplace cannot read or a malformed window."""
    metrics = ENGINES.get(engine)
    if metrics is None:
        raise ValueError(f"memplace reads no metrics of engine {engine!r}")
    if not _DURATION.match(window):
        raise ValueError(f"{window!r} is not a Prometheus duration such as 5m")
    found: list[Query] = []
    if metrics.ttft_histogram:
        for q, name in ((0.5, "ttft_p50"), (0.95, "ttft_p95")):
            found.append(Query(name, _quantile(q, metrics.ttft_histogram, matchers, window)))
    if metrics.tpot_histogram:
        for q, name in ((0.5, "tpot_p50"), (0.95, "tpot_p95")):
            found.append(Query(name, _quantile(q, metrics.tpot_histogram, matchers, window)))
    if metrics.tpot_seconds_total and metrics.output_tokens_total:
        found.append(Query("tpot_mean", _fallback([
            f"sum(rate({seconds}{{{matchers}}}[{window}])) / "
            f"sum(rate({tokens}{{{matchers}}}[{window}]))"
            for seconds, tokens in zip(
                _spellings([metrics.tpot_seconds_total]),
                _spellings([metrics.output_tokens_total[0]]),
                strict=True,
            )
        ])))
    if metrics.output_tokens_total:
        found.append(Query("output_tokens_per_second", _fallback([
            f"sum(rate({name}{{{matchers}}}[{window}]))"
            for name in _spellings(metrics.output_tokens_total)
        ])))
    elif metrics.output_tokens_histogram_sum:
        name = metrics.output_tokens_histogram_sum
        rate = f"sum(rate({name}{{{matchers}}}[{window}]))"
        found.append(Query("output_tokens_per_second", rate))
    if metrics.kv_cache_usage:
        found.append(Query("kv_cache_usage", _fallback([
            f"max(avg_over_time({name}{{{matchers}}}[{window}]))"
            for name in _spellings(metrics.kv_cache_usage)
        ])))
    for figure_name, names in (
        ("requests_running", metrics.requests_running),
        ("requests_waiting", metrics.requests_waiting),
    ):
        if names:
            found.append(Query(figure_name, _fallback([
                f"sum(avg_over_time({name}{{{matchers}}}[{window}]))"
                for name in _spellings(names)
            ])))
    return found


def _spellings(names: Sequence[str]) -> list[str]:
    """Each name, then its colon-escaped spelling (``vllm:x`` → ``vllm_x``), in that order."""
    found: list[str] = []
    for name in names:
        found.append(name)
    for name in names:
        if ":" in name:
            found.append(name.replace(":", "_"))
    return found


def _quantile(q: float, names: Sequence[str], matchers: str, window: str) -> str:
    return _fallback([
        f"histogram_quantile({q}, sum by (le) (rate({name}_bucket{{{matchers}}}[{window}])))"
        for name in _spellings(names)
    ])


def _fallback(expressions: Sequence[str]) -> str:
    """``a or (b unless on() a)``: the first expression that has an answer, never two at once."""
    text = expressions[-1]
    for newer in reversed(expressions[:-1]):
        text = f"{newer} or ({text} unless on() {newer})"
    return text


def figure(body: Any) -> float | NoFigure:
    """The one number in an instant-query answer (the parsed JSON of ``/api/v1/query``).

    An answer with several series (a query that did not aggregate) is refused rather than
    guessed at."""
    if not isinstance(body, Mapping):
        return NoFigure(f"Prometheus answered {type(body).__name__}, not a JSON object")
    if body.get("status") != "success":
        error = body.get("error") or "no error message"
        return NoFigure(f"Prometheus answered {body.get('errorType') or 'an error'}: {error}")
    data = body.get("data")
    if not isinstance(data, Mapping) or "result" not in data:
        return NoFigure("Prometheus answered without data.result")
    kind, result = data.get("resultType"), data.get("result")
    if kind == "scalar":
        result = [{"value": result}]
    elif kind != "vector":
        return NoFigure(f"Prometheus answered a {kind!r}, not an instant vector")
    if not isinstance(result, list):
        return NoFigure("Prometheus answered a malformed result")
    if not result:
        return NoFigure("no samples in the window (not scraped yet, or the metric is absent)")
    if len(result) > 1:
        return NoFigure(f"{len(result)} series where one was expected")
    sample = result[0].get("value") if isinstance(result[0], Mapping) else None
    if not isinstance(sample, list | tuple) or len(sample) != 2:
        return NoFigure("Prometheus answered a malformed sample")
    try:
        value = float(sample[1])
    except (TypeError, ValueError):
        return NoFigure(f"Prometheus answered {sample[1]!r}, not a number")
    if math.isnan(value):
        return NoFigure("no requests in the window")
    if value < 0:
        return NoFigure(f"a negative value ({value})")
    if math.isinf(value):
        return NoFigure("above the largest histogram bucket")
    return value

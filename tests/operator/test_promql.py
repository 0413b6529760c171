"""promql: the queries built per engine, and every shape of answer turned into a figure or a
reason. Pure; the same queries against a real Prometheus are in test_promql_prometheus.py."""

from __future__ import annotations

import math

import pytest

from memplace.operator import promql
from memplace.operator.promql import NoFigure

SELECTOR = promql.selector("ml", ["summarizer-7d9-abc", "summarizer-7d9-def"])


def by_figure(engine: str) -> dict[str, str]:
    return {q.figure: q.promql for q in promql.queries(engine, SELECTOR, "5m")}


def vector(*values: object) -> dict:
    return {"status": "success", "data": {"resultType": "vector", "result": [
        {"metric": {}, "value": [1700000000.0, value]} for value in values]}}


def test_the_selector_names_the_pods_and_escapes_what_a_regex_would_read():
    assert SELECTOR == 'namespace="ml",pod=~"summarizer-7d9-abc|summarizer-7d9-def"'
    assert promql.selector("ml", ["a.b"]) == 'namespace="ml",pod=~"a\\\\.b"'


@pytest.mark.parametrize("namespace, pods", [
    ("ml", []), ("ml", ['x"}) or vector(1']), ("ML", ["a"]), ("ml", ["a|b"]),
])
def test_a_selector_refuses_what_is_not_a_kubernetes_name(namespace, pods):
    with pytest.raises(ValueError):
        promql.selector(namespace, pods)


def test_vllm_quantiles_add_the_replicas_buckets_before_taking_the_quantile():
    queries = by_figure("vllm")
    assert queries["ttft_p95"].startswith(
        "histogram_quantile(0.95, sum by (le) "
        f"(rate(vllm:time_to_first_token_seconds_bucket{{{SELECTOR}}}[5m]))) or ("
    )
    assert queries["ttft_p50"].startswith("histogram_quantile(0.5, sum by (le)")


def test_a_colon_name_is_also_read_as_prometheus_client_escapes_it_in_openmetrics():
    # prometheus/client_python#1177: samples say vllm_…, not vllm:…, under escaping=underscores
    queries = by_figure("vllm")
    assert f"rate(vllm_generation_tokens_total{{{SELECTOR}}}[5m])" in (
        queries["output_tokens_per_second"])
    tpot = queries["tpot_p95"]
    order = ["vllm:inter_token_latency_seconds_bucket", "vllm:time_per_output_token_seconds_bucket",
             "vllm_inter_token_latency_seconds_bucket", "vllm_time_per_output_token_seconds_bucket"]
    assert [tpot.index(name) for name in order] == sorted(tpot.index(name) for name in order)


def test_vllm_renames_are_read_under_both_names_the_new_one_first():
    queries = by_figure("vllm")
    new = f"rate(vllm:inter_token_latency_seconds_bucket{{{SELECTOR}}}[5m])"
    old = f"rate(vllm:time_per_output_token_seconds_bucket{{{SELECTOR}}}[5m])"
    tpot = queries["tpot_p95"]
    assert tpot.index(new) < tpot.index(old)
    assert " or (" in tpot and "unless on()" in tpot  # the old name only when the new is absent
    assert "vllm:kv_cache_usage_perc" in queries["kv_cache_usage"]
    assert "vllm:gpu_cache_usage_perc" in queries["kv_cache_usage"]


def test_vllm_throughput_is_a_rate_summed_over_the_replicas_and_gauges_are_window_averages():
    queries = by_figure("vllm")
    assert queries["output_tokens_per_second"].startswith(
        f"sum(rate(vllm:generation_tokens_total{{{SELECTOR}}}[5m])) or (")
    assert queries["requests_waiting"].startswith(
        f"sum(avg_over_time(vllm:num_requests_waiting{{{SELECTOR}}}[5m])) or (")
    assert queries["kv_cache_usage"].startswith("max(avg_over_time(")


def test_llamacpp_gives_a_mean_time_per_token_from_its_totals_and_no_ttft():
    queries = by_figure("llamacpp")
    assert queries["tpot_mean"].startswith(
        f"sum(rate(llamacpp:tokens_predicted_seconds_total{{{SELECTOR}}}[5m])) / "
        f"sum(rate(llamacpp:tokens_predicted_total{{{SELECTOR}}}[5m])) or (")
    assert not {"ttft_p50", "ttft_p95", "tpot_p95"} & queries.keys()
    assert "llamacpp:requests_deferred" in queries["requests_waiting"]


def test_tgi_reads_its_time_per_token_histogram_and_its_queue():
    queries = by_figure("tgi")
    assert "tgi_request_mean_time_per_token_duration_bucket" in queries["tpot_p95"]
    assert queries["output_tokens_per_second"] == (
        f"sum(rate(tgi_request_generated_tokens_sum{{{SELECTOR}}}[5m]))")
    assert "tgi_queue_size" in queries["requests_waiting"]
    assert "kv_cache_usage" not in queries


def test_an_unknown_engine_or_window_is_refused():
    with pytest.raises(ValueError, match="custom"):
        promql.queries("custom", SELECTOR, "5m")
    with pytest.raises(ValueError, match="duration"):
        promql.queries("vllm", SELECTOR, "5 minutes")


def test_one_sample_is_its_value():
    assert promql.figure(vector("0.0425")) == 0.0425
    scalar = {"status": "success", "data": {"resultType": "scalar", "result": [1.0, "3"]}}
    assert promql.figure(scalar) == 3.0


@pytest.mark.parametrize("body, said", [
    (vector(), "no samples in the window"),
    (vector("NaN"), "no requests in the window"),
    (vector("+Inf"), "above the largest histogram bucket"),
    (vector("-1"), "negative"),
    (vector("fast"), "not a number"),
    (vector("1", "2"), "2 series where one was expected"),
    ({"status": "error", "errorType": "bad_data", "error": "parse error at char 3"},
     "bad_data: parse error at char 3"),
    ({"status": "success"}, "without data.result"),
    ({"status": "success", "data": {"resultType": "matrix", "result": []}}, "'matrix'"),
    ({"status": "success", "data": {"resultType": "vector", "result": [{"value": 1}]}},
     "malformed sample"),
    ({"status": "success", "data": {"resultType": "vector", "result": "x"}}, "malformed result"),
    (["not", "an", "object"], "not a JSON object"),
    (None, "not a JSON object"),
])
def test_every_answer_without_a_usable_number_gives_the_reason(body, said):
    answer = promql.figure(body)
    assert isinstance(answer, NoFigure)
    assert said in answer.reason
    assert not answer.unreachable  # a bad answer to one query, not a dead server


def test_nan_never_leaks_out_as_a_number():
    for text in ("NaN", "nan", "Inf", "-Inf"):
        answer = promql.figure(vector(text))
        assert not (isinstance(answer, float) and (math.isnan(answer) or math.isinf(answer)))

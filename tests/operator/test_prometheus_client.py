"""prometheus: the client's requests (query, timeout, bearer token) and every failure as data."""

from __future__ import annotations

import httpx

from memplace.operator.prometheus import Prometheus, PrometheusConfig
from memplace.operator.promql import NoFigure

ANSWER = {"status": "success", "data": {"resultType": "vector", "result": [
    {"metric": {}, "value": [1700000000.0, "12.5"]}]}}


def client(handler, **config) -> Prometheus:
    return Prometheus(PrometheusConfig(url="http://prometheus.test:9090/", **config),
                      transport=httpx.MockTransport(handler))


async def test_a_query_asks_the_instant_api_with_a_server_side_timeout():
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=ANSWER)

    prometheus = client(handler, timeout_seconds=4)
    assert await prometheus.query("up") == 12.5
    await prometheus.close()
    (request,) = seen
    assert request.url.path == "/api/v1/query"
    assert request.url.params["query"] == "up" and request.url.params["timeout"] == "4s"
    assert "authorization" not in request.headers
    assert "time" not in request.url.params  # now, as the server's clock says


async def test_the_queries_of_one_window_name_their_instant():
    import datetime

    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=ANSWER)

    at = datetime.datetime(2026, 1, 1, 12, 0, 0, 250000, tzinfo=datetime.UTC)
    await client(handler).query("up", at)
    assert seen[0].url.params["time"] == f"{at.timestamp():.3f}"


async def test_the_bearer_token_is_reread_from_its_file_on_every_query(tmp_path):
    token = tmp_path / "token"
    token.write_text("first\n")
    sent: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request.headers["authorization"])
        return httpx.Response(200, json=ANSWER)

    prometheus = client(handler, token_file=str(token))
    await prometheus.query("up")
    token.write_text("rotated")
    await prometheus.query("up")
    await prometheus.close()
    assert sent == ["Bearer first", "Bearer rotated"]


async def test_a_token_file_that_went_away_is_a_reason_not_a_crash(tmp_path):
    prometheus = client(lambda request: httpx.Response(200, json=ANSWER),
                        token_file=str(tmp_path / "gone"))
    answer = await prometheus.query("up")
    assert isinstance(answer, NoFigure) and answer.unreachable
    assert "token file" in answer.reason


async def test_a_refused_connection_or_a_timeout_makes_the_server_unreachable():
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    def hang(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    refused = await client(refuse).query("up")
    assert isinstance(refused, NoFigure) and refused.unreachable
    assert "unreachable at http://prometheus.test:9090/: connection refused" in refused.reason
    late = await client(hang, timeout_seconds=2).query("up")
    assert isinstance(late, NoFigure) and late.unreachable
    assert "within 2 s" in late.reason


async def test_an_http_error_without_json_makes_the_server_unreachable():
    answer = await client(lambda request: httpx.Response(502, text="Bad Gateway")).query("up")
    assert isinstance(answer, NoFigure) and answer.unreachable
    assert "HTTP 502" in answer.reason
    forbidden = await client(lambda request: httpx.Response(403, json=["no"])).query("up")
    assert isinstance(forbidden, NoFigure) and "HTTP 403" in forbidden.reason


async def test_prometheus_own_error_for_one_query_is_that_querys_reason():
    body = {"status": "error", "errorType": "bad_data", "error": "unknown function"}
    answer = await client(lambda request: httpx.Response(400, json=body)).query("nope(up)")
    assert isinstance(answer, NoFigure) and not answer.unreachable
    assert "bad_data: unknown function" in answer.reason


async def test_a_server_error_with_prometheus_json_fails_the_whole_measurement():
    """503 "unavailable" (e.g. the TSDB still starting) says so in JSON: every query would
    fare the same, so it is MeasurementFailed (unreachable), with Prometheus's own reason."""
    body = {"status": "error", "errorType": "unavailable", "error": "TSDB not ready"}
    answer = await client(lambda request: httpx.Response(503, json=body)).query("up")
    assert isinstance(answer, NoFigure) and answer.unreachable
    assert "HTTP 503" in answer.reason and "unavailable: TSDB not ready" in answer.reason

"""The operator's Prometheus client: instant queries over HTTP(S), every failure returned as data.

``memplace run --prometheus-url URL`` names the server (or a Thanos/Mimir querier: anything that
serves ``/api/v1/query``). TLS and authentication take the options Prometheus clients usually
take: a CA bundle (``--prometheus-ca-file``), or no verification (``--prometheus-insecure``), and
a bearer token read from a file (``--prometheus-token-file``), re-read on every query so that a
rotated projected service-account token is picked up.

:meth:`Prometheus.query` never raises for what the network or the server does: a refused
connection, a timeout, an HTTP error, a body that is not JSON all come back as
:class:`promql.NoFigure` with the reason, which becomes ``SLOMet=Unknown`` in status. The
operator keeps running, and nothing it placed is touched.

Example::

    client = Prometheus(PrometheusConfig(url="https://prometheus.monitoring:9090",
                                         ca_file="/etc/prometheus-ca/ca.crt"))
    answer = await client.query('sum(rate(vllm:generation_tokens_total{namespace="ml"}[5m]))')
    # 412.5, or NoFigure("Prometheus is unreachable: …")
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import httpx

from .promql import NoFigure, figure

__all__ = ["Prometheus", "PrometheusConfig"]


@dataclass(frozen=True)
class PrometheusConfig:
    """Where Prometheus is and how to reach it."""

    url: str
    """The server's base URL, e.g. ``http://prometheus-operated.monitoring:9090``."""
    ca_file: str | None = None
    """A PEM bundle that signs the server's certificate (HTTPS)."""
    insecure: bool = False
    """Skip TLS verification (testing only)."""
    token_file: str | None = None
    """A file holding a bearer token, re-read on each query."""
    timeout_seconds: float = 10.0
    """Per request; also sent as the query's ``timeout`` so the server gives up as well."""


class Prometheus:
    """Instant queries against one server; one connection pool per operator run."""

    def __init__(self, config: PrometheusConfig, transport: httpx.AsyncBaseTransport | None = None):
        self.config = config
        verify: bool | ssl.SSLContext = True
        if config.insecure:
            verify = False
        elif config.ca_file:
            verify = ssl.create_default_context(cafile=config.ca_file)
        self._client = httpx.AsyncClient(
            base_url=config.url.rstrip("/"),
            verify=verify,
            timeout=config.timeout_seconds,
            transport=transport,
        )

    async def close(self) -> None:
        await self._client.aclose()

    async def query(self, promql: str, at: datetime | None = None) -> float | NoFigure:
        """The one number ``promql`` evaluates to at ``at`` (default: now), or why there is none.

        The queries of one window pass the same ``at``, so that a scrape landing between two of
        them cannot give one figure and not the other."""
        headers: dict[str, str] = {}
        if self.config.token_file:
            try:
                token = Path(self.config.token_file).read_text().strip()
            except OSError as error:
                return NoFigure(f"the token file cannot be read: {error}", unreachable=True)
            headers["Authorization"] = f"Bearer {token}"
        params = {"query": promql, "timeout": f"{self.config.timeout_seconds:g}s"}
        if at is not None:
            params["time"] = f"{at.timestamp():.3f}"
        try:
            response = await self._client.get("/api/v1/query", params=params, headers=headers)
        except httpx.TimeoutException:
            return NoFigure(
                f"Prometheus did not answer within {self.config.timeout_seconds:g} s",
                unreachable=True,
            )
        except httpx.HTTPError as error:
            return NoFigure(
                f"Prometheus is unreachable at {self.config.url}: {_said(error)}", unreachable=True
            )
        try:
            body = response.json()
        except ValueError:
            return NoFigure(
                f"Prometheus answered HTTP {response.status_code} with a body that is not JSON",
                unreachable=True,
            )
        code = response.status_code
        if code >= 400:
            # 5xx, auth and rate limits fail every query alike (MeasurementFailed); a 4xx
            # about this query (400 bad_data, 422 execution) leaves only its own figure out
            said = figure(body) if isinstance(body, dict) else None
            reason = f"Prometheus answered HTTP {code}" + (
                f" ({said.reason})" if isinstance(said, NoFigure) else ""
            )
            whole = code >= 500 or code in (401, 403, 429) or not isinstance(body, dict)
            return NoFigure(reason, unreachable=whole)
        return figure(body)


def _said(error: Exception) -> str:
    return str(error) or type(error).__name__

"""A real Prometheus server for tests: ``/usr/bin/prometheus`` on a free loopback port.

Tests that need PromQL answered by the real thing (the operator's measurement loop, the Grafana
dashboard's queries) start one with :func:`start`, or through the ``prometheus`` fixture in
``tests/conftest.py``, which stops every server it started. The server scrapes the targets the
test names (``host:port`` strings; loopback exporters) every ``scrape_interval`` with
``honor_labels: true``, so a fake engine exporter that serves ``namespace``/``pod`` labels keeps
them, as the Prometheus Operator's relabelling would give them on a cluster. Storage is a
temporary directory, removed on :meth:`PrometheusServer.stop`.

No network is reached: the server listens on 127.0.0.1 and scrapes only what the test names.
When no ``prometheus`` binary is installed, :func:`binary` is None and the fixture skips with the
reason (CI installs Debian's ``prometheus`` package, see ``.ci/run``).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import httpx
import yaml

__all__ = ["NOT_INSTALLED", "PrometheusServer", "binary", "start"]

NOT_INSTALLED = (
    "no prometheus binary on PATH (Debian: apt-get install prometheus; .ci/run installs it)"
)


def binary() -> str | None:
    """The Prometheus server binary: ``$PROMETHEUS_BINARY``, else ``prometheus`` on PATH."""
    return os.environ.get("PROMETHEUS_BINARY") or shutil.which("prometheus")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PrometheusServer:
    """One running Prometheus; :attr:`url` is its HTTP API root (``http://127.0.0.1:PORT``)."""

    def __init__(
        self, process: subprocess.Popen[bytes], port: int, workdir: Path, ca: Path | None = None
    ) -> None:
        self.process = process
        self.port = port
        self.workdir = workdir
        self.url = f"{'https' if ca else 'http'}://127.0.0.1:{port}"
        self.verify: ssl.SSLContext | bool = ssl.create_default_context(cafile=ca) if ca else True
        """What the helper's own requests verify the server with (its certificate under TLS)."""

    @property
    def log(self) -> str:
        """What the server wrote so far (for assertion messages)."""
        path = self.workdir / "prometheus.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def query(self, promql: str) -> list[dict[str, Any]]:
        """The instant-vector ``result`` of ``promql``; raises on anything but success."""
        response = httpx.get(
            f"{self.url}/api/v1/query", params={"query": promql}, timeout=5, verify=self.verify
        )
        response.raise_for_status()
        body = response.json()
        assert body["status"] == "success", body
        return body["data"]["result"]

    def wait_for(self, promql: str, *, timeout: float = 30.0) -> list[dict[str, Any]]:
        """Poll ``promql`` until it returns at least one series; fail after ``timeout`` s."""
        deadline = time.monotonic() + timeout
        while True:
            result = self.query(promql)
            if result:
                return result
            if time.monotonic() > deadline:
                raise AssertionError(f"Prometheus never answered {promql!r}\n{self.log[-2000:]}")
            time.sleep(0.2)

    def wait_until_scraped(self, *, timeout: float = 30.0) -> None:
        """Wait until every target was scraped successfully at least once."""
        targets = self._config["scrape_configs"][0]["static_configs"][0]["targets"]
        for target in targets:
            self.wait_for(f'up{{instance="{target}"}} == 1', timeout=timeout)

    @property
    def _config(self) -> dict[str, Any]:
        return yaml.safe_load((self.workdir / "prometheus.yml").read_text())

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL after 10 s) and remove its storage."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.workdir, ignore_errors=True)


def start(
    targets: Iterable[str],
    *,
    scrape_interval: str = "1s",
    metrics_path: str = "/metrics",
    ready_timeout: float = 30.0,
    tls: tuple[Path, Path] | None = None,
) -> PrometheusServer:
    """Start Prometheus scraping ``targets`` (``host:port``) and wait until it is ready.

    ``tls``: (certificate, key) PEM files; the server then answers HTTPS only, through
    Prometheus's own ``--web.config.file`` ``tls_server_config`` (the exporter-toolkit web
    configuration), and :attr:`PrometheusServer.url` is ``https://…``.

    Raises RuntimeError when no binary is installed or the server does not become ready (its log
    is in the message).
    """
    executable = binary()
    if executable is None:
        raise RuntimeError(NOT_INSTALLED)
    workdir = Path(tempfile.mkdtemp(prefix="memplace-prometheus-"))
    config = {
        "global": {"scrape_interval": scrape_interval, "evaluation_interval": scrape_interval},
        "scrape_configs": [{
            "job_name": "engines",
            "honor_labels": True,
            "metrics_path": metrics_path,
            "scrape_interval": scrape_interval,
            "scrape_timeout": scrape_interval,
            "static_configs": [{"targets": list(targets)}],
        }],
    }
    (workdir / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = _free_port()
    web: list[str] = []
    if tls is not None:
        cert, key = tls
        tls_config = {"cert_file": str(cert), "key_file": str(key)}
        (workdir / "web.yml").write_text(yaml.safe_dump({"tls_server_config": tls_config}))
        web = [f"--web.config.file={workdir / 'web.yml'}"]
    log = (workdir / "prometheus.log").open("wb")
    process = subprocess.Popen(
        [
            executable,
            f"--config.file={workdir / 'prometheus.yml'}",
            f"--storage.tsdb.path={workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--storage.tsdb.retention.time=1h",
            "--log.level=warn",
            *web,
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=workdir,
    )
    log.close()
    server = PrometheusServer(process, port, workdir, tls[0] if tls else None)
    deadline = time.monotonic() + ready_timeout
    while True:
        if process.poll() is not None:
            message = server.log
            server.stop()
            raise RuntimeError(f"prometheus exited with {process.returncode}:\n{message}")
        try:
            ready = httpx.get(f"{server.url}/-/ready", timeout=1, verify=server.verify)
            if ready.status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            message = server.log
            server.stop()
            raise RuntimeError(f"prometheus not ready after {ready_timeout} s:\n{message}")
        time.sleep(0.1)

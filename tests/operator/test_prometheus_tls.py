"""The Prometheus client over HTTPS, against a real Prometheus serving TLS on loopback.

``--prometheus-ca-file`` must verify the server with that bundle, a server the bundle does not
sign must be refused (a reason in status, never a crash), and ``--prometheus-insecure`` must skip
verification. The certificate is a fresh self-signed one for 127.0.0.1, made with openssl."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from memplace.operator.prometheus import Prometheus, PrometheusConfig
from memplace.operator.promql import NoFigure


def self_signed(folder: Path, name: str) -> tuple[Path, Path]:
    """(certificate, key) for the IP 127.0.0.1, valid for a day."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed: no certificate to serve TLS with")
    cert, key = folder / f"{name}.crt", folder / f"{name}.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", f"/CN={name}", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


async def ask(config: PrometheusConfig) -> float | NoFigure:
    client = Prometheus(config)
    try:
        return await client.query("vector(42)")
    finally:
        await client.close()


async def test_https_is_verified_with_the_ca_file_refused_without_it_and_skipped_if_insecure(
    prometheus, tmp_path
):
    cert, key = self_signed(tmp_path, "prometheus")
    server = prometheus([], tls=(cert, key))
    assert server.url.startswith("https://")

    assert await ask(PrometheusConfig(url=server.url, ca_file=str(cert))) == 42.0

    other, _ = self_signed(tmp_path, "someone-else")
    refused = await ask(PrometheusConfig(url=server.url, ca_file=str(other)))
    assert isinstance(refused, NoFigure) and refused.unreachable
    assert "certificate" in refused.reason.lower(), refused.reason

    system_roots = await ask(PrometheusConfig(url=server.url))  # no bundle: the system's roots
    assert isinstance(system_roots, NoFigure) and system_roots.unreachable

    assert await ask(PrometheusConfig(url=server.url, insecure=True)) == 42.0

"""The running operator for integration tests: ``operator`` starts it against ``cluster``."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator

import pytest_asyncio
from kopf.testing import KopfRunner
from operator_support import OWN_ID, PEERING, PRIORITY
from rbac_support import chart_authorizer

from memplace.operator import settings as operator_settings


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RunningOperator:
    def __init__(self, runner: KopfRunner, metrics_port: int, health_port: int) -> None:
        self.runner = runner
        self.metrics_port = metrics_port
        self.health_port = health_port


@pytest_asyncio.fixture()
async def operator(cluster) -> AsyncIterator[RunningOperator]:
    """``memplace``'s handlers under Kopf (KopfRunner), logged in to the emulator, with exactly
    the permissions the chart's default values grant (a request without a rule is 403 and
    fails the test)."""
    async with _running(cluster, ["--standalone"], CHART_DEFAULTS) as running:
        yield running


@pytest_asyncio.fixture()
async def peered_operator(cluster, monkeypatch) -> AsyncIterator[RunningOperator]:
    """The operator as one replica of a peering (``--peering``), with Kopf's identity ``OWN_ID``
    (``POD_ID``, as the chart sets it) and priority ``PRIORITY``; the ClusterKopfPeering exists
    and names no other peer."""
    monkeypatch.setenv("POD_ID", OWN_ID)
    await cluster.create("/apis/kopf.dev/v1/clusterkopfpeerings", {
        "apiVersion": "kopf.dev/v1", "kind": "ClusterKopfPeering",
        "metadata": {"name": PEERING}})
    async with _running(cluster, ["--peering", PEERING, "--priority", str(PRIORITY)],
                        CHART_PEERING) as running:
        yield running


CHART_DEFAULTS: dict = {}
CHART_PEERING = {"operator": {"replicas": 2, "peering": {"enabled": True}}}


@contextlib.asynccontextmanager
async def _running(cluster, mode: list[str], chart_values: dict) -> AsyncIterator[RunningOperator]:
    metrics_port, health_port = free_port(), free_port()
    cluster.authorize = chart_authorizer(chart_values, cluster.operator_token)
    operator_settings.configure(operator_settings.Settings(
        resync_seconds=0.2,
        stuck_after_seconds=1.0,
        metrics_port=metrics_port,
        metrics_host="127.0.0.1",
    ))
    runner = KopfRunner(
        ["run", *mode, "--all-namespaces", "-m", "memplace.operator.handlers",
         "--liveness", f"http://127.0.0.1:{health_port}/healthz"],
        timeout=30,
    )
    # The emulator serves from this loop: enter and leave the runner's thread off the loop.
    await asyncio.to_thread(runner.__enter__)
    try:
        yield RunningOperator(runner, metrics_port, health_port)
    finally:
        await asyncio.to_thread(runner.__exit__, None, None, None)
        operator_settings.configure(operator_settings.Settings())
        denied, cluster.authorize = getattr(cluster.authorize, "denied", []), None
    assert not denied, f"the chart's RBAC refused the operator: {sorted(set(denied))}"

"""The running operator for integration tests: ``operator`` starts it against ``cluster``."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest
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


UNREACHABLE_HUB = "http://127.0.0.1:9"
"""Where the operator looks for hf:// sources unless a test is marked ``hub``: a loopback port
that refuses, so that tests never reach the internet."""


@pytest_asyncio.fixture()
async def operator(cluster, request) -> AsyncIterator[RunningOperator]:
    """``memplace``'s handlers under Kopf (KopfRunner), logged in to the emulator, with exactly
    the permissions the chart's default values grant (a request without a rule is 403 and
    fails the test); a test marked ``hub`` has them read hf:// sources from the fake hub
    (``hub_server.hub``)."""
    hub = request.getfixturevalue("hub").url if request.node.get_closest_marker("hub") else None
    async with _running(
        cluster, ["--standalone"], CHART_DEFAULTS, hf_endpoint=hub or UNREACHABLE_HUB
    ) as running:
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


class Restartable:
    """The operator, which a test can stop and start afresh (its memory lost, as in a crash)."""

    def __init__(self, cluster: Any) -> None:
        self._cluster = cluster
        self._runs: list[contextlib.AbstractAsyncContextManager[RunningOperator]] = []

    async def start(self) -> RunningOperator:
        run = _running(self._cluster, ["--standalone"], CHART_DEFAULTS)
        self._runs.append(run)
        return await run.__aenter__()

    async def stop(self) -> None:
        await self._runs.pop().__aexit__(None, None, None)


@pytest_asyncio.fixture()
async def restartable_operator(cluster) -> AsyncIterator[Restartable]:
    """Like ``operator``, plus ``await restartable_operator.stop()`` / ``.start()``."""
    operators = Restartable(cluster)
    await operators.start()
    try:
        yield operators
    finally:
        while operators._runs:
            await operators.stop()


@pytest.fixture()
def start_operator(cluster) -> Any:
    """``async with start_operator(prometheus=…) as running:``: the standalone operator with
    these Settings over the tests' defaults (for tests that need other settings), under the
    chart's default RBAC."""
    return functools.partial(_running, cluster, ["--standalone"], CHART_DEFAULTS)


CHART_DEFAULTS: dict = {}
CHART_PEERING = {"operator": {"replicas": 2, "peering": {"enabled": True}}}


@contextlib.asynccontextmanager
async def _running(
    cluster: Any,
    mode: list[str],
    chart_values: dict,
    hf_endpoint: str = UNREACHABLE_HUB,
    **settings: Any,
) -> AsyncIterator[RunningOperator]:
    metrics_port, health_port = free_port(), free_port()
    cluster.authorize = chart_authorizer(chart_values, cluster.operator_token)
    operator_settings.configure(operator_settings.Settings(**{
        "resync_seconds": 0.2,
        "stuck_after_seconds": 1.0,
        "metrics_port": metrics_port,
        "metrics_host": "127.0.0.1",
        "hf_endpoint": hf_endpoint,
        "hf_token": None,
        "measure_interval_seconds": 0.5,
        **settings,
    }))
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

"""e2e's LocalOperator against the emulator: started, ready once Kopf's liveness endpoint
answers, SIGKILLed and restarted on a fresh port (what the kill-mid-burst e2e test does), and a
start that cannot succeed fails with the operator's own line instead of hanging."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "e2e"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "operator"))
from local_operator import LocalOperator  # noqa: E402
from operator_process import write_kubeconfig  # noqa: E402


async def test_started_killed_and_restarted_against_the_emulator(cluster, tmp_path):
    config = write_kubeconfig(
        tmp_path / "kubeconfig", str(cluster.url).rstrip("/"), cluster.operator_token
    )
    local = LocalOperator(str(config), tmp_path / "operator.log")
    try:
        await asyncio.to_thread(local.start)
        first = local.process
        assert first is not None and first.poll() is None
        await asyncio.to_thread(local.kill)
        assert first.returncode == -9
        await asyncio.to_thread(local.start)
        assert local.process is not first and local.process.poll() is None
    finally:
        await asyncio.to_thread(local.stop)


async def test_a_start_that_fails_says_why(tmp_path):
    config = write_kubeconfig(tmp_path / "kubeconfig", "http://127.0.0.1:9", "token")
    local = LocalOperator(str(config), tmp_path / "operator.log")
    with pytest.raises(AssertionError, match=r"memplace run exited \(2\)"):
        await asyncio.to_thread(local.start)
    assert "cannot reach the API server" in local.tail()

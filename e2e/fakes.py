"""Fake GPU nodes for a real control plane (``E2E_FAKE_NODES=1``), and bounded polling.

A fake node is a Node object with the GPU Feature Discovery labels and ``nvidia.com/gpu``
capacity a GPU node has. No kubelet runs for it, so a thread keeps its Ready condition's
heartbeat fresh (else the node lifecycle controller taints it unreachable after ~40 s); the
scheduler binds pods to it and they stay Pending, which is all e2e needs.
"""

from __future__ import annotations

import contextlib
import datetime
import threading
import time
from collections.abc import Callable
from typing import Any

from kubeapi import Api

__all__ = ["FakeNodes", "wait_for"]

A100_LABELS = {
    "nvidia.com/gpu.present": "true",
    "nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB",
    "nvidia.com/gpu.count": "8",
    "nvidia.com/gpu.memory": "81920",
}


def wait_for(check: Callable[[], Any], timeout: float = 90, what: str = "condition",
             interval: float = 1.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _status() -> dict[str, Any]:
    resources = {"nvidia.com/gpu": "8", "cpu": "96", "memory": "1000Gi", "pods": "110"}
    return {"status": {
        "capacity": resources, "allocatable": resources,
        "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                        "message": "fake GPU node (memplace e2e)",
                        "lastHeartbeatTime": _now(), "lastTransitionTime": _now()}],
    }}


class FakeNodes:
    """Fake 8×A100 nodes; :meth:`close` stops the heartbeat and deletes them."""

    def __init__(self, api: Api) -> None:
        self.api = api
        self.names: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._heartbeat, daemon=True)
        self._thread.start()

    def add(self, name: str, labels: dict[str, str]) -> None:
        self.api.create("/api/v1/nodes", {"apiVersion": "v1", "kind": "Node", "metadata": {
            "name": name, "labels": {
                "kubernetes.io/hostname": name, "kubernetes.io/os": "linux",
                **A100_LABELS, **labels}}})
        self.api.merge_patch(f"/api/v1/nodes/{name}/status", _status())
        self.names.append(name)

    def close(self) -> None:
        self._stop.set()
        for name in self.names:
            self.api.delete(f"/api/v1/nodes/{name}")

    def _heartbeat(self) -> None:
        while not self._stop.wait(10):
            for name in list(self.names):
                with contextlib.suppress(Exception):  # best effort; the tests' waits report
                    self.api.merge_patch(f"/api/v1/nodes/{name}/status", _status())

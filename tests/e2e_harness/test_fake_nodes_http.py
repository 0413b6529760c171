"""The fake nodes' HTTP calls, through the emulator: a Node created with its status, the status
PATCHed, a Lease in kube-node-lease renewed by the heartbeat, and a terminating pod on a fake
node finished (deleted with grace period 0). The emulator answers from the test's event loop,
so the harness's synchronous client runs in threads here."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "e2e"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "operator"))
from fakes import FakeNodes  # noqa: E402
from kubeapi import Api  # noqa: E402
from operator_process import write_kubeconfig  # noqa: E402

LEASES = "coordination.k8s.io/v1/leases"


async def _until(check, timeout: float = 10.0):
    async with asyncio.timeout(timeout):
        while not (found := check()):
            await asyncio.sleep(0.05)
    return found


async def test_fake_nodes_post_patch_renew_and_finish_deletions(cluster, tmp_path):
    config = write_kubeconfig(tmp_path / "kubeconfig", str(cluster.url).rstrip("/"), "admin")
    api = await asyncio.to_thread(Api, str(config))
    fakes = await asyncio.to_thread(FakeNodes, api, 0.05, 0.2)
    try:
        await asyncio.to_thread(fakes.add, "fake-0", {"memplace.io/e2e-pool": "p"})
        node = cluster.stored("v1/nodes", None, "fake-0")
        assert node["status"]["allocatable"]["nvidia.com/gpu"] == "8"
        assert node["metadata"]["labels"]["memplace.io/e2e-pool"] == "p"
        patches = [
            r
            for r in cluster.seen()
            if r.method == "PATCH" and "/nodes/fake-0/status" in str(r.url)
        ]
        assert patches, "the status goes through the /status subresource"
        lease = cluster.stored(LEASES, "kube-node-lease", "fake-0")
        assert lease["metadata"]["ownerReferences"][0]["uid"] == node["metadata"]["uid"]
        first = lease["spec"]["renewTime"]
        await _until(
            lambda: (
                cluster.stored(LEASES, "kube-node-lease", "fake-0")["spec"]["renewTime"] != first
            )
        )

        for name, deleting in (("stuck", True), ("pending", False)):
            await cluster.create(
                "/api/v1/namespaces/ns/pods",
                {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "metadata": {
                        "name": name,
                        "namespace": "ns",
                        **({"deletionTimestamp": "2026-12-02T06:00:00Z"} if deleting else {}),
                    },
                    "spec": {"nodeName": "fake-0", "containers": [{"name": "c", "image": "i"}]},
                },
            )
        await _until(lambda: cluster.stored("v1/pods", "ns", "stuck") is None)
        assert cluster.stored("v1/pods", "ns", "pending") is not None
        deletes = [r for r in cluster.seen() if r.method == "DELETE" and "/pods/" in str(r.url)]
        assert all("/pods/stuck" in str(r.url) for r in deletes)
        assert fakes.errors == {}
        assert "fake-0: Ready=True" in await asyncio.to_thread(fakes.state)
    finally:
        await asyncio.to_thread(fakes.close)
    assert cluster.stored("v1/nodes", None, "fake-0") is None

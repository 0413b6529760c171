"""`memplace run`'s preflight check passes against the Kubernetes emulator the integration tests
run the operator on, so a `memplace run` subprocess there starts Kopf."""

from __future__ import annotations

import asyncio
import json

from memplace.cli import preflight


async def test_the_emulator_with_the_memplace_crds_passes(cluster, tmp_path):
    path = tmp_path / "kubeconfig"
    path.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "kmock",
        "clusters": [{"name": "kmock", "cluster": {"server": str(cluster.url).rstrip("/")}}],
        "users": [{"name": "kmock", "user": {"token": "any"}}],
        "contexts": [{"name": "kmock", "context": {"cluster": "kmock", "user": "kmock"}}],
    }))  # fmt: skip
    # The emulator serves from this loop: the check's blocking HTTP runs in a thread.
    await asyncio.to_thread(preflight.check, str(path))

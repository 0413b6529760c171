"""e2e against a real API server: the cluster named by E2E_KUBECONFIG or KUBECONFIG, else a kind
cluster (when ``kind`` and a running Docker engine exist), else every test skips with the reason.

Environment:

- ``E2E_KUBECONFIG`` / ``KUBECONFIG``: the cluster to use (never created or deleted here).
- ``E2E_FAKE_NODES=1``: create fake GPU Node objects (GFD labels, allocatable nvidia.com/gpu,
  a Ready condition kept fresh by a heartbeat) so the real scheduler can bind pods to them; no
  kubelet runs there, so the pods stay Pending after binding, which is fine.
- ``E2E_OPERATOR``: ``local`` (default) runs ``memplace run`` from this tree against the cluster;
  ``installed`` expects an operator already running there (e.g. the Helm chart; ``E2E_NAMESPACE``
  set implies ``installed``).
- ``E2E_KIND_CLUSTER``: the kind cluster's name when one is created (default memplace-e2e).

The harness logs in exactly as the operator does (``kubeapi.py``: Kopf's ``login_via_client``),
so client certificates (files or inline ``*-data``), tokens and exec plugins work for both. An
unreachable server skips; one that answers but takes us for ``system:anonymous`` fails.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from kubeapi import Api

ROOT = Path(__file__).resolve().parent.parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if Path(str(item.fspath)).parent == Path(__file__).parent:
            item.add_marker(pytest.mark.e2e)


def _docker_running() -> bool:
    if not shutil.which("docker"):
        return False
    return subprocess.run(["docker", "info"], capture_output=True).returncode == 0


@pytest.fixture(scope="session")
def kubeconfig() -> Iterator[str]:
    named = os.environ.get("E2E_KUBECONFIG") or os.environ.get("KUBECONFIG")
    if named:
        yield named.split(os.pathsep)[0]
        return
    if not shutil.which("kind"):
        pytest.skip("no cluster: set E2E_KUBECONFIG or KUBECONFIG, or install kind and Docker")
    if not _docker_running():
        pytest.skip("no cluster: kind is installed but no Docker engine is running")
    name = os.environ.get("E2E_KIND_CLUSTER", "memplace-e2e")
    existing = subprocess.run(["kind", "get", "clusters"], capture_output=True, text=True)
    created = name not in existing.stdout.split()
    if created:
        subprocess.run(["kind", "create", "cluster", "--name", name, "--wait", "120s"],
                       check=True)
    path = Path(tempfile.mkdtemp()) / "kubeconfig"
    path.write_text(subprocess.run(["kind", "get", "kubeconfig", "--name", name],
                                   capture_output=True, text=True, check=True).stdout)
    try:
        yield str(path)
    finally:
        if created and os.environ.get("E2E_KEEP_CLUSTER") != "1":
            subprocess.run(["kind", "delete", "cluster", "--name", name])


@pytest.fixture(scope="session")
def api(kubeconfig: str) -> Api:
    """The harness's client; skips only when the server cannot be reached. A server that
    answers but does not know us (401/403, ``system:anonymous``) fails: that is a broken
    harness or kubeconfig, not a missing cluster."""
    client = Api(kubeconfig)
    try:
        client.get("/version")
    except httpx.TransportError as error:
        pytest.skip(f"the cluster in {kubeconfig} is unreachable: {error}")
    review = client.request("POST", "/apis/authentication.k8s.io/v1/selfsubjectreviews", json={
        "apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"})
    if review.status_code < 300:  # Kubernetes >= 1.28; older servers: the calls below tell
        user = review.json().get("status", {}).get("userInfo", {}).get("username")
        assert user != "system:anonymous", f"{kubeconfig} logs in as {user}"
    nodes = client.request("GET", "/api/v1/nodes?limit=1")
    assert nodes.status_code == 200, f"{kubeconfig} cannot list nodes: {nodes.text[:300]}"
    return client


@pytest.fixture(scope="session")
def crds(api: Api) -> None:
    """Install crds/ (create or merge-patch) and wait until they are established."""
    import yaml

    for path in sorted((ROOT / "crds").glob("*.yaml")):
        crd = yaml.safe_load(path.read_text())
        url = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
        if api.get(f"{url}/{crd['metadata']['name']}") is None:
            api.create(url, crd)
        else:
            api.merge_patch(f"{url}/{crd['metadata']['name']}", {"spec": crd["spec"]})
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            found = api.get(f"{url}/{crd['metadata']['name']}") or {}
            conditions = (found.get("status") or {}).get("conditions") or []
            if any(c["type"] == "Established" and c["status"] == "True" for c in conditions):
                break
            time.sleep(0.5)
        else:
            raise AssertionError(f"CRD {crd['metadata']['name']} not established")


class LocalOperator:
    """``memplace run`` from this tree, as a process: killed (SIGKILL) and restarted by tests."""

    def __init__(self, kubeconfig: str, log: Path) -> None:
        self.log = log
        self.command = [sys.executable, "-m", "memplace", "run", "--kubeconfig", kubeconfig,
                        "--all-namespaces", "--resync", "2s", "--stuck-after", "10m",
                        "--verbose"]
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(self.command, stdout=out, stderr=subprocess.STDOUT,
                                            cwd=ROOT)
        time.sleep(3)
        if self.process.poll() is not None:
            raise AssertionError(f"memplace run exited:\n{self.tail()}")

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=30)

    def tail(self, chars: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-chars:]


@pytest.fixture(scope="session")
def operator(api: Api, crds: None) -> Iterator[LocalOperator | None]:
    """The operator under test: a :class:`LocalOperator`, or None when it is installed in the
    cluster (``E2E_OPERATOR=installed``), which tests cannot kill."""
    mode = os.environ.get("E2E_OPERATOR") or (
        "installed" if os.environ.get("E2E_NAMESPACE") else "local")
    if mode == "installed":
        yield None
        return
    local = LocalOperator(api.kubeconfig, Path(tempfile.mkdtemp()) / "operator.log")
    local.start()
    try:
        yield local
    finally:
        local.stop()
        print(f"operator log: {local.log}")

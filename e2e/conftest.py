"""e2e against a real API server: the cluster named by E2E_KUBECONFIG or KUBECONFIG, else a kind
cluster (when ``kind`` and a running Docker engine exist), else every test skips with the reason.

Environment:

- ``E2E_KUBECONFIG`` / ``KUBECONFIG``: the cluster to use (never created or deleted here).
  ``E2E_KUBECONFIG`` (or any ``E2E_*`` setting below) means a cluster is required: one that
  cannot be reached or logged into then fails every test instead of skipping (``target.py``).
- ``E2E_FAKE_NODES=1``: create fake GPU Node objects (GFD labels, allocatable nvidia.com/gpu,
  heartbeats, a fake kubelet that finishes pod deletions: ``fakes.py``) so the real scheduler can
  bind pods to them; the pods stay Pending after binding, which is all e2e asserts.
- ``E2E_OPERATOR``: ``local`` (default) runs ``memplace run`` from this tree against the cluster,
  with the kubeconfig's identity; ``installed`` expects an operator already running there (e.g.
  the Helm chart, under its own ServiceAccount; ``E2E_NAMESPACE`` set implies ``installed``).
- ``E2E_OPERATOR_RBAC``: ``admin`` (default) runs the local operator with the kubeconfig's
  identity; ``chart`` with the chart's operator ServiceAccount and exactly its rules
  (``chart_rbac.py``; needs helm-python-sdk), and fails if the operator met a 403.
- ``E2E_KIND_CLUSTER``: the kind cluster's name when one is created (default memplace-e2e).

The harness logs in exactly as the operator does (``kubeapi.py``), so client certificates (files
or inline ``*-data``), tokens and exec plugins work for both. A server that answers but takes us
for ``system:anonymous`` fails. Everything a run creates carries its run id (``lifecycle.py``).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import chart_rbac
import httpx
import pytest
from fakes import wait_for
from kubeapi import Api, ApiError, login
from lifecycle import namespace, new_run_id
from local_operator import LocalOperator
from target import Target, target

ROOT = Path(__file__).resolve().parent.parent
CRDS = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
CRD_ESTABLISHED_S = 60


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if Path(str(item.fspath)).parent == Path(__file__).parent:
            item.add_marker(pytest.mark.e2e)


def _docker_running() -> bool:
    if not shutil.which("docker"):
        return False
    return subprocess.run(["docker", "info"], capture_output=True).returncode == 0


def _unavailable(where: Target, why: str) -> None:
    message = where.unavailable(why)
    if where.required:
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def cluster() -> Target:
    return target()


@pytest.fixture(scope="session")
def kubeconfig(cluster: Target) -> Iterator[str]:
    if cluster.kubeconfig:
        yield cluster.kubeconfig
        return
    if not shutil.which("kind"):
        _unavailable(
            cluster, "no cluster: set E2E_KUBECONFIG or KUBECONFIG, or install kind and Docker"
        )
    if not _docker_running():
        _unavailable(cluster, "no cluster: kind is installed but no Docker engine is running")
    name = os.environ.get("E2E_KIND_CLUSTER", "memplace-e2e")
    existing = subprocess.run(["kind", "get", "clusters"], capture_output=True, text=True)
    created = name not in existing.stdout.split()
    if created:
        subprocess.run(["kind", "create", "cluster", "--name", name, "--wait", "120s"], check=True)
    path = Path(tempfile.mkdtemp()) / "kubeconfig"
    path.write_text(
        subprocess.run(
            ["kind", "get", "kubeconfig", "--name", name],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    try:
        yield str(path)
    finally:
        if created and os.environ.get("E2E_KEEP_CLUSTER") != "1":
            subprocess.run(["kind", "delete", "cluster", "--name", name])


@pytest.fixture(scope="session")
def api(cluster: Target, kubeconfig: str) -> Api:
    """The harness's client. A cluster that cannot be reached or logged into skips, or fails
    when one is required (``target.py``); one that answers but does not know us (401/403,
    ``system:anonymous``) always fails: that is a broken harness or kubeconfig."""
    where = f"the cluster in {kubeconfig} ({cluster.source or 'kind'})"
    try:
        client = Api(kubeconfig)
    except Exception as error:  # the kubernetes loader's ConfigException, a missing file, …
        _unavailable(cluster, f"cannot log in with {kubeconfig}: {error}")
    try:
        client.get("/version")
    except httpx.TransportError as error:
        _unavailable(cluster, f"{where} is unreachable: {error!r}")
    review = client.request(
        "POST",
        "/apis/authentication.k8s.io/v1/selfsubjectreviews",
        json={"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"},
    )
    if review.status_code < 300:  # Kubernetes >= 1.28; older servers: the calls below tell
        user = review.json().get("status", {}).get("userInfo", {}).get("username")
        assert user != "system:anonymous", f"{kubeconfig} logs in as {user}"
    nodes = client.request("GET", "/api/v1/nodes?limit=1")
    assert nodes.status_code == 200, f"{kubeconfig} cannot list nodes: {nodes.text[:300]}"
    return client


@pytest.fixture(scope="session")
def run_id() -> str:
    """This run's id, in every name it creates: reruns never meet an earlier run's objects."""
    return new_run_id()


def _established(api: Api, name: str) -> dict[str, str] | None:
    conditions = ((api.get(f"{CRDS}/{name}") or {}).get("status") or {}).get("conditions") or []
    found = {c["type"]: c for c in conditions}
    if found.get("Established", {}).get("status") == "True":
        return {"Established": "True"}
    return None


@pytest.fixture(scope="session")
def crds(api: Api) -> None:
    """Install crds/ (create, or merge-patch the spec of one already there) and wait until each
    is Established. The API server compiles the CEL rules and checks their cost then: a rule it
    refuses fails here with its message."""
    import yaml

    for path in sorted((ROOT / "crds").glob("*.yaml")):
        crd = yaml.safe_load(path.read_text())
        name = crd["metadata"]["name"]
        try:
            if api.get(f"{CRDS}/{name}") is None:
                api.create(CRDS, crd)
            else:
                api.merge_patch(f"{CRDS}/{name}", {"spec": crd["spec"]})
        except ApiError as error:
            pytest.fail(f"the API server refuses {path.relative_to(ROOT)}: {error}", pytrace=False)

        def conditions(name: str = name) -> list[str]:
            found = ((api.get(f"{CRDS}/{name}") or {}).get("status") or {}).get("conditions")
            return [f"{c['type']}={c['status']} {c.get('message', '')}" for c in found or []]

        wait_for(
            lambda name=name: _established(api, name),
            timeout=CRD_ESTABLISHED_S,
            interval=0.5,
            what=f"CRD {name} to be Established",
            state=conditions,
        )


# An API server's 403 as Kopf and the kubernetes client log it (not the word "forbidden" alone:
# ``scaling.coldStart: forbidden`` is in every ModelDeployment that Kopf logs).
REFUSED = re.compile(r"is forbidden: User|APIForbiddenError|\b403\b[^\n]*Forbidden")
RBAC_PATHS = {
    "ServiceAccount": "/api/v1/namespaces/{ns}/serviceaccounts",
    "Role": "/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/roles",
    "RoleBinding": "/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/rolebindings",
    "ClusterRole": "/apis/rbac.authorization.k8s.io/v1/clusterroles",
    "ClusterRoleBinding": "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
}


@pytest.fixture(scope="session")
def operator_kubeconfig(api: Api, run_id: str) -> Iterator[str]:
    """Who the local operator is: the harness's kubeconfig (``E2E_OPERATOR_RBAC=admin``, the
    default), or the chart's operator ServiceAccount with exactly the chart's rules
    (``E2E_OPERATOR_RBAC=chart``, ``chart_rbac.py``)."""
    mode = os.environ.get("E2E_OPERATOR_RBAC", "admin")
    if mode == "admin":
        yield api.kubeconfig
        return
    if mode != "chart":
        pytest.fail(f"E2E_OPERATOR_RBAC must be admin or chart, not {mode!r}", pytrace=False)
    try:
        objects = chart_rbac.render_chart()
    except ImportError as error:
        pytest.fail(f"E2E_OPERATOR_RBAC=chart: {error}", pytrace=False)
    with namespace(api, f"memplace-e2e-operator-{run_id}", run_id) as ns:
        account, rbac = chart_rbac.operator_rbac(objects, run_id, ns)
        created = []
        try:
            for obj in rbac:
                path = RBAC_PATHS[obj["kind"]].format(ns=ns)
                api.create(path, obj)
                created.append(f"{path}/{obj['metadata']['name']}")
            token = api.create(
                f"/api/v1/namespaces/{ns}/serviceaccounts/{account}/token",
                {
                    "apiVersion": "authentication.k8s.io/v1",
                    "kind": "TokenRequest",
                    "spec": {"expirationSeconds": 6 * 3600},
                },
            )["status"]["token"]
            info = login(api.kubeconfig)
            path = Path(tempfile.mkdtemp()) / "operator-kubeconfig"
            path.write_text(
                chart_rbac.kubeconfig_for_token(
                    info.server, token, info.ca_path, bool(info.insecure)
                )
            )
            yield str(path)
        finally:
            for url in reversed(created):
                if "/namespaces/" not in url:  # the namespace takes the rest with it
                    api.delete(url)


@pytest.fixture(scope="session")
def operator(
    api: Api, crds: None, request: pytest.FixtureRequest
) -> Iterator[LocalOperator | None]:
    """The operator under test: a :class:`LocalOperator`, or None when it is installed in the
    cluster (``E2E_OPERATOR=installed``), which tests cannot kill. Stopped last, after every
    module's namespace is gone (its finalizers must be released by a running operator)."""
    mode = os.environ.get("E2E_OPERATOR") or (
        "installed" if os.environ.get("E2E_NAMESPACE") else "local"
    )
    if mode == "installed":
        yield None
        return
    if mode != "local":
        pytest.fail(f"E2E_OPERATOR must be local or installed, not {mode!r}", pytrace=False)
    operator_kubeconfig: str = request.getfixturevalue("operator_kubeconfig")
    local = LocalOperator(operator_kubeconfig, Path(tempfile.mkdtemp()) / "operator.log")
    local.start()
    try:
        yield local
    finally:
        local.stop()
        print(f"operator log: {local.log}")
    if operator_kubeconfig != api.kubeconfig:  # under the chart's RBAC: nothing was refused
        log = local.log.read_text(errors="replace").splitlines()
        refused = [line for line in log if REFUSED.search(line)]
        assert not refused, "the chart's RBAC refused the operator:\n" + "\n".join(refused[:20])

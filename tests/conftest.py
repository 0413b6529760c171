"""The one ``cluster`` fixture: KMock's Kubernetes emulator on a localhost port, Kopf logged in.

KMock's ``KubernetesEmulator`` is a store with Kubernetes URLs, not a cluster. Its docstring lists
what it leaves out and invites subclassing; :class:`Cluster` adds only the object metadata a real
API server stamps and that Kopf and the operator rely on (kmock#33): ``uid``, ``resourceVersion``,
``creationTimestamp``, a ``name`` from ``generateName``, and ``generation``, bumped only when the
``spec`` changes. Two API-server answers are added for the tests that need them: 409 to a merge
patch whose ``metadata.resourceVersion`` is not the stored one (optimistic concurrency), and 422
to writes of an object a test marked with :meth:`Cluster.refuse` (a stand-in for validation). It
still has no schema validation, no scheduler, no garbage collection, no label
selectors, no PUT, and no separation of ``/status`` from the main resource: e2e/ covers those.
"""

from __future__ import annotations

import copy
import datetime
import itertools
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from typing import Any

import kmock
import pytest
import pytest_asyncio
from kmock._internal import dicts as kmock_dicts

import prometheus_server
from fake_engine import FakeEngine
from prometheus_server import PrometheusServer

__all__ = ["Cluster"]

MEMPLACE_RESOURCES: dict[str, dict[str, Any]] = {
    "memplace.io/v1alpha1/modeldeployments": dict(
        kind="ModelDeployment", singular="modeldeployment", namespaced=True,
        shortnames={"mdep"}, categories={"memplace"}, subresources={"status"},
    ),
    "memplace.io/v1alpha1/placementpools": dict(
        kind="PlacementPool", singular="placementpool", namespaced=False,
        categories={"memplace"}, subresources={"status"},
    ),
    "memplace.io/v1alpha1/nodememoryreports": dict(
        kind="NodeMemoryReport", singular="nodememoryreport", namespaced=False,
        categories={"memplace"}, subresources={"status"},
    ),
    "memplace.io/v1alpha1/modeladapters": dict(
        kind="ModelAdapter", singular="modeladapter", namespaced=True,
        shortnames={"madapter"}, categories={"memplace"}, subresources={"status"},
    ),
    "memplace.io/v1alpha1/performanceprofiles": dict(
        kind="PerformanceProfile", singular="performanceprofile", namespaced=False,
        shortnames={"mperf"}, categories={"memplace"}, subresources={"status"},
    ),
}
KOPF_RESOURCES: dict[str, dict[str, Any]] = {  # Kopf's peering CRDs (peering.crd.yaml)
    "kopf.dev/v1/clusterkopfpeerings": dict(
        kind="ClusterKopfPeering", singular="clusterkopfpeering", namespaced=False,
    ),
    "kopf.dev/v1/kopfpeerings": dict(
        kind="KopfPeering", singular="kopfpeering", namespaced=True,
    ),
}
VERBS = {"create", "delete", "get", "list", "patch", "update", "watch"}


class Cluster(kmock.KubernetesEmulator):
    """KMock's emulator plus the metadata a real API server stamps on writes (kmock#33)."""

    _versions = itertools.count(1000)
    _refused: dict[tuple[str, str], str] | None = None
    authorize: Callable[[kmock.Request], None] | None = None  # raises 403 (operator/rbac_support)
    operator_token: str = "memplace-operator-token"  # the operator's credential; tests are admin

    def refuse(self, plural: str, name: str, message: str, status: int = 422,
               reason: str = "Invalid") -> None:
        """Answer ``status`` (422 unless told) with ``message`` to every create or patch of the
        object ``plural``/``name``: a 500 for a full Service range, a 403 for a quota, a 400
        for an admission webhook's denial."""
        self._refused = {**(self._refused or {}), (plural, name): (message, status, reason)}

    async def _handle(self, request: kmock.Request) -> Any:
        if self.authorize is not None:
            self.authorize(request)
        if request.resource is not None:
            self._check_refused(request)
            if request.action == kmock.action.CREATE and isinstance(request.data, dict):
                self._stamp_created(request)
            elif request.action == kmock.action.UPDATE and request.name is not None:
                self._stamp_patched(request)
        return await super()._handle(request)

    def _check_refused(self, request: kmock.Request) -> None:
        if request.action == kmock.action.CREATE and isinstance(request.data, dict):
            name = request.data.get("metadata", {}).get("name")
        elif request.action == kmock.action.UPDATE:
            name = request.name
        else:
            return
        refused = (self._refused or {}).get((request.resource.plural, name))
        if refused is not None:
            message, status, reason = refused
            raise kmock.KubernetesError(status=status, reason=reason, message=message)

    def _stamp_created(self, request: kmock.Request) -> None:
        meta = request.data.setdefault("metadata", {})
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = meta["generateName"] + uuid.uuid4().hex[:5]
        if request.namespace and not meta.get("namespace"):
            meta["namespace"] = request.namespace
        meta.setdefault("uid", str(uuid.uuid4()))
        meta["resourceVersion"] = str(next(self._versions))
        meta["generation"] = 1
        meta.setdefault("creationTimestamp", _now())

    def _stamp_patched(self, request: kmock.Request) -> None:
        key = (request.resource, request.namespace, request.name)
        if key not in self.objects or self.objects[key].deleted:
            return  # the emulator answers 404 itself
        old = copy.deepcopy(self.objects[key].raw)
        meta = old.get("metadata", {})
        if isinstance(request.data, dict):
            wanted = (request.data.get("metadata") or {}).get("resourceVersion")
            if wanted is not None and wanted != meta.get("resourceVersion"):
                raise kmock.KubernetesError(
                    status=409, reason="Conflict",
                    message=f"the object has been modified (resourceVersion "
                            f"{meta.get('resourceVersion')}, not {wanted})")
        try:
            new = kmock_dicts.patch_dict(old, request.data)
        except Exception:  # noqa: BLE001 — a failing JSON-patch `test` op: the emulator answers
            return
        stamps = {"resourceVersion": str(next(self._versions))}
        if new.get("spec") != old.get("spec"):
            stamps["generation"] = int(meta.get("generation", 1)) + 1
        if isinstance(request.data, dict):
            request.data.setdefault("metadata", {}).update(stamps)
        elif isinstance(request.data, list):
            request.data.extend(
                {"op": "add", "path": f"/metadata/{field}", "value": value}
                for field, value in stamps.items()
            )

    # Conveniences for tests: real HTTP through the emulator, so the stamps and watch events happen.

    async def create(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        async with self.post(path, json=body) as response:
            assert response.status < 300, await response.text()
            return await response.json()

    async def merge_patch(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        headers = {"Content-Type": "application/merge-patch+json"}
        async with self.patch(path, json=body, headers=headers) as response:
            assert response.status < 300, await response.text()
            return await response.json()

    async def remove(self, path: str) -> None:
        async with self.delete(path) as response:
            assert response.status < 300, await response.text()

    def seen(self) -> list[kmock.Request]:
        """Every request the emulator served, in order."""
        return list(self._requests)

    def stored(self, resource: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        """The stored object as a plain dict, or None when absent or deleted."""
        key = (kmock.resource(resource), namespace, name)
        if key not in self.objects or self.objects[key].deleted:
            return None
        return copy.deepcopy(self.objects[key].raw)

    def stored_all(self, resource: str) -> list[dict[str, Any]]:
        wanted = kmock.resource(resource)
        return [
            copy.deepcopy(obj.raw)
            for (res, _, _), obj in self.objects.items()
            if res == wanted and not obj.deleted
        ]

    def events(self, namespace: str | None = None) -> list[dict[str, Any]]:
        return [
            event for event in self.stored_all("v1/events")
            if namespace is None or event.get("metadata", {}).get("namespace") == namespace
        ]


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest_asyncio.fixture()
async def cluster() -> AsyncIterator[Cluster]:
    """An emulated API server on localhost; Kopf (if imported) logs in to it."""
    emulator = Cluster()
    emulator.resources.load_bundled()
    for resource, info in (MEMPLACE_RESOURCES | KOPF_RESOURCES).items():
        emulator.resources[resource] = kmock.ResourceInfo(verbs=VERBS, **info)
    async with emulator, kmock.Server(emulator):
        _LOGIN["server"] = str(emulator.url).rstrip("/")
        try:
            yield emulator
        finally:
            _LOGIN.pop("server", None)


# Kopf's registry is process-wide and its login handler is picked per run; the handler reads
# the URL of the current test's emulator from here.
_LOGIN: dict[str, str] = {}


def register_kopf_login(registry: Any = None) -> None:
    """Log Kopf in to the current test's emulator (the default registry unless one is given)."""
    import kopf

    @kopf.on.login(id="kmock-login", registry=registry)
    def _login_to_the_emulator(**_: Any) -> kopf.ConnectionInfo:
        return kopf.ConnectionInfo(server=_LOGIN["server"], insecure=True,
                                   token=Cluster.operator_token)


register_kopf_login()


@pytest.fixture()
def prometheus() -> Iterator[Callable[..., PrometheusServer]]:
    """Start real Prometheus servers: ``prometheus(["127.0.0.1:PORT", ...])`` returns a ready one
    scraping those targets every second (see ``tests/prometheus_server.py``); all are stopped
    after the test. Skips, saying why, when no ``prometheus`` binary is installed."""
    if prometheus_server.binary() is None:
        pytest.skip(prometheus_server.NOT_INSTALLED)
    started: list[PrometheusServer] = []

    def _start(targets: Iterable[str], **kwargs: Any) -> PrometheusServer:
        server = prometheus_server.start(targets, **kwargs)
        started.append(server)
        return server

    try:
        yield _start
    finally:
        for server in started:
            server.stop()


@pytest.fixture()
def fake_engine() -> Iterator[Callable[..., FakeEngine]]:
    """Start fake vLLM exporters (``tests/fake_engine.py``): ``fake_engine()`` returns one whose
    ``target`` a ``prometheus`` server can scrape; all are stopped after the test."""
    started: list[FakeEngine] = []

    def _start(**kwargs: Any) -> FakeEngine:
        engine = FakeEngine(**kwargs)
        started.append(engine)
        return engine

    try:
        yield _start
    finally:
        for engine in started:
            engine.close()

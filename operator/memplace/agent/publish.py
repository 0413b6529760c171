"""Write the node's ``NodeMemoryReport``: create it once, then merge-patch its ``/status``.

The report is owned by its Node (``ownerReferences``, read from the Node's uid), so deleting the
Node garbage-collects it. Status goes through the status subresource as a JSON merge patch: no
resourceVersion is needed (so no 409 between writers), and it works the same on a real API
server and on KMock. In a merge patch an absent key is *kept*: a field that became unset is sent
as ``null`` so that, for example, ``nvml.error`` disappears once NVML recovers.

Transient failures (409, 429, 5xx, no connection) are retried with exponential backoff, capped;
after ``attempts`` tries ``PublishError`` is raised, the loop counts it and carries on. Other
answers (400, 403, 404 …) are raised at once: retrying would not change them.

RBAC the agent needs (ClusterRole):
- ``memplace.io`` ``nodememoryreports``: get, create, patch
- ``memplace.io`` ``nodememoryreports/status``: get, patch
- ``""`` ``nodes``: get
- ``""`` ``pods``: list (names the pods behind GPU processes; optional)
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from memplace.agent.errors import PublishError
from memplace.agent.report import owner_reference
from memplace.api import NODE_MEMORY_REPORT

__all__ = ["Backoff", "Publisher", "is_transient", "merge_patch_body"]

logger = logging.getLogger(__name__)
T = TypeVar("T")

TRANSIENT_STATUSES = frozenset({409, 429, 500, 502, 503, 504})


@dataclasses.dataclass(frozen=True)
class Backoff:
    """Delays between tries: initial, ×factor, capped; ``attempts`` tries in all."""

    initial: float = 1.0
    factor: float = 2.0
    cap: float = 30.0
    attempts: int = 5

    def delays(self) -> Iterator[float]:
        delay = self.initial
        for _ in range(self.attempts - 1):
            yield min(delay, self.cap)
            delay *= self.factor


def _status_of(error: BaseException) -> int | None:
    status = getattr(error, "status", None)
    return int(status) if isinstance(status, int) and status else None


def is_transient(error: BaseException) -> bool:
    """Worth retrying: a conflict, throttling, a server error, or no answer at all."""
    from kubernetes.client.exceptions import ApiException
    from urllib3.exceptions import HTTPError

    if isinstance(error, ApiException):
        status = _status_of(error)
        return status is None or status in TRANSIENT_STATUSES or status >= 500
    return isinstance(error, HTTPError | OSError)


def merge_patch_body(value: Any, *, inside_list: bool = False) -> Any:
    """Keep ``None`` in mappings (a merge patch deletes those keys), drop it inside lists
    (lists are replaced whole, and a null in an item would be stored as a null)."""
    if isinstance(value, dict):
        return {
            key: merge_patch_body(item, inside_list=inside_list)
            for key, item in value.items()
            if not (inside_list and item is None)
        }
    if isinstance(value, list):
        return [merge_patch_body(item, inside_list=True) for item in value]
    return value


class Publisher:
    """Writes one node's report through the official ``kubernetes`` client."""

    def __init__(
        self,
        node_name: str,
        custom_api: Any,
        core_api: Any,
        *,
        backoff: Backoff | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.node_name = node_name
        self.custom_api = custom_api
        self.core_api = core_api
        self.backoff = backoff or Backoff()
        self.sleep = sleep
        self._node_uid: str | None = None
        self._exists = False

    @classmethod
    def from_config(
        cls, node_name: str, kubeconfig: str | None = None, *, once: bool = False, **kwargs: Any
    ) -> Publisher:
        """In-cluster config when in a pod (and no --kubeconfig), else the kubeconfig file, into a
        Configuration of its own. ``once`` (``memplace agent --once``): each call is tried once —
        urllib3's retries off (the first connection error is raised, nothing is logged) and one
        backoff attempt."""
        from kubernetes import client, config

        configuration = client.Configuration()
        if kubeconfig is None:
            try:
                config.load_incluster_config(client_configuration=configuration)
            except config.ConfigException:
                config.load_kube_config(client_configuration=configuration)
        else:
            config.load_kube_config(config_file=kubeconfig, client_configuration=configuration)
        if once:
            configuration.retries = False
            kwargs.setdefault("backoff", Backoff(attempts=1))
        api = client.ApiClient(configuration)
        return cls(node_name, client.CustomObjectsApi(api), client.CoreV1Api(api), **kwargs)

    # -- retries ----------------------------------------------------------------------------

    def _retry(self, what: str, call: Callable[[], T]) -> T:
        delays = self.backoff.delays()
        while True:
            try:
                return call()
            except Exception as error:
                if not is_transient(error):
                    raise PublishError(f"{what}: {error}", status=_status_of(error)) from error
                delay = next(delays, None)
                if delay is None:
                    raise PublishError(
                        f"{what}: gave up after {self.backoff.attempts} tries: {error}",
                        status=_status_of(error),
                    ) from error
                logger.warning("%s failed (%s); retrying in %.1fs", what, error, delay)
                self.sleep(delay)

    # -- the steps --------------------------------------------------------------------------

    def node_uid(self) -> str:
        if self._node_uid is None:
            node = self._retry("read Node", lambda: self.core_api.read_node(self.node_name))
            self._node_uid = node.metadata.uid
        return self._node_uid

    def _create(self, report: dict[str, Any]) -> None:
        from kubernetes.client.exceptions import ApiException

        body = {key: value for key, value in report.items() if key != "status"}
        try:
            self.custom_api.create_cluster_custom_object(
                NODE_MEMORY_REPORT.group,
                NODE_MEMORY_REPORT.version,
                NODE_MEMORY_REPORT.plural,
                body,
            )
        except ApiException as error:
            if error.status != 409:
                raise
            # It exists (an earlier agent): make sure it is ours and says which node.
            self.custom_api.patch_cluster_custom_object(
                NODE_MEMORY_REPORT.group,
                NODE_MEMORY_REPORT.version,
                NODE_MEMORY_REPORT.plural,
                self.node_name,
                {
                    "metadata": {"ownerReferences": body["metadata"].get("ownerReferences")},
                    "spec": body["spec"],
                },
            )

    def _patch_status(self, status: dict[str, Any]) -> None:
        self.custom_api.patch_cluster_custom_object_status(
            NODE_MEMORY_REPORT.group,
            NODE_MEMORY_REPORT.version,
            NODE_MEMORY_REPORT.plural,
            self.node_name,
            {"status": merge_patch_body(status)},
        )

    def publish(self, report: dict[str, Any], status_patch: dict[str, Any]) -> None:
        """Create the report if needed, then patch its status.

        ``report``: the object as ``report.to_report`` builds it (status is left out of the
        create: the API server ignores it there). ``status_patch``: the status with unset fields
        as None (``NodeMemoryReportStatus.model_dump(by_alias=True, mode="json")``).
        """
        from kubernetes.client.exceptions import ApiException

        uid = self.node_uid()
        report = {**report, "metadata": {**report.get("metadata", {})}}
        report["metadata"]["ownerReferences"] = [owner_reference(self.node_name, uid)]
        if not self._exists:
            self._retry("create NodeMemoryReport", lambda: self._create(report))
            self._exists = True
        try:
            self._retry("patch NodeMemoryReport status", lambda: self._patch_status(status_patch))
        except PublishError as error:
            if isinstance(error.__cause__, ApiException) and error.status == 404:
                self._exists = False  # deleted under us: create it again next time
            raise

    def pod_names(self) -> dict[str, tuple[str, str]]:
        """Pod UID → (namespace, name) for the pods on this node; empty if not allowed."""
        try:
            pods = self.core_api.list_pod_for_all_namespaces(
                field_selector=f"spec.nodeName={self.node_name}"
            )
        except Exception as error:
            logger.debug("listing pods on %s: %s", self.node_name, error)
            return {}
        return {
            pod.metadata.uid: (pod.metadata.namespace, pod.metadata.name)
            for pod in pods.items
            if pod.metadata and pod.metadata.uid
        }

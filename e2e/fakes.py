"""Fake GPU nodes for a real control plane (``E2E_FAKE_NODES=1``), and bounded polling.

A fake node is a Node object with the GPU Feature Discovery labels and ``nvidia.com/gpu``
capacity of an 8×A100 node. No kubelet runs for it, so :class:`FakeNodes` does the three parts
of a kubelet's job that the control plane notices:

- **Heartbeats.** The node lifecycle controller marks a node whose Ready condition's
  ``lastHeartbeatTime`` and whose Lease in ``kube-node-lease`` have both stood still for
  ``--node-monitor-grace-period`` (40 s; 50 s in newer releases) as Unknown and taints it
  ``node.kubernetes.io/unreachable`` (NoSchedule, then NoExecute), and memplace leaves a node
  that is not Ready out of its pools. Every ``HEARTBEAT_S`` the Lease is renewed and the
  Ready condition re-posted with a fresh heartbeat (and its first ``lastTransitionTime``: it
  did not transition).
- **Status through ``/status``.** Capacity and allocatable are sent with the POST (a Node keeps
  the status it is created with: the kubelet registers that way) and PATCHed through the
  ``/status`` subresource at once, the only way an existing Node's status can be written.
- **Finishing deletions.** The API server deletes a bound pod gracefully: it sets
  ``deletionTimestamp`` and waits for the node's kubelet to confirm. With no kubelet the pod
  would stay Terminating for ever, holding its GPUs in the scheduler's view and keeping its
  namespace from being deleted. Every ``TICK_S`` the pods on these nodes that are being deleted
  are deleted with grace period 0, as the kubelet does once their containers are gone.

The pods themselves never run: they stay Pending once bound, so Deployments never become Ready
and memplace's phase stays Placed. e2e asserts that the scheduler bound them, not that they run.
"""

from __future__ import annotations

import datetime
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from kubeapi import Api, ApiError

__all__ = [
    "A100_LABELS",
    "FakeNodes",
    "lease_manifest",
    "node_manifest",
    "node_status",
    "pods_to_finish",
    "wait_for",
]

HEARTBEAT_S = 10.0  # the kubelet's nodeStatusUpdateFrequency and lease renew interval
TICK_S = 2.0
LEASE_NAMESPACE = "kube-node-lease"
LEASE_DURATION_S = 40  # the kubelet's nodeLeaseDurationSeconds default
FAKE_LABEL = "memplace.io/e2e-fake-node"
A100_LABELS = {  # GPU Feature Discovery's labels on an 8×A100-SXM4-80GB node
    "nvidia.com/gpu.present": "true",
    "nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB",
    "nvidia.com/gpu.count": "8",
    "nvidia.com/gpu.memory": "81920",
}
RESOURCES = {"nvidia.com/gpu": "8", "cpu": "96", "memory": "1000Gi", "pods": "110"}


def wait_for(
    check: Callable[[], Any],
    timeout: float = 90,
    what: str = "condition",
    interval: float = 1.0,
    state: Callable[[], Any] | None = None,
) -> Any:
    """Poll ``check`` until it returns something true; on timeout fail saying what was awaited
    and, with ``state``, what there was instead."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() >= deadline:
            break
        time.sleep(interval)
    seen = ""
    if state is not None:
        try:
            seen = f"\nstate at the timeout: {state()}"
        except Exception as error:  # the message must still say what timed out
            seen = f"\n(state unavailable: {error!r})"
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}{seen}")


def _time(now: datetime.datetime) -> str:
    return now.strftime("%Y-%m-%dT%H:%M:%SZ")


def _micro_time(now: datetime.datetime) -> str:
    return now.strftime("%Y-%m-%dT%H:%M:%S.%fZ")  # a Lease's renewTime is a MicroTime


def node_status(now: datetime.datetime, since: datetime.datetime) -> dict[str, Any]:
    """A Ready node's status: heartbeat ``now``, Ready since ``since``."""
    return {
        "capacity": dict(RESOURCES),
        "allocatable": dict(RESOURCES),
        "conditions": [
            {
                "type": "Ready",
                "status": "True",
                "reason": "KubeletReady",
                "message": "fake GPU node (memplace e2e): no kubelet, a heartbeat",
                "lastHeartbeatTime": _time(now),
                "lastTransitionTime": _time(since),
            }
        ],
    }


def node_manifest(name: str, labels: Mapping[str, str], now: datetime.datetime) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                FAKE_LABEL: "true",
                **A100_LABELS,
                **labels,
            },
        },
        "status": node_status(now, now),
    }


def lease_manifest(name: str, node_uid: str, now: datetime.datetime) -> dict[str, Any]:
    """The node's heartbeat Lease, owned by the Node (the garbage collector removes it with
    the Node), as the kubelet writes it."""
    return {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {
            "name": name,
            "namespace": LEASE_NAMESPACE,
            "ownerReferences": [
                {"apiVersion": "v1", "kind": "Node", "name": name, "uid": node_uid}
            ],
        },
        "spec": {
            "holderIdentity": name,
            "leaseDurationSeconds": LEASE_DURATION_S,
            "renewTime": _micro_time(now),
        },
    }


def pods_to_finish(
    pods: Iterable[Mapping[str, Any]], nodes: Iterable[str]
) -> list[tuple[str, str, str]]:
    """(namespace, name, uid) of each pod bound to one of ``nodes`` whose deletion waits for a
    kubelet (``deletionTimestamp`` set)."""
    names = set(nodes)
    return [
        (pod["metadata"]["namespace"], pod["metadata"]["name"], pod["metadata"]["uid"])
        for pod in pods
        if pod["metadata"].get("deletionTimestamp")
        and (pod.get("spec") or {}).get("nodeName") in names
    ]


class FakeNodes:
    """Fake 8×A100 nodes kept Ready by a thread; :meth:`close` stops it and deletes them."""

    def __init__(self, api: Api, tick_s: float = TICK_S, heartbeat_s: float = HEARTBEAT_S) -> None:
        self.tick_s, self.heartbeat_s = tick_s, heartbeat_s
        self.api = api.copy()  # the thread's own client: httpx clients are not shared here
        self.names: list[str] = []
        self.since: dict[str, datetime.datetime] = {}
        self.errors: dict[str, str] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fake-kubelet", daemon=True)
        self._thread.start()

    def add(self, name: str, labels: Mapping[str, str]) -> None:
        now = datetime.datetime.now(datetime.UTC)
        with self._lock:
            node = self.api.create("/api/v1/nodes", node_manifest(name, labels, now))
            self.api.merge_patch(f"/api/v1/nodes/{name}/status", {"status": node_status(now, now)})
            self.api.create(
                f"/apis/coordination.k8s.io/v1/namespaces/{LEASE_NAMESPACE}/leases",
                lease_manifest(name, node["metadata"]["uid"], now),
            )
            self.since[name] = now
            self.names.append(name)

    def state(self) -> str:
        """Each node's Ready condition and taints, and the last error of the heartbeat: what a
        timed-out wait reports."""
        lines = []
        for name in list(self.names):
            with self._lock:
                node = self.api.get(f"/api/v1/nodes/{name}") or {}
            ready = [
                c
                for c in (node.get("status") or {}).get("conditions") or []
                if c.get("type") == "Ready"
            ]
            taints = [
                f"{t['key']}:{t['effect']}" for t in (node.get("spec") or {}).get("taints") or []
            ]
            lines.append(f"{name}: Ready={ready[0]['status'] if ready else None} taints={taints}")
        lines += [f"heartbeat error ({what}): {error}" for what, error in self.errors.items()]
        return "; ".join(lines)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=60)
        for name in self.names:
            self.api.delete(f"/api/v1/nodes/{name}")  # the Lease goes with it (owner)
        self.api.close()

    def _run(self) -> None:
        last_beat = time.monotonic()
        while not self._stop.wait(self.tick_s):
            self._guarded("finish deletions", self._finish_deletions)
            if time.monotonic() - last_beat >= self.heartbeat_s:
                last_beat = time.monotonic()
                self._guarded("heartbeat", self._heartbeat)

    def _guarded(self, what: str, step: Callable[[], None]) -> None:
        try:
            with self._lock:
                step()
            self.errors.pop(what, None)
        except Exception as error:  # kept for state(): the waits that time out report it
            self.errors[what] = repr(error)

    def _heartbeat(self) -> None:
        now = datetime.datetime.now(datetime.UTC)
        for name in self.names:
            self.api.merge_patch(
                f"/api/v1/nodes/{name}/status", {"status": node_status(now, self.since[name])}
            )
            self.api.merge_patch(
                f"/apis/coordination.k8s.io/v1/namespaces/{LEASE_NAMESPACE}/leases/{name}",
                {"spec": {"renewTime": _micro_time(now)}},
            )

    def _finish_deletions(self) -> None:
        if not self.names:
            return
        pods = self.api.items("/api/v1/pods?resourceVersion=0")  # the watch cache
        for namespace, name, uid in pods_to_finish(pods, self.names):
            response = self.api.request(
                "DELETE",
                f"/api/v1/namespaces/{namespace}/pods/{name}",
                json={"gracePeriodSeconds": 0, "preconditions": {"uid": uid}},
            )
            if response.status_code not in (200, 404, 409):  # 409: a new pod of that name
                raise ApiError(
                    f"finishing the deletion of {namespace}/{name}: "
                    f"{response.status_code} {response.text[:300]}",
                    request=response.request,
                    response=response,
                )

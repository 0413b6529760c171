"""The host around the GPUs: RAM, the offload disk, and which pod a GPU process belongs to.

Pure parsers (``parse_meminfo``, ``parse_cgroup``) plus thin readers over ``/proc`` and
``os.statvfs``. A GPU process PID is a *host* PID: NVML reports the host's PID namespace, so the
agent maps it to a pod only when it runs with ``hostPID: true`` (``host_pid_namespace``);
otherwise ``/proc/PID`` is some process of the agent's own container, or nothing.

cgroup lines name the pod in two spellings (the kubelet's cgroup driver decides which) and the
container by its runtime:

- systemd driver:  ``…/kubepods-burstable-pod0b4f_…_77.slice/cri-containerd-<64 hex>.scope``
  (the pod UID with ``_`` for ``-``; ``docker-``, ``crio-`` prefixes for those runtimes)
- cgroupfs driver: ``…/kubepods/burstable/pod0b4f-…-77/<64 hex>``
- cgroup v1 repeats the path once per controller (``4:memory:/kubepods/…``); v2 has one
  line, ``0::/kubepods.slice/…``. Guaranteed pods have no QoS level in the path.
"""

from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path

__all__ = [
    "HostSample",
    "PodRef",
    "host_pid_namespace",
    "parse_cgroup",
    "parse_meminfo",
    "pod_for_pid",
    "read_host",
]


@dataclasses.dataclass(frozen=True)
class HostSample:
    """Host RAM and the offload path's filesystem; None where it could not be read."""

    mem_total_bytes: int | None = None
    mem_available_bytes: int | None = None
    offload_path: str | None = None
    offload_total_bytes: int | None = None
    offload_free_bytes: int | None = None


@dataclasses.dataclass(frozen=True)
class PodRef:
    pod_uid: str
    container_id: str | None = None


def parse_meminfo(text: str) -> tuple[int | None, int | None]:
    """(MemTotal, MemAvailable) in bytes from /proc/meminfo (which says "kB" and means KiB)."""
    values: dict[str, int] = {}
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        fields = rest.split()
        if not fields or not fields[0].isdigit():
            continue
        scale = 1024 if len(fields) > 1 and fields[1].lower() == "kb" else 1
        values[key.strip()] = int(fields[0]) * scale
    return values.get("MemTotal"), values.get("MemAvailable")


_UID = r"[0-9a-f]{8}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{12}|[0-9a-f]{32}"
_POD = re.compile(rf"(?:^|[/-])pod(?P<uid>{_UID})(?:\.slice)?$")
_CONTAINER = re.compile(
    r"^(?:cri-containerd-|docker-|crio-|cri-o-|containerd-)?(?P<id>[0-9a-f]{64})(?:\.scope)?$"
)


def _parse_path(path: str) -> PodRef | None:
    segments = [s for s in path.split("/") if s]
    for position, segment in enumerate(segments):
        match = _POD.search(segment)
        if match is None:
            continue
        uid = match["uid"].replace("_", "-")
        container = None
        for following in segments[position + 1 :]:
            found = _CONTAINER.match(following)
            if found:
                container = found["id"]
                break
        return PodRef(pod_uid=uid, container_id=container)
    return None


def parse_cgroup(text: str) -> PodRef | None:
    """The pod (and container) named by a /proc/PID/cgroup file, v1 or v2; None if not a pod.

    A pod UID found with a container id wins over one without (v1 lists the pod-level path
    for some controllers); the first line wins among equals.
    """
    best: PodRef | None = None
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        ref = _parse_path(parts[2])
        if ref is None:
            continue
        if ref.container_id is not None:
            return ref
        best = best or ref
    return best


def pod_for_pid(pid: int, proc_root: str | Path = "/proc") -> PodRef | None:
    """The pod a host PID runs in, from ``/proc/PID/cgroup``; None if gone or not a pod."""
    try:
        text = (Path(proc_root) / str(pid) / "cgroup").read_text()
    except OSError:
        return None
    return parse_cgroup(text)


def host_pid_namespace(proc_root: str | Path = "/proc") -> bool:
    """Do we see the host's PIDs? On the host PID 1 is init, outside every pod's cgroup;
    in a container without ``hostPID`` PID 1 is inside ours."""
    try:
        text = (Path(proc_root) / "1" / "cgroup").read_text()
    except OSError:
        return False
    return parse_cgroup(text) is None


def read_host(offload_path: str | None = None, *, proc_root: str | Path = "/proc") -> HostSample:
    """Read /proc/meminfo and statvfs(offload_path); what cannot be read stays None."""
    try:
        total, available = parse_meminfo((Path(proc_root) / "meminfo").read_text())
    except OSError:
        total = available = None
    offload_total = offload_free = None
    if offload_path:
        try:
            stat = os.statvfs(offload_path)
        except OSError:
            pass
        else:
            offload_total = stat.f_blocks * stat.f_frsize
            offload_free = stat.f_bavail * stat.f_frsize
    return HostSample(
        mem_total_bytes=total,
        mem_available_bytes=available,
        offload_path=offload_path,
        offload_total_bytes=offload_total,
        offload_free_bytes=offload_free,
    )

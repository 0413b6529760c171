"""``status.measured``: the GPU memory a deployment's replicas hold, from the agents' reports. Pure.

Each node agent lists, per GPU, the processes holding memory and the pod each runs in
(``NodeMemoryReport.status.gpus[].processes[]``: ``usedMemoryBytes``, ``podUid``). A replica is
one pod; its figure is the sum over every process of that pod on every GPU (a tensor-parallel
replica spans several). ``gpuMemoryBytesPerReplica`` is the **largest** replica's figure, not
the mean: it is read against the per-replica estimate and the GPU the replica must fit on, and
the replica that would not fit is the largest one; a mean would hide it, and would be dragged
down by a replica still loading its weights.

What is measured is what the runtime *reserved*, not what the model needs: vLLM takes
``--gpu-memory-utilization`` × the GPU's memory up front (weights, then the rest as KV cache),
so its replicas report about that share whatever the traffic. llama.cpp and TGI allocate closer
to their needs.

``observedAt`` is the ``observedAt`` of the newest report that contributed. The operator
writes ``status.measured`` only when the byte figure changes (:func:`changed`), so a report that
only moved forward in time rewrites nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

__all__ = ["changed", "per_replica"]


def per_replica(
    pod_uids: Iterable[str], reports: Iterable[tuple[str, Any]]
) -> dict[str, Any] | None:
    """``{"gpuMemoryBytesPerReplica": …, "observedAt": …}`` for these pods, or None.

    ``reports``: (node name, ``NodeMemoryReportStatus``). None when no report lists a process of
    these pods with a memory figure (not running yet, or a driver that does not say).

    Example: pod A holds 38 GiB on GPU 0 and 38 GiB on GPU 1 (tensor parallel 2), pod B 37 GiB
    on each of two GPUs of another node: per replica 76 GiB (A's), observed at the later of the
    two reports.
    """
    wanted = {uid for uid in pod_uids if uid}
    if not wanted:
        return None
    held: dict[str, int] = {}
    observed: list[str] = []
    for _node, report in reports:
        seen_here = False
        for gpu in getattr(report, "gpus", None) or []:
            for process in gpu.processes:
                if process.pod_uid in wanted and process.used_memory_bytes is not None:
                    held[process.pod_uid] = held.get(process.pod_uid, 0) + process.used_memory_bytes
                    seen_here = True
        if seen_here and report.observed_at:
            observed.append(str(report.observed_at))
    if not held:
        return None
    return {
        "gpuMemoryBytesPerReplica": max(held.values()),
        "observedAt": max(observed, key=_instant) if observed else None,
    }


def changed(previous: Mapping[str, Any] | None, current: Mapping[str, Any] | None) -> bool:
    """Whether ``status.measured`` needs writing: the byte figure appeared, went or moved."""
    old = (previous or {}).get("gpuMemoryBytesPerReplica")
    new = (current or {}).get("gpuMemoryBytesPerReplica")
    return old != new


def _instant(text: str) -> str:
    """A sortable form of an RFC 3339 timestamp, whatever its offset."""
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return text
    return parsed.astimezone(UTC).isoformat()

"""What e2e asserts about a real cluster, as pure functions over the objects it listed.

On fake nodes no pod ever runs, so "the model runs on the pool" is checked where the real
control plane decides it: the scheduler bound every pod (``spec.nodeName``) to a node whose
labels match the pool's node selector.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["binding_problems"]


def binding_problems(
    pods: Iterable[Mapping[str, Any]],
    nodes: Iterable[Mapping[str, Any]],
    selector: Mapping[str, str],
) -> list[str]:
    """Why the live (not terminating) ``pods`` are not all bound to nodes matching
    ``selector``: one line per pod that is unbound or bound elsewhere; empty when all are."""
    labels = {node["metadata"]["name"]: node["metadata"].get("labels") or {} for node in nodes}
    problems = []
    for pod in pods:
        if pod["metadata"].get("deletionTimestamp"):
            continue
        name, node = pod["metadata"]["name"], (pod.get("spec") or {}).get("nodeName")
        if not node:
            scheduled = [
                c
                for c in (pod.get("status") or {}).get("conditions") or []
                if c.get("type") == "PodScheduled"
            ]
            why = f": {scheduled[0].get('message')}" if scheduled else ""
            problems.append(f"{name} is not bound{why}")
        elif node not in labels:
            problems.append(f"{name} is bound to {node}, which is not a node")
        elif any(labels[node].get(key) != value for key, value in selector.items()):
            problems.append(f"{name} is bound to {node}, outside the pool {dict(selector)}")
    return problems

"""What the operator writes to a PlacementPool's ``status``: what the planner made of it. Pure.

The planner's inventory (``planning.inventory.build_cluster``) already resolves every pool: its
schedulable nodes, usable GPUs, the price in use and where it came from, or why the pool is left
out (``Cluster.excluded``: ``NoPrice``, ``Invalid``). This module only reads that back; it
decides nothing. Conditions (``metav1.Condition`` rules, as in ``status``):

- ``Valid``: the spec parses and its GPU is in the catalogue (reasons ``Valid``, ``Invalid``).
- ``Priced``: a price is known, from ``spec.pricePerNodeHour`` or the catalogue by instance type
  (reasons ``Priced``, ``NoPrice``).
- ``Ready``: the planner can place on the pool now: valid, priced, and at least one schedulable
  node (reasons ``Ready``, ``Invalid``, ``NoPrice``, ``NoNodes``).

``nodes`` counts schedulable nodes (cordoned and NotReady nodes are left out, and a node that
matches several pools belongs to the first by name); ``gpus`` counts the GPUs on them the
planner may use (a fresh agent report leaves out unhealthy ones). A pool left out has neither:
the planner did not size it.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from .status import set_condition

__all__ = ["pool_status", "status_changes"]


def pool_status(
    name: str,
    generation: int | None,
    cluster: Any,
    previous: Mapping[str, Any] | None,
    *,
    error: str | None = None,
    now: datetime,
) -> dict[str, Any]:
    """The whole status of pool ``name`` (conditions keep their lastTransitionTime).

    ``cluster``: the ``Cluster`` built from every pool, node and report; ``error``: why the spec
    itself did not parse (then the cluster does not know the pool)."""
    previous = previous or {}
    conditions: list[dict[str, Any]] = list(previous.get("conditions") or [])

    def set_(type_: str, ok: bool, reason: str, message: str) -> None:
        nonlocal conditions
        conditions = set_condition(
            conditions, type_, ok, reason, message, generation=generation, now=now
        )

    status: dict[str, Any] = {
        "observedGeneration": generation,
        "nodes": None,
        "gpus": None,
        "pricePerNodeHour": None,
        "priceSource": None,
    }
    pool = None if error is not None else cluster.pool(name)
    excluded = next((e for e in cluster.excluded if e.name == name), None)
    if error is not None:
        set_("Valid", False, "Invalid", f"spec is not valid: {error}")
        set_("Priced", False, "Invalid", "the spec is not valid")
        set_("Ready", False, "Invalid", f"spec is not valid: {error}")
    elif pool is None and excluded is not None and excluded.code == "NoPrice":
        set_("Valid", True, "Valid", "the spec is valid")
        set_("Priced", False, "NoPrice", f"{excluded.reason}; set pricePerNodeHour or instanceType")
        set_("Ready", False, "NoPrice", f"left out: {excluded.reason}")
    elif pool is None:
        why = excluded.reason if excluded is not None else "the planner does not know this pool"
        set_("Valid", False, "Invalid", why)
        set_("Priced", False, "Invalid", "the pool cannot be sized")
        set_("Ready", False, "Invalid", f"left out: {why}")
    else:
        gpus = 0 if pool.cpu_only else cluster.capacity(name).total_gpus
        status.update(
            nodes=len(pool.nodes),
            gpus=gpus,
            pricePerNodeHour=pool.price_per_node_hour,
            priceSource=pool.price_source,
        )
        set_("Valid", True, "Valid", "the spec is valid")
        set_(
            "Priced",
            True,
            "Priced",
            f"${pool.price_per_node_hour:.2f} per node-hour from {pool.price_source}",
        )
        if pool.nodes:
            what = "CPU-only" if pool.cpu_only else f"{gpus} x {pool.gpu_name} GPU"
            set_("Ready", True, "Ready", f"{len(pool.nodes)} schedulable node(s), {what}")
        else:
            selector = ",".join(f"{k}={v}" for k, v in sorted(pool.node_selector.items()))
            set_("Ready", False, "NoNodes", f"nodeSelector {selector} matches no schedulable node")
    status["conditions"] = conditions
    return status


def status_changes(previous: Mapping[str, Any] | None, new: Mapping[str, Any]) -> dict[str, Any]:
    """The fields of ``new`` that differ from ``previous`` (empty: write nothing)."""
    previous = previous or {}
    return {k: v for k, v in new.items() if previous.get(k) != v}

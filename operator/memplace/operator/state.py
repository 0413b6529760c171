"""What the operator keeps in memory for one run, and nothing that matters after a crash.

The indexes (``@kopf.index``) are rebuilt from the cluster on start and the running placement
is read back from ``status``. What lives only here (which pools stuck pods marked full, the
stamp of each deployment's last plan, the planning Cluster, the placements decided since the
indexes last caught up) is rebuilt by observation after a restart, so a crash loses nothing
that matters: the next reconcile re-plans and finds the Deployment already matching.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from typing import Any

from . import inputs
from .capacity import Ledger, Stamp
from .metrics import Metrics
from .settings import Settings

Key = tuple[str, str]
"""A ModelDeployment's ``(namespace, name)``."""


@dataclass
class State:
    """What the operator keeps in memory for one run (rebuilt after a restart)."""

    settings: Settings
    metrics: Metrics
    planning: asyncio.Lock = field(default_factory=asyncio.Lock)
    recent: dict[Key, inputs.Placed | None] = field(default_factory=dict)
    fingerprints: dict[Key, Stamp] = field(default_factory=dict)
    """What the cluster looked like when each deployment was last planned (``Ledger.stamp``);
    none: re-plan it on the next resync pass."""
    inventory_events: int = 0
    """How many times the PlacementPool and Node index handlers ran (``indexed.quick_key``)."""
    observed: dict[Key, str | None] = field(default_factory=dict)
    """Per deployment, the ``resourceVersion`` whose status the resync loop last put in the
    metrics (skipped while it stays the same: ``resync._refresh_readiness``)."""
    ledger: Ledger = field(default_factory=Ledger)
    """The one planning Cluster, its reservations moved on placement, release and capacity
    events (``capacity``)."""
    full_pools: dict[Key, frozenset[str]] = field(default_factory=dict)
    configs: dict[str, dict[str, Any]] = field(default_factory=dict)
    waiting: dict[Key, tuple[str, Any]] = field(default_factory=dict)
    """What each Pending deployment waits for and since when (``reconcile.waited``)."""
    metrics_port: int | None = None
    kopf_settings: Any = None
    resync_task: asyncio.Task[None] | None = None
    paused: str | None = None
    """Why the resync loop is not acting (a peer outranks this replica), or None."""
    measure_task: asyncio.Task[None] | None = None
    """The measurement loop (``measure``), once started."""
    scrape_mode: Any = None
    """How Prometheus finds the pods, ``--scrape`` with ``auto`` settled (``scrape.resolve``)."""
    keda: bool | None = None
    """Whether the cluster serves KEDA's ScaledObjects (``keda.present``), once per run."""
    keda_http: bool | None = None
    """Whether it serves the KEDA HTTP add-on's HTTPScaledObjects (``keda_http.present``)."""
    watches: dict[Key, Any] = field(default_factory=dict)
    """What the measurement loop remembers per deployment between windows (``measure.Watch``)."""
    targets: dict[Key, tuple[Any, Any]] = field(default_factory=dict)
    """Per deployment, ((generation, planned demand), placement) the last batch re-plan chose
    (``consolidate``)."""
    batch_capacity: int | None = None
    """The capacity fingerprint of the last batch re-plan; None: none yet (startup)."""
    batch_time: float = 0.0
    """When the last batch re-plan ran (``time.monotonic``)."""
    costs: dict[Key, Any] = field(default_factory=dict)
    """Per deployment, the cost per hour since when (``cost_history``): status.cost.last24h."""
    too_few: dict[Key, int] = field(default_factory=dict)
    """Per deployment, the replicas the last TooFewReplicas Warning said the demand needs: a
    re-plan from a status not yet written back never warns twice."""

    def forget(self, key: Key) -> None:
        """Drop what is kept about a deleted ModelDeployment, its metrics included."""
        self.metrics.forget(*key)
        for table in (
            self.recent,
            self.fingerprints,
            self.full_pools,
            self.watches,
            self.targets,
            self.costs,
            self.too_few,
            self.waiting,
            self.observed,
        ):
            table.pop(key, None)
        self.recent.pop(inputs.successor_key(key), None)


async def stop_loops(state: State) -> None:
    """Cancel the background loops this run started (resync, measure), and wait until each has
    stopped."""
    for task in (state.resync_task, state.measure_task):
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

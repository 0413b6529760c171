"""Whether this replica is the active one under Kopf's peering; the resync loop asks each pass.

Kopf pauses a peered replica by closing its watch streams and stopping its own daemons and
timers; it does not know about memplace's resync loop (an asyncio task, not a Kopf daemon: those
need a finalizer on every object). So the loop reads the peering object itself and acts only when
Kopf's own rule (``kopf._core.engines.peering.process_peering_event``) would leave this replica
running:

- standalone (no peering): always active;
- the peering object is read from the API (``ClusterKopfPeering``, or ``KopfPeering`` in each
  namespace that holds a ModelDeployment when the operator watches namespaces); its ``status``
  maps each replica's identity to ``{priority, lifetime, lastseen}``;
- a peer is live until ``lastseen + lifetime``; this replica is paused while a live peer other
  than itself has a **higher or the same** priority (Kopf pauses every replica sharing the top
  priority, unless shard selectors are set);
- no peering object: paused when peering is mandatory (``--peering NAME``: Kopf waits for it),
  active in Kopf's auto-detection mode.

This replica's identity is Kopf's: ``POD_ID`` (the chart sets it to the pod name; see Kopf's
``detect_own_id``). ``memplace run --peering`` sets ``POD_ID`` when it is unset, so both agree.
Should it still be missing, one live entry with this replica's priority is taken to be this
replica (priorities are random by default, so a peer sharing it is as unlikely as it is fatal
to Kopf too).
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Iterable, Mapping
from typing import Any

from . import kube

__all__ = ["GROUP", "active", "blocking_peers", "own_identity", "url"]

GROUP = "kopf.dev/v1"
DEFAULT_LIFETIME = 60  # Kopf's, for peers that do not say


def own_identity() -> str | None:
    """Kopf's identity of this process when it can be known (``POD_ID``), else None."""
    return os.environ.get("POD_ID") or None


def blocking_peers(
    status: Mapping[str, Any] | None,
    *,
    identity: str | None,
    priority: int,
    now: datetime.datetime,
    same_priority_pauses: bool = True,
) -> list[str]:
    """The live peers that make Kopf pause this replica; empty: this replica is active.

    ``status``: the peering object's status, identity → ``{priority, lifetime, lastseen}``."""
    same: list[str] = []
    higher: list[str] = []
    for peer, info in (status or {}).items():
        if peer == identity or not isinstance(info, Mapping) or _expired(info, now):
            continue
        theirs = int(info.get("priority", 0) or 0)
        if theirs > priority:
            higher.append(peer)
        elif theirs == priority and same_priority_pauses:
            same.append(peer)
    if identity is None:
        same = same[1:]  # one of them is this replica, under Kopf's made-up identity
    return sorted(higher) + sorted(same)


def url(name: str, namespace: str | None) -> str:
    plural = "kopfpeerings" if namespace else "clusterkopfpeerings"
    return kube.path(GROUP, plural, namespace, name)


async def active(
    settings: Any, api: kube.Kube, namespaces: Iterable[str], now: datetime.datetime
) -> tuple[bool, str]:
    """(whether this replica may write now, why not); ``settings``: Kopf's OperatorSettings."""
    peering = settings.peering
    if peering.standalone:
        return True, ""
    where: list[str | None] = [None] if peering.clusterwide else sorted(set(namespaces))
    identity = own_identity()
    same_pauses = not settings.watching.shard_selectors
    for namespace in where:
        body = await api.get(url(peering.name, namespace))
        if body is None:
            if peering.mandatory:
                return False, f"peering {_named(peering.name, namespace)} does not exist"
            continue
        blockers = blocking_peers(
            body.get("status"),
            identity=identity,
            priority=int(peering.priority),
            now=now,
            same_priority_pauses=same_pauses,
        )
        if blockers:
            return False, (
                f"peering {_named(peering.name, namespace)}: live peers "
                f"{', '.join(blockers)} have priority {peering.priority} or higher"
            )
    return True, ""


def _expired(info: Mapping[str, Any], now: datetime.datetime) -> bool:
    lastseen = info.get("lastseen")
    if lastseen is None:
        return False  # Kopf takes a peer without lastseen as seen now
    try:
        seen = datetime.datetime.fromisoformat(str(lastseen).replace("Z", "+00:00"))
    except ValueError:
        return False
    if seen.tzinfo is None:
        seen = seen.replace(tzinfo=datetime.UTC)
    lifetime = int(info.get("lifetime", DEFAULT_LIFETIME) or 0)
    return seen + datetime.timedelta(seconds=lifetime) <= now


def _named(name: str, namespace: str | None) -> str:
    return f"{namespace}/{name}" if namespace else name

"""What a deployment cost over the last 24 hours, from the placements the operator saw.

Pure: the shell records a :class:`Stretch` whenever the cost per hour changes (a scale, a move,
going cold) and asks :func:`last_24h` at a given time. Stretches older than a day are dropped,
so memory stays bounded. Only what this operator process saw counts: after a restart the sum
starts again from the running placement (``status.cost.last24h`` says "estimate").
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DAY_SECONDS", "Stretch", "last_24h", "record"]

DAY_SECONDS = 24 * 3600.0


@dataclass(frozen=True)
class Stretch:
    """From ``since`` (Unix seconds) the deployment cost ``per_hour`` (until the next one)."""

    since: float
    per_hour: float


def record(history: tuple[Stretch, ...], at: float, per_hour: float) -> tuple[Stretch, ...]:
    """The history with the cost per hour from ``at`` on; unchanged costs add nothing, and
    stretches that ended more than a day before ``at`` are dropped."""
    if history and history[-1].per_hour == per_hour:
        kept = history
    else:
        kept = (*history, Stretch(at, per_hour))
    start = at - DAY_SECONDS
    while len(kept) > 1 and kept[1].since <= start:
        kept = kept[1:]
    return kept


def last_24h(history: tuple[Stretch, ...], now: float) -> float:
    """Cost of the day before ``now``: each stretch's price times its hours inside the day."""
    start = now - DAY_SECONDS
    total = 0.0
    for i, stretch in enumerate(history):
        end = history[i + 1].since if i + 1 < len(history) else now
        begin = max(stretch.since, start)
        if end > begin:
            total += stretch.per_hour * (end - begin) / 3600.0
    return round(total, 2)

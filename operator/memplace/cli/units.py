"""Durations and byte sizes as users type them on the command line (``10s``, ``1h30m``,
``256Mi``); one parser each for every subcommand. A bad value is a ``UsageError``."""

from __future__ import annotations

import re

from memplace.cli import UsageError
from memplace.planning.inventory import parse_quantity

__all__ = ["parse_duration", "parse_size"]

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str) -> float:
    """Seconds in ``"90s"``, ``"500ms"``, ``"1h30m"`` or a bare number of seconds (``"45"``)."""
    text = text.strip()
    try:
        return float(text)
    except ValueError:
        pass
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h)", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise UsageError(f"{text!r} is not a duration such as 10s, 1m, 500ms or 1h30m")
    return sum(float(number) * _UNITS[unit] for number, unit in parts)


def parse_size(text: str) -> int:
    """Bytes in a Kubernetes quantity: ``256Mi``, ``1Gi``, ``500M`` or a bare number of bytes."""
    try:
        return int(parse_quantity(text))
    except ValueError:
        raise UsageError(f"{text!r} is not a size such as 256Mi, 1Gi or 500M") from None

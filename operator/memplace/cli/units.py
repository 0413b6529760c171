"""Durations, byte sizes and counts as users type them on the command line (``10s``, ``1h30m``,
``256Mi``, ``8.2e9``); one parser each for every subcommand. A bad value is a ``UsageError``.
``significant`` prints a measured-looking figure without losing small values to rounding."""

from __future__ import annotations

import math
import re

from memplace.cli import UsageError
from memplace.planning.quantities import parse_quantity

__all__ = ["parse_count", "parse_duration", "parse_size", "significant"]

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


_COUNT_SUFFIXES = {"": 1.0, "k": 1e3, "m": 1e6, "b": 1e9, "t": 1e12}


def parse_count(text: str) -> int:
    """A positive count such as a parameter count: ``8.2e9``, ``8200000000``, ``8.2B``, ``235b``."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?(?:e\d+)?)\s*([kKmMbBtT]?)\s*", text)
    if not match:
        raise UsageError(f"{text!r} is not a count such as 8.2e9 or 8.2B")
    value = float(match[1]) * _COUNT_SUFFIXES[match[2].lower()]
    if not 1 <= value < 1e15:
        raise UsageError(f"{text!r} is out of range (1 to 1e15)")
    return round(value)


def significant(value: float, digits: int = 3) -> str:
    """``value`` with at least ``digits`` significant digits: 0.18 stays 0.180, not 0; 1234
    stays 1234 (no digits are invented past the decimal point of large numbers)."""
    if value == 0 or not math.isfinite(value):
        return f"{value:.0f}"
    magnitude = math.floor(math.log10(abs(value)))
    decimals = max(0, digits - 1 - magnitude)
    return f"{value:.{decimals}f}"

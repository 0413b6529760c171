"""Numbers as Kubernetes writes them in, and as our messages write them out.

A Node's allocatable CPU and memory arrive as quantity strings (``"95690m"``, ``"16Gi"``); the
planner's reasons print byte counts as GiB. Both conversions live here so that the node parser,
the planner and the CLI read and write sizes one way.
"""

from __future__ import annotations

import re
from typing import Any

_QUANTITY = re.compile(r"^([+-]?[0-9.]+(?:[eE][+-]?[0-9]+)?)([a-zA-Z]*)$")
_SUFFIX = {
    "": 1,
    "m": 1e-3,
    "k": 1e3,
    "M": 1e6,
    "G": 1e9,
    "T": 1e12,
    "P": 1e15,
    "E": 1e18,
    "Ki": 1 << 10,
    "Mi": 1 << 20,
    "Gi": 1 << 30,
    "Ti": 1 << 40,
    "Pi": 1 << 50,
    "Ei": 1 << 60,
}


def parse_quantity(value: Any) -> float:
    """A Kubernetes resource quantity as a number: ``"95690m"`` → 95.69, ``"16Gi"`` → 2**34."""
    if isinstance(value, int | float):
        return float(value)
    match = _QUANTITY.match(str(value).strip())
    if not match or match.group(2) not in _SUFFIX:
        raise ValueError(f"not a Kubernetes quantity: {value!r}")
    return float(match.group(1)) * _SUFFIX[match.group(2)]


def gib(count: float) -> str:
    """Bytes as GiB with one decimal, for messages: ``41.2 GiB``."""
    return f"{count / (1 << 30):.1f} GiB"

"""Status parts every memplace resource shares: conditions, timestamps, readable byte counts.

Also two small schema helpers the resource modules use: `ListType` marks a list as a set or a
map for the API server (`x-kubernetes-list-type`), and `unique` enforces the same rule in
Python, so that `memplace plan` rejects what the API server would.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BeforeValidator, Field, NonNegativeInt
from pydantic.json_schema import WithJsonSchema

from ._base import ApiModel

__all__ = ["Condition", "ConditionStatus", "Timestamp", "format_bytes"]

ConditionStatus = Literal["True", "False", "Unknown"]
"""A condition's status, as Kubernetes spells it."""


def _from_datetime(value: Any) -> Any:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("a timestamp needs a time zone (RFC 3339)")
        text = value.astimezone(UTC).isoformat(timespec="seconds")
        return text.replace("+00:00", "Z")
    return value


def _rfc3339(value: str) -> str:
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        parsed = None
    if parsed is None or "T" not in value.upper() or parsed.tzinfo is None:
        raise ValueError(f"{value!r} is not an RFC 3339 timestamp such as 2025-01-31T12:00:00Z")
    return value


Timestamp = Annotated[
    str,
    BeforeValidator(_from_datetime),
    AfterValidator(_rfc3339),
    WithJsonSchema({"type": "string", "format": "date-time"}),
]
"""An RFC 3339 timestamp string (`2025-01-31T12:00:00Z`); an aware `datetime` is converted."""


@dataclass(frozen=True)
class ListType:
    """Annotated marker: tell the API server how to merge and check a list.

    `set`: items are unique scalars; `map`: items are objects unique by `keys`.
    """

    kind: Literal["atomic", "set", "map"]
    keys: tuple[str, ...] = ()

    def __get_pydantic_json_schema__(self, core_schema: Any, handler: Any) -> dict[str, Any]:
        schema = handler(core_schema)
        schema["x-kubernetes-list-type"] = self.kind
        if self.keys:
            schema["x-kubernetes-list-map-keys"] = list(self.keys)
        return schema


def _unique_items(values: Sequence[Hashable]) -> Sequence[Hashable]:
    seen: set[Hashable] = set()
    duplicates = [v for v in values if v in seen or seen.add(v)]
    if duplicates:
        raise ValueError(f"duplicate items: {', '.join(map(str, dict.fromkeys(duplicates)))}")
    return values


unique = AfterValidator(_unique_items)
"""Annotated validator: the list holds no item twice (pair with `ListType("set")`)."""


def format_bytes(count: int) -> str:
    """A byte count in binary units with one decimal, as `kubectl get` shows it: `14.9Gi`."""
    value = float(count)
    for unit in ("", "Ki", "Mi", "Gi", "Ti"):
        if abs(value) < 1024 or unit == "Ti":
            if unit == "":
                return f"{int(value)}"
            text = f"{value:.1f}".removesuffix(".0")
            return f"{text}{unit}"
        value /= 1024
    raise AssertionError("unreachable")


class Condition(ApiModel):
    """One aspect of the object's state, in the form of Kubernetes' `metav1.Condition`."""

    type: str
    """The aspect: `Valid`, `Placed`, `Ready` (ModelDeployment), `Priced` (PlacementPool)."""
    status: ConditionStatus
    """Whether the aspect holds: True, False or Unknown."""
    reason: str | None = None
    """A CamelCase code for the last transition, e.g. `DoesNotFit` or `Placed`."""
    message: str | None = None
    """A human-readable explanation of the last transition."""
    last_transition_time: Timestamp | None = None
    """When the status last changed (RFC 3339)."""
    observed_generation: NonNegativeInt | None = None
    """The `metadata.generation` the condition was computed from."""


def _one_per_type(conditions: list[Condition]) -> list[Condition]:
    _unique_items([c.type for c in conditions])
    return conditions


Conditions = Annotated[
    list[Condition],
    ListType("map", ("type",)),
    AfterValidator(_one_per_type),
    Field(default_factory=list),
]
"""A list of conditions, at most one per type."""

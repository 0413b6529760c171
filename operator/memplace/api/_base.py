"""The base every custom-resource model derives from.

Kubernetes objects are camelCase on the wire; Python code uses snake_case. Attribute docstrings
become the field descriptions that ``kubectl explain`` prints, so every field documents itself
once, next to its type.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

__all__ = ["ApiModel"]


class ApiModel(BaseModel):
    """camelCase on the wire, snake_case in Python, attribute docstrings as descriptions,
    finite numbers only."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        use_attribute_docstrings=True,
        extra="forbid",
        frozen=True,
        # JSON cannot carry inf or NaN, so the API server never stores them; YAML can
        # (``.inf``), and ``memplace plan`` reads YAML. An infinite demand or size has no plan.
        allow_inf_nan=False,
    )

    def to_wire(self) -> dict:
        """The object as the API server stores it: camelCase, unset optionals left out."""
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")

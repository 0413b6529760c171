"""Who each custom resource is: group, version, plural, kind, scope; and object metadata.

The operator (Kopf handlers), the agent (which writes NodeMemoryReports) and the CRD generator
all name a resource through one `ResourceInfo` constant, so a plural or a short name is spelt
once::

    kopf.on.create(MODEL_DEPLOYMENT.group, MODEL_DEPLOYMENT.version, MODEL_DEPLOYMENT.plural)
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pydantic import ConfigDict

from ._base import ApiModel

__all__ = ["API_VERSION", "GROUP", "VERSION", "NameRule", "ObjectMeta", "ResourceInfo"]

GROUP = "memplace.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"


@dataclass(frozen=True)
class ResourceInfo:
    """The identity of one custom resource kind, as the CRD declares it."""

    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ("memplace",)

    @property
    def singular(self) -> str:
        """`modeldeployment` for `ModelDeployment`."""
        return self.kind.lower()

    @property
    def api_version(self) -> str:
        """`memplace.io/v1alpha1`: what objects carry in `apiVersion`."""
        return f"{self.group}/{self.version}"

    @property
    def crd_name(self) -> str:
        """`modeldeployments.memplace.io`: the CRD object's name."""
        return f"{self.plural}.{self.group}"

    @property
    def scope(self) -> str:
        """`Namespaced` or `Cluster`, as the CRD spells it."""
        return "Namespaced" if self.namespaced else "Cluster"


class ObjectMeta(ApiModel):
    """The parts of Kubernetes object metadata memplace reads; everything else is kept as is."""

    model_config = ConfigDict(extra="allow")

    name: str | None = None
    """The object's name."""
    namespace: str | None = None
    """The object's namespace; unset for cluster-scoped objects."""
    labels: dict[str, str] | None = None
    """Labels."""
    annotations: dict[str, str] | None = None
    """Annotations."""
    uid: str | None = None
    """The object's UID, assigned by the API server."""
    generation: int | None = None
    """The spec's generation, incremented by the API server on every spec change."""
    resource_version: str | None = None
    """The API server's version of the object."""
    creation_timestamp: str | None = None
    """When the object was created (RFC 3339)."""


@dataclass(frozen=True)
class NameRule:
    """A constraint on ``metadata.name`` beyond Kubernetes' own: checked by a CEL rule at the
    CRD's root (where CEL may read ``self.metadata.name``) and by the pydantic model, so
    ``kubectl apply`` and ``memplace plan`` refuse the same names with the same message."""

    pattern: str
    max_length: int
    message: str

    @property
    def cel(self) -> str:
        return (
            f"self.metadata.name.matches('{self.pattern}') "
            f"&& size(self.metadata.name) <= {self.max_length}"
        )

    def check(self, name: str | None) -> None:
        # fullmatch, not match: Python's `$` also matches before a trailing newline, RE2's (the
        # API server's, in the CEL rule) only at the end of the text.
        if name is not None and (
            len(name) > self.max_length or not re.fullmatch(self.pattern, name)
        ):
            raise ValueError(f"metadata.name {name!r}: {self.message}")

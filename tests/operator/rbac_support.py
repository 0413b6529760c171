"""The chart's RBAC, enforced by the emulator: what the operator may do, and nothing more.

The API server's authorizer, reduced to what RBAC needs: a request's attributes (verb, API group,
resource, subresource, namespace, name) are derived from its method and path the way
``k8s.io/apiserver/pkg/endpoints/request/requestinfo.go`` does, and checked against the rules of
the Roles and ClusterRoles the rendered chart binds to the operator's ServiceAccount. Discovery
(``/api``, ``/apis…``, ``/version``) is allowed, as the built-in ``system:discovery`` role allows
it to every authenticated user. Requests that carry the bearer token ``Cluster.operator_token``
are the operator's (the test login hands Kopf that token); the rest are the test's, as admin.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.util
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import kmock
import pytest

__all__ = ["Attributes", "Grant", "RbacAuthorizer", "attributes", "chart_authorizer",
           "chart_grants"]

DISCOVERY = ("/api", "/apis", "/version", "/openapi")
NAMESPACE_SUBRESOURCES = {"status", "finalize"}  # requestinfo.go: namespaceSubresources


@dataclasses.dataclass(frozen=True)
class Attributes:
    verb: str
    group: str
    resource: str
    subresource: str
    namespace: str | None
    name: str | None

    @property
    def rule(self) -> tuple[str, str, str]:
        """(verb, apiGroup, resource[/subresource]): the one rule that would allow this."""
        return (self.verb, self.group,
                f"{self.resource}/{self.subresource}" if self.subresource else self.resource)

    def __str__(self) -> str:
        verb, group, resource = self.rule
        where = f" in the namespace {self.namespace!r}" if self.namespace else ""
        return f"{verb} {resource} in API group {group!r}{where}" + (
            f" (name {self.name!r})" if self.name else "")


def attributes(method: str, path: str, query: Mapping[str, str]) -> Attributes | None:
    """The RBAC attributes of a request; None for a non-resource URL."""
    parts = [p for p in path.strip("/").split("/") if p]
    if parts[:1] == ["api"] and len(parts) >= 2:
        group, parts = "", parts[2:]
    elif parts[:1] == ["apis"] and len(parts) >= 3:
        group, parts = parts[1], parts[3:]
    else:
        return None
    if not parts:
        return None  # /api/v1, /apis/group/version: discovery
    namespace: str | None = None
    if parts[0] == "namespaces" and len(parts) > 1:
        namespace = parts[1]
        if len(parts) > 2 and parts[2] not in NAMESPACE_SUBRESOURCES:
            parts = parts[2:]
    resource = parts[0]
    name = parts[1] if len(parts) > 1 else None
    subresource = parts[2] if len(parts) > 2 else ""
    method = method.upper()
    if method == "GET":
        verb = "watch" if query.get("watch") in ("true", "1") else "get" if name else "list"
    elif method == "DELETE":
        verb = "delete" if name else "deletecollection"
    else:
        verb = {"POST": "create", "PUT": "update", "PATCH": "patch"}.get(method, method.lower())
    return Attributes(verb, group, resource, subresource, namespace, name)


@dataclasses.dataclass(frozen=True)
class Grant:
    """One PolicyRule, valid cluster-wide (namespace None) or in one namespace."""

    rule: Mapping[str, Any]
    namespace: str | None

    def allows(self, attrs: Attributes) -> bool:
        if self.namespace is not None and attrs.namespace != self.namespace:
            return False
        verb, group, resource = attrs.rule
        names = self.rule.get("resourceNames") or []
        return (_has(self.rule.get("verbs"), verb) and _has(self.rule.get("apiGroups"), group)
                and _has(self.rule.get("resources"), resource)
                and (not names or attrs.name in names))


def _has(allowed: Iterable[str] | None, value: str) -> bool:
    allowed = list(allowed or [])
    return "*" in allowed or value in allowed


def chart_grants(objects: list[dict[str, Any]], service_account: str | None = None) -> list[Grant]:
    """The rules the rendered chart ``objects`` bind to the operator's ServiceAccount (the one
    its Deployment runs as, unless ``service_account`` names another)."""
    if service_account is None:
        operator = next(o for o in objects if o["kind"] == "Deployment"
                        and o["metadata"]["name"].endswith("operator"))
        service_account = operator["spec"]["template"]["spec"]["serviceAccountName"]
    roles = {(o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"]): o
             for o in objects if o["kind"] in ("Role", "ClusterRole")}
    grants: list[Grant] = []
    for binding in objects:
        if binding["kind"] not in ("RoleBinding", "ClusterRoleBinding"):
            continue
        if not any(s.get("kind") == "ServiceAccount" and s.get("name") == service_account
                   for s in binding.get("subjects") or []):
            continue
        scope = binding["metadata"].get("namespace") if binding["kind"] == "RoleBinding" else None
        ref = binding["roleRef"]
        role = roles.get((ref["kind"], scope if ref["kind"] == "Role" else None, ref["name"]))
        assert role is not None, f"{binding['kind']} {binding['metadata']['name']} names " \
                                 f"a {ref['kind']} {ref['name']} the chart does not render"
        grants.extend(Grant(rule, scope) for rule in role.get("rules") or [])
    return grants


class RbacAuthorizer:
    """Called by the emulator on every request: the operator's requests must be granted."""

    def __init__(self, grants: list[Grant], *tokens: str) -> None:
        self.grants = grants
        self.tokens = {f"Bearer {token}" for token in tokens}  # the operator's credentials
        self.used: set[tuple[str, str, str]] = set()
        self.denied: list[str] = []  # what the operator asked for and was refused

    def __call__(self, request: kmock.Request) -> None:
        if request.headers.get("Authorization") not in self.tokens:
            return  # the test itself, as admin
        path = request.url.path
        attrs = attributes(str(request.method.value), path, request.params)
        if attrs is None:
            if request.method.value.upper() == "GET" and path.startswith(DISCOVERY):
                return
            self._deny(f'the operator cannot {request.method.value} path "{path}"')
        elif any(grant.allows(attrs) for grant in self.grants):
            self.used.add(attrs.rule)
        else:
            self._deny(f"{attrs.resource} is forbidden: the operator cannot {attrs}")

    def granted(self) -> set[tuple[str, str, str]]:
        """Every (verb, group, resource) the grants name, wildcards as written."""
        return {(verb, group, resource) for grant in self.grants
                for verb in grant.rule.get("verbs") or []
                for group in grant.rule.get("apiGroups") or []
                for resource in grant.rule.get("resources") or []}

    def _deny(self, message: str) -> None:
        self.denied.append(message)
        raise kmock.KubernetesError(status=403, reason="Forbidden", message=message)


@functools.cache
def _rendered(values_json: str) -> tuple[dict[str, Any], ...] | None:
    path = Path(__file__).resolve().parents[1] / "chart" / "rendering.py"
    spec = importlib.util.spec_from_file_location("memplace_chart_rendering", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except pytest.skip.Exception:
        return None  # helm-python-sdk is missing: tests/chart says so and skips
    return tuple(module.render_chart(json.loads(values_json)))


def chart_authorizer(values: Mapping[str, Any], *tokens: str) -> RbacAuthorizer | None:
    """An authorizer with the grants of the chart rendered with ``values``; None when the chart
    cannot be rendered here (no helm-python-sdk)."""
    objects = _rendered(json.dumps(values, sort_keys=True))
    return None if objects is None else RbacAuthorizer(chart_grants(list(objects)), *tokens)

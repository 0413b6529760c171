"""Create, patch or delete the Deployments and the Service a ModelDeployment owns.

The plan owns ``spec.replicas``, ``spec.template`` and its labels and annotations on the
Deployment, the selector and ports on the Service; everything else on them (another
controller's annotations, a ``kubectl scale`` until the next plan) is kept. A Deployment whose
plan-hash annotation matches is not written at all.

An object of the same name that another owner holds is not taken over
(``kopf.TemporaryError``, retried slowly). An object the API server refuses as invalid (422)
raises ``Rejected``: not retried, since the same spec renders the same object; the deployment
shows phase Invalid (or, when running, keeps its placement with PlacementKept).

Which Deployment serves is what the Service selects (:func:`serving`); a move (``moves``)
creates the successor with :func:`apply_deployment`, switches the Service with
:func:`apply_service` and deletes the old one with :func:`delete_deployment`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any

import kopf

from . import kube, render


class NameTaken(kopf.TemporaryError):
    """An object of the name memplace renders exists and is not owned by this ModelDeployment
    (someone else's Deployment or Service). Retried every minute; status and a Warning
    (``NameTaken``) say so, since only a person can delete or rename it."""


class Rejected(Exception):
    """The API server refused the rendered Deployment or Service as invalid (422).

    Not retried: the same spec renders the same object. The deployment shows phase Invalid
    (or, when running, keeps its placement with PlacementKept) with the server's message."""


async def apply(
    api: kube.Kube, desired: tuple[dict[str, Any], dict[str, Any]], *, likely_new: bool = False
) -> dict[str, Any]:
    """Create or patch the Service and the Deployment; a matching plan hash writes nothing.

    The Service first: it is the one whose name is stricter (a DNS label), so a name the API
    server refuses is refused before any pod starts. ``likely_new`` (nothing owned is known of
    this deployment) creates first and reads only when the create finds the object there."""
    deployment, service = desired
    await apply_service(api, service, likely_new=likely_new)
    return await apply_deployment(api, deployment, likely_new=likely_new)


async def serving(
    api: kube.Kube, namespace: str, owner_name: str
) -> tuple[str | None, dict[str, Any] | None]:
    """The name of the Deployment the owner's Service selects (None: no Service yet), and that
    Deployment as stored (None: not there)."""
    service = await api.get(kube.path("v1", "services", namespace, owner_name))
    if service is None:
        return None, None
    name = render.serving_name(owner_name, service)
    return name, await api.get(kube.path("apps/v1", "deployments", namespace, name))


async def switch_service(api: kube.Kube, namespace: str, owner_name: str, workload: str) -> None:
    """Point the owner's Service at the pods of Deployment ``workload`` (a no-op when it is)."""
    url = kube.path("v1", "services", namespace, owner_name)
    selector = render.selector_for(owner_name, workload)
    service = await api.get(url)
    if service is not None and (service.get("spec") or {}).get("selector") != selector:
        await api.json_patch(url, [{"op": "add", "path": "/spec/selector", "value": selector}])


async def delete_deployment(api: kube.Kube, namespace: str, name: str) -> None:
    """Delete an owned Deployment (and, in the background, its pods); gone already is fine."""
    await api.delete(kube.path("apps/v1", "deployments", namespace, name))


async def apply_deployment(
    api: kube.Kube, deployment: dict[str, Any], *, likely_new: bool = False
) -> dict[str, Any]:
    """Create the Deployment, or patch it when its plan hash differs; return it as stored."""
    url, existing, created = await _get_or_create(
        api, "apps/v1", "deployments", deployment, likely_new
    )
    if created:
        return existing
    with _rejected_as(deployment):
        _check_owned(existing, deployment)
        annotations = existing.get("metadata", {}).get("annotations") or {}
        if (
            annotations.get(render.PLAN_HASH)
            != deployment["metadata"]["annotations"][render.PLAN_HASH]
        ):
            existing = await api.json_patch(url, _replace_ops(existing, deployment))
    return existing


async def apply_service(
    api: kube.Kube, service: dict[str, Any], *, likely_new: bool = False
) -> None:
    """Create the Service, or patch its selector and ports when they differ (a switch)."""
    url, existing, created = await _get_or_create(api, "v1", "services", service, likely_new)
    if created:
        return
    with _rejected_as(service):
        _check_owned(existing, service)
        current_spec = existing.get("spec") or {}
        wanted = service["spec"]
        if current_spec.get("selector") != wanted["selector"] or _ports(current_spec) != _ports(
            wanted
        ):
            await api.json_patch(
                url,
                [
                    {"op": "add", "path": "/spec/selector", "value": wanted["selector"]},
                    {"op": "add", "path": "/spec/ports", "value": wanted["ports"]},
                ],
            )


async def _get_or_create(
    api: kube.Kube, api_version: str, plural: str, desired: dict[str, Any], likely_new: bool
) -> tuple[str, dict[str, Any], bool]:
    """The object's URL, the object as stored, and whether it was just created from
    ``desired``. One that appears between the read and the create is retried shortly.

    ``likely_new``: create first (one call instead of two); an object already there (409, as
    after a crash between the create and the status write) is then read as usual."""
    meta = desired["metadata"]
    namespace, name = meta["namespace"], meta["name"]
    url = kube.path(api_version, plural, namespace, name)
    if likely_new:
        with _rejected_as(desired), contextlib.suppress(kube.Conflict):
            return url, await api.create(kube.path(api_version, plural, namespace), desired), True
    existing = await api.get(url)
    if existing is not None:
        return url, existing, False
    with _rejected_as(desired):
        try:
            return url, await api.create(kube.path(api_version, plural, namespace), desired), True
        except kube.Conflict as error:
            raise kopf.TemporaryError(
                f"{desired['kind']} {namespace}/{name} appeared; retrying", delay=1
            ) from error


@contextlib.contextmanager
def _rejected_as(desired: Mapping[str, Any]) -> Iterator[None]:
    try:
        yield
    except kube.Invalid as error:
        kind, meta = desired["kind"], desired["metadata"]
        raise Rejected(
            f"the API server rejected {kind} {meta['namespace']}/{meta['name']}: "
            f"{kube.message(error)}"
        ) from error


def _ports(spec: Mapping[str, Any]) -> list[tuple[Any, Any]]:
    return [(p.get("name"), p.get("port")) for p in spec.get("ports") or []]


def _check_owned(existing: Mapping[str, Any], desired: Mapping[str, Any]) -> None:
    owner_uid = desired["metadata"]["ownerReferences"][0]["uid"]
    refs = existing.get("metadata", {}).get("ownerReferences") or []
    if not any(ref.get("uid") == owner_uid for ref in refs):
        kind, meta = desired["kind"], desired["metadata"]
        raise NameTaken(
            f"{kind} {meta['namespace']}/{meta['name']} exists and is not owned by this "
            "ModelDeployment; delete or rename it",
            delay=60,
        )


def _replace_ops(existing: Mapping[str, Any], desired: Mapping[str, Any]) -> list[dict[str, Any]]:
    """JSON-patch ops that replace what the plan owns and keep everything else."""
    meta = desired["metadata"]
    ops: list[dict[str, Any]] = [
        {"op": "add", "path": "/spec/replicas", "value": desired["spec"]["replicas"]},
        {"op": "add", "path": "/spec/template", "value": desired["spec"]["template"]},
    ]
    existing_meta = existing.get("metadata", {})
    for section in ("labels", "annotations"):
        if not existing_meta.get(section):
            ops.append({"op": "add", "path": f"/metadata/{section}", "value": meta[section]})
            continue
        for k, v in meta[section].items():
            escaped = k.replace("~", "~0").replace("/", "~1")
            ops.append({"op": "add", "path": f"/metadata/{section}/{escaped}", "value": v})
    return ops

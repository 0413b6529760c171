"""The few Kubernetes API calls the operator makes itself, through Kopf's own client.

Kopf watches and patches the objects it handles; the operator also reads ConfigMaps and writes
Deployments and Services. Those calls go through Kopf's API client so that there is one login
(whatever ``@kopf.on.login`` or the kubeconfig gave Kopf), one retry policy (connection errors,
5xx, 429 and 403-during-upgrades are retried with Kopf's backoffs) and re-authentication on 401.
That client lives in ``kopf._cogs``, which is not Kopf's public API: this module is the only one
that touches it, so a Kopf upgrade that moves it costs one file.

Errors: :class:`NotFound`, :class:`Conflict` (409: a name taken, or a stale ``resourceVersion``)
and :class:`Invalid` (422: the API server rejects the object; :func:`message` says why) are raised
for the caller to decide; every other failure is Kopf's ``APIError`` and makes the handler retry.
"""

from __future__ import annotations

import contextlib
from typing import Any

import kopf
from kopf._cogs.clients import api as _api
from kopf._cogs.clients import errors as _errors

__all__ = ["APIError", "Conflict", "Invalid", "NotFound", "Kube", "message", "serves"]

APIError = _errors.APIError
"""Any failed call; the ones below are its subclasses. ``.code``: the HTTP status."""
NotFound = _errors.APINotFoundError
Conflict = _errors.APIConflictError
Invalid = _errors.APIUnprocessableEntityError
MERGE_PATCH = {"Content-Type": "application/merge-patch+json"}
JSON_PATCH = {"Content-Type": "application/json-patch+json"}


def path(api_version: str, plural: str, namespace: str | None, name: str | None = None) -> str:
    """``/apis/apps/v1/namespaces/ns/deployments/name`` (``/api/v1/…`` for the core group)."""
    root = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
    url = root + (f"/namespaces/{namespace}" if namespace else "") + f"/{plural}"
    return url + (f"/{name}" if name else "")


def message(error: Exception) -> str:
    """The API server's own words for a failed call (its Status ``message``)."""
    return str(getattr(error, "message", None) or error)


async def serves(api: Kube, api_version: str, plural: str) -> bool:
    """Whether the cluster serves ``plural`` in ``api_version`` (discovery of
    ``/apis/{api_version}``); discovery refused or failing counts as no."""
    try:
        found = await api.get(f"/apis/{api_version}")
    except Exception:  # noqa: BLE001 — refused (403) or failing: treated as not served
        return False
    return plural in {r.get("name") for r in (found or {}).get("resources") or []}


class Kube:
    """Thin async calls; must run inside a Kopf handler (they use the operator's credentials)."""

    def __init__(self, settings: kopf.OperatorSettings, logger: Any) -> None:
        self.settings = settings
        self.logger = logger

    async def get(self, url: str) -> dict[str, Any] | None:
        try:
            return await _api.get(url, settings=self.settings, logger=self.logger)
        except NotFound:
            return None

    async def create(self, url: str, body: dict[str, Any]) -> dict[str, Any]:
        return await _api.post(url, payload=body, settings=self.settings, logger=self.logger)

    async def merge_patch(self, url: str, body: dict[str, Any]) -> dict[str, Any]:
        return await _api.patch(
            url, payload=body, headers=MERGE_PATCH, settings=self.settings, logger=self.logger
        )

    async def json_patch(self, url: str, ops: list[dict[str, Any]]) -> dict[str, Any]:
        return await _api.patch(
            url, payload=ops, headers=JSON_PATCH, settings=self.settings, logger=self.logger
        )

    async def delete(self, url: str) -> None:
        """Delete the object, its dependents in the background (a Deployment's ReplicaSets and
        pods); one already gone is fine."""
        with contextlib.suppress(NotFound):
            await _api.delete(
                url,
                payload={"propagationPolicy": "Background"},
                settings=self.settings,
                logger=self.logger,
            )

    async def list(self, url: str, label_selector: str | None = None) -> list[dict[str, Any]]:
        query = f"?labelSelector={label_selector}" if label_selector else ""
        found = await _api.get(url + query, settings=self.settings, logger=self.logger)
        return list(found.get("items") or [])

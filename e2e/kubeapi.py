"""The e2e harness's API client, logged in exactly as the operator logs in.

``memplace run --kubeconfig PATH`` logs Kopf in with ``memplace.cli.login.connection_info(PATH)``:
the kubernetes library's loader reads that file and nothing else (client certificates as files
or inline ``*-data``, bearer tokens and token files, exec plugins, basic auth), even inside a pod
whose service account Kopf's default login would prefer. :func:`login` calls that same function
and :class:`Api` configures httpx with the resulting ``kopf.ConnectionInfo``'s
``as_http_headers()`` and ``as_ssl_context()``, as Kopf does, so the harness and the operator
cannot disagree about who they are.

Why not the kubernetes ``Configuration`` straight into httpx, as once: with httpx 0.28 a
``verify=<CA path>`` returns its SSL context before ``cert=`` is loaded
(``httpx/_config.py: create_ssl_context``), so a kind-style kubeconfig (CA + client
certificate) silently sent no certificate and the harness was ``system:anonymous`` (403).

An error answer raises :class:`ApiError` with the API server's own message (a CRD whose CEL rule
is over the cost budget, a namespace being terminated, an admission denial), not only the code.
"""

from __future__ import annotations

from typing import Any

import httpx
import kopf

from memplace.cli.login import connection_info

__all__ = ["Api", "ApiError", "login"]


class ApiError(httpx.HTTPStatusError):
    """An error status from the API server, with its ``Status`` message."""


def _raise_for_status(response: httpx.Response) -> None:
    if response.is_success:
        return
    try:
        body = response.json()
        message = body.get("message") or response.text
        reason = body.get("reason") or response.reason_phrase
    except ValueError:
        message, reason = response.text, response.reason_phrase
    request = response.request
    raise ApiError(
        f"{request.method} {request.url.path}: {response.status_code} {reason}: "
        f"{str(message)[:2000]}",
        request=request,
        response=response,
    )


def login(kubeconfig: str) -> kopf.ConnectionInfo:
    """The credentials ``memplace run --kubeconfig kubeconfig`` logs in with."""
    return connection_info(kubeconfig)


class Api:
    """A small synchronous client over httpx with the operator's credentials (see :func:`login`).

    A 401 logs in again once (exec plugins hand out short-lived tokens), as Kopf does. One
    instance per thread: the fake nodes' heartbeat has its own (:meth:`copy`)."""

    def __init__(self, kubeconfig: str, timeout: float = 30) -> None:
        self.kubeconfig = kubeconfig
        self.timeout = timeout
        self.http = self._client()

    def copy(self) -> Api:
        return Api(self.kubeconfig, self.timeout)

    def _client(self) -> httpx.Client:
        info = login(self.kubeconfig)
        return httpx.Client(
            base_url=info.server,
            headers=info.as_http_headers(),
            verify=info.as_ssl_context(),
            timeout=self.timeout,
        )

    def close(self) -> None:
        self.http.close()

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        response = self.http.request(method, path, **kwargs)
        if response.status_code == 401:
            self.http.close()
            self.http = self._client()
            response = self.http.request(method, path, **kwargs)
        return response

    def get(self, path: str) -> dict[str, Any] | None:
        """The object at ``path``, or None when there is none (404)."""
        response = self.request("GET", path)
        if response.status_code == 404:
            return None
        _raise_for_status(response)
        return response.json()

    def create(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST ``body``; AlreadyExists (409) is an error: names in e2e are unique per run."""
        response = self.request("POST", path, json=body)
        _raise_for_status(response)
        return response.json()

    def ensure(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST ``body``, or the object of that name when it exists already (CRDs)."""
        response = self.request("POST", path, json=body)
        if response.status_code == 409:
            return self.get(f"{path}/{body['metadata']['name']}") or {}
        _raise_for_status(response)
        return response.json()

    def merge_patch(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        response = self.request(
            "PATCH", path, json=body, headers={"Content-Type": "application/merge-patch+json"}
        )
        _raise_for_status(response)
        return response.json()

    def delete(self, path: str, grace_period_seconds: int | None = None) -> None:
        """DELETE with background propagation (the garbage collector removes the dependents
        afterwards); gone already (404) is fine."""
        options: dict[str, Any] = {"propagationPolicy": "Background"}
        if grace_period_seconds is not None:
            options["gracePeriodSeconds"] = grace_period_seconds
        response = self.request("DELETE", path, json=options)
        if response.status_code != 404:
            _raise_for_status(response)

    def items(self, path: str) -> list[dict[str, Any]]:
        return list((self.get(path) or {}).get("items") or [])

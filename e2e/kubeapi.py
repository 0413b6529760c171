"""The e2e harness's API client, logged in exactly as the operator logs in.

``memplace run --kubeconfig PATH`` sets ``KUBECONFIG`` and lets Kopf log in with its default
login handler for the official client, :func:`kopf.login_via_client`: the kubernetes library
reads the kubeconfig (client certificates as files or inline ``*-data``, bearer tokens and token
files, exec plugins, basic auth) and Kopf turns the result into a :class:`kopf.ConnectionInfo`,
whose ``as_http_headers()`` and ``as_ssl_context()`` configure its HTTP client. :func:`login`
calls that same handler and :class:`Api` uses those same two methods, so the harness and the
operator cannot disagree about who they are.

Why not the kubernetes ``Configuration`` straight into httpx, as before: with httpx 0.28 a
``verify=<CA path>`` returns its SSL context before ``cert=`` is loaded
(``httpx/_config.py: create_ssl_context``), so a kind-style kubeconfig (CA + client
certificate) silently sent no certificate and the harness was ``system:anonymous`` (403).
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from typing import Any

import httpx
import kopf

__all__ = ["Api", "login"]

LOGGER = logging.getLogger("memplace.e2e")


@contextlib.contextmanager
def _kubeconfig_named(path: str) -> Iterator[None]:
    """``KUBECONFIG=path`` for the kubernetes library, as ``memplace run --kubeconfig`` sets it.

    The library reads ``KUBECONFIG`` once, at import (``KUBE_CONFIG_DEFAULT_LOCATION``); the
    operator sets it before that import, a test process may not, so both are set here."""
    from kubernetes.config import kube_config

    saved_env = os.environ.get("KUBECONFIG")
    saved_default = kube_config.KUBE_CONFIG_DEFAULT_LOCATION
    os.environ["KUBECONFIG"] = path
    kube_config.KUBE_CONFIG_DEFAULT_LOCATION = path
    try:
        yield
    finally:
        kube_config.KUBE_CONFIG_DEFAULT_LOCATION = saved_default
        if saved_env is None:
            os.environ.pop("KUBECONFIG", None)
        else:
            os.environ["KUBECONFIG"] = saved_env


def login(kubeconfig: str) -> kopf.ConnectionInfo:
    """The credentials Kopf's default login finds with ``KUBECONFIG=kubeconfig``.

    Like the operator, an in-cluster service account (``KUBERNETES_SERVICE_HOST``) comes first."""
    with _kubeconfig_named(kubeconfig):
        info = kopf.login_via_client(logger=LOGGER, settings=kopf.OperatorSettings())
    if info is None:
        raise kopf.LoginError("the kubernetes client library is not installed")
    return info


class Api:
    """A small synchronous client over httpx with the operator's credentials (see :func:`login`).

    A 401 logs in again once (exec plugins hand out short-lived tokens), as Kopf does."""

    def __init__(self, kubeconfig: str, timeout: float = 30) -> None:
        self.kubeconfig = kubeconfig
        self.timeout = timeout
        self.http = self._client()

    def _client(self) -> httpx.Client:
        info = login(self.kubeconfig)
        return httpx.Client(base_url=info.server, headers=info.as_http_headers(),
                            verify=info.as_ssl_context(), timeout=self.timeout)

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        response = self.http.request(method, path, **kwargs)
        if response.status_code == 401:
            self.http.close()
            self.http = self._client()
            response = self.http.request(method, path, **kwargs)
        return response

    def get(self, path: str) -> dict[str, Any] | None:
        response = self.request("GET", path)
        if response.status_code == 404:
            return None
        response.raise_for_status()
        return response.json()

    def create(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        response = self.request("POST", path, json=body)
        if response.status_code == 409:
            return self.get(f"{path}/{body['metadata']['name']}") or {}
        response.raise_for_status()
        return response.json()

    def merge_patch(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        response = self.request(
            "PATCH", path, json=body, headers={"Content-Type": "application/merge-patch+json"})
        response.raise_for_status()
        return response.json()

    def delete(self, path: str) -> None:
        response = self.request("DELETE", path, json={"propagationPolicy": "Background"})
        if response.status_code not in (200, 202, 404):
            response.raise_for_status()

    def items(self, path: str) -> list[dict[str, Any]]:
        return list((self.get(path) or {}).get("items") or [])

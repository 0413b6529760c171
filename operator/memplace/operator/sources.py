"""Fetching a model's ``config.json`` from where ``spec.model.source`` says it lives.

``hf://org/name`` (optionally ``hf://org/name@revision``) reads
``{HF_ENDPOINT}/org/name/resolve/{revision}/config.json`` with ``HF_TOKEN`` as a bearer token
when set (gated models need it); ``https://…`` URLs are read as they are. Only config.json (and
a LoRA adapter's ``adapter_config.json``: ``filename``) is ever fetched: memplace never
downloads weights.

Errors::

    SourceError            the source is malformed, unreachable, or not a JSON object;
                           the message names what was fetched from where; ``retryable``
                           says whether trying later may help (network, 5xx, 429)
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping

import httpx

__all__ = ["DEFAULT_HF_ENDPOINT", "SourceError", "config_url", "fetch_config"]

DEFAULT_HF_ENDPOINT = "https://huggingface.co"
TIMEOUT_S = 10.0


class SourceError(Exception):
    """config.json could not be had from the named source."""

    def __init__(self, message: str, *, retryable: bool = False):
        super().__init__(message)
        self.retryable = retryable


def config_url(source: str, endpoint: str | None = None, filename: str = "config.json") -> str:
    """The URL of ``filename`` for ``source`` (``hf://org/name[@rev]`` or an https URL)."""
    if source.startswith("hf://"):
        repo, _, revision = source[len("hf://") :].partition("@")
        if repo.count("/") != 1 or not all(repo.split("/")):
            raise SourceError(f"{source!r} is not of the form hf://org/name[@revision]")
        base = (endpoint or os.environ.get("HF_ENDPOINT") or DEFAULT_HF_ENDPOINT).rstrip("/")
        return f"{base}/{repo}/resolve/{revision or 'main'}/{filename}"
    if source.startswith(("https://", "http://")):
        return source
    raise SourceError(f"unsupported model source {source!r}: use hf://org/name or an https URL")


def fetch_config(
    source: str,
    *,
    token: str | None = None,
    endpoint: str | None = None,
    transport: httpx.BaseTransport | None = None,
    filename: str = "config.json",
) -> Mapping:
    """Fetch and parse config.json (or ``filename`` of an hf:// repository); ``transport`` lets
    tests answer without a network."""
    url = config_url(source, endpoint, filename)
    token = token if token is not None else os.environ.get("HF_TOKEN")
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        with httpx.Client(timeout=TIMEOUT_S, follow_redirects=True, transport=transport) as client:
            response = client.get(url, headers=headers)
    except httpx.HTTPError as error:
        raise SourceError(
            f"could not fetch config.json for {source} from {url}: {error} "
            "(offline? set HF_ENDPOINT to a mirror, or give the config inline)",
            retryable=True,
        ) from error
    if response.status_code in (401, 403):
        raise SourceError(
            f"{url} answered {response.status_code}: the model is gated or private; "
            "set HF_TOKEN to a token that can read it"
        )
    if response.status_code != 200:
        raise SourceError(
            f"{url} answered HTTP {response.status_code} for {source}",
            retryable=response.status_code >= 500 or response.status_code == 429,
        )
    try:
        config = response.json()
    except json.JSONDecodeError as error:
        raise SourceError(f"{url} did not return JSON: {error}") from error
    if not isinstance(config, Mapping):
        raise SourceError(f"{url} returned JSON that is not an object")
    return config

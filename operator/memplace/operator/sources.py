"""Fetching what ``spec.model.source`` points to: ``config.json`` and the checkpoint's headers.

``hf://org/name`` (optionally ``hf://org/name@revision``) reads
``{HF_ENDPOINT}/org/name/resolve/{revision}/config.json`` with ``HF_TOKEN`` as a bearer token
when set (gated models need it); ``https://…`` URLs are read as they are, and their checkpoint
files are looked for beside them. memplace never downloads weights: :func:`fetch_checkpoint`
reads ``model.safetensors.index.json`` (else the single ``model.safetensors``) and, of each
shard, only the safetensors header: an HTTP range request for the first 8 bytes (the header
length N), then one for the N bytes of JSON. A server that ignores ``Range`` and answers 200
with the whole file is read as a stream and dropped after those bytes. Headers are bounded
(``MAX_HEADER_BYTES``), and so are shards (``MAX_SHARDS``); results are kept in memory per
(endpoint, repository, commit) (``CHECKPOINTS_KEPT``), so the operator reads each once. A branch
or tag (``main`` when none is named) is resolved to its commit first, from the
``X-Repo-Commit`` header of a HEAD request for config.json (as huggingface_hub's
``get_hf_file_metadata`` reads it), at most once per ``COMMIT_TTL_S``; every file is then read
at that commit, so a push to ``main`` is seen within that time and a checkpoint is never read
half before and half after one. A mirror that sends no ``X-Repo-Commit`` is keyed by the
revision name.
A LoRA adapter's ``adapter_config.json`` is fetched like config.json (``filename``).

Errors::

    SourceError            the source is malformed, unreachable, or not what it should be
                           (not JSON, a header too large or inconsistent); the message names
                           what was fetched from where; ``retryable`` says whether trying
                           later may help (network, 5xx, 429)
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import httpx

from memplace.planning.checkpoint import (
    Checkpoint,
    CheckpointError,
    Index,
    Tensor,
    header_length,
    parse_header,
    parse_index,
    read_checkpoint,
)

__all__ = [
    "CHECKPOINTS_KEPT",
    "DEFAULT_HF_ENDPOINT",
    "MAX_HEADER_BYTES",
    "MAX_SHARDS",
    "SourceError",
    "checkpoint_base",
    "clear_checkpoint_cache",
    "config_url",
    "fetch_checkpoint",
    "fetch_config",
]

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
    if response.status_code != 200:
        _raise_for(response, url, source)
    try:
        config = response.json()
    except json.JSONDecodeError as error:
        raise SourceError(f"{url} did not return JSON: {error}") from error
    if not isinstance(config, Mapping):
        raise SourceError(f"{url} returned JSON that is not an object")
    return config


# --- the checkpoint --------------------------------------------------------------------------

INDEX_FILE = "model.safetensors.index.json"
SINGLE_FILE = "model.safetensors"

MAX_HEADER_BYTES = 16 << 20
"""Largest safetensors header read (16 MiB). Real headers take ~110 bytes per tensor (Qwen3-0.6B:
311 tensors in ~34 KB); 16 MiB holds ~150,000 tensors, more than any one shard of the largest
published checkpoints. The safetensors library itself refuses headers over 100,000,000 bytes
(``MAX_HEADER_SIZE`` in huggingface/safetensors ``safetensors/src/tensor.rs``)."""

MAX_SHARDS = 512
"""Most shards read for one checkpoint: meta-llama/Llama-3.1-405B has 191 and
deepseek-ai/DeepSeek-V3 163 (their ``model-000NN-of-000MM.safetensors`` names on the hub)."""

HEADER_FETCHES = 8
"""Shard headers fetched at once (two small range requests each)."""

CHECKPOINTS_KEPT = 128
"""Checkpoints (or "has none") kept in memory, per (endpoint, repository, revision)."""

FAILED_RETRY_S = 300.0
"""How long a checkpoint that could not be read is not asked for again: the operator replans
every deployment each resync (15 s), and an unreachable hub should cost one attempt (and one
log line) per five minutes, not one per resync."""

COMMIT_TTL_S = 300.0
"""How long a branch's resolved commit is trusted before it is asked for again: one HEAD
request per repository per five minutes, however often the operator replans."""

_cache: OrderedDict[tuple, Checkpoint | None] = OrderedDict()
_failed: OrderedDict[tuple, tuple[float, SourceError]] = OrderedDict()
_commits: OrderedDict[tuple, tuple[float, str | None]] = OrderedDict()  # (resolved at, commit)
_cache_lock = threading.Lock()


def clear_checkpoint_cache() -> None:
    """Forget every checkpoint read or failed (tests; an operator restart does the same)."""
    with _cache_lock:
        _cache.clear()
        _failed.clear()
        _commits.clear()


def checkpoint_base(source: str, endpoint: str | None = None) -> str | None:
    """The URL folder the checkpoint's files are in: ``…/org/name/resolve/rev`` for hf://, the
    folder of an https config.json; None when the source names no such folder."""
    url = config_url(source, endpoint)
    if source.startswith("hf://") or url.endswith("/config.json"):
        return url.rsplit("/", 1)[0]
    return None


def fetch_checkpoint(
    source: str,
    config: Mapping[str, Any] | None = None,
    *,
    token: str | None = None,
    endpoint: str | None = None,
    transport: httpx.BaseTransport | None = None,
) -> Checkpoint | None:
    """The published checkpoint of ``source`` from its index and safetensors headers.

    None when the source has no safetensors checkpoint (neither file exists: a GGUF-only or
    ``.bin`` repository). ``config`` (the model's config.json) says what the headers cannot:
    ``quantization_config``, tied embeddings, the number of layers (beyond it: MTP)."""
    base = checkpoint_base(source, endpoint)
    if base is None:
        return None
    token = token if token is not None else os.environ.get("HF_TOKEN")
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    # a new token may open a gated repository: it is part of the key (hashed, never kept)
    token_key = hashlib.sha256((token or "").encode()).hexdigest()
    asked = (base, _config_key(config), token_key)  # as named: failures are kept by it
    with _cache_lock:
        failed = _failed.get(asked)
        if failed is not None and time.monotonic() < failed[0]:
            raise failed[1]
    try:
        with _client(httpx.Timeout(TIMEOUT_S), transport) as client:
            commit = _commit(client, base, headers, source, token_key)
            key = (_at_commit(base, commit) if commit else base, *asked[1:])
            with _cache_lock:
                if key in _cache:
                    _cache.move_to_end(key)
                    return _cache[key]
            found = _read(client, key[0], headers, source, config)
    except SourceError as error:
        with _cache_lock:
            _remember(_failed, asked, (time.monotonic() + FAILED_RETRY_S, error))
        raise
    with _cache_lock:
        _failed.pop(asked, None)
        _remember(_cache, key, found)
    return found


COMMIT_ID = re.compile(r"[0-9a-f]{40}")


def _commit(
    client: httpx.Client, base: str, headers: dict[str, str], source: str, token_key: str
) -> str | None:
    """The commit an hf:// branch or tag stands for now (cached ``COMMIT_TTL_S``); None for an
    https source, a revision that is a commit already, or a mirror that does not say."""
    revision = _revision(source)
    if revision is None or COMMIT_ID.fullmatch(revision):
        return None
    key = (base, token_key)
    with _cache_lock:
        known = _commits.get(key)
        if known is not None and time.monotonic() - known[0] < COMMIT_TTL_S:
            return known[1]
    url = f"{base}/config.json"  # every model repository has one
    response = _get(client, url, headers, source, method="HEAD")
    if response.status_code >= 400:
        _raise_for(response, url, source)
    commit = response.headers.get("x-repo-commit")
    commit = commit if commit and COMMIT_ID.fullmatch(commit) else None
    with _cache_lock:
        _remember(_commits, key, (time.monotonic(), commit))
    return commit


def _at_commit(base: str, commit: str) -> str:
    """``…/org/name/resolve/<branch>`` → ``…/org/name/resolve/<commit>``."""
    return f"{base.rsplit('/', 1)[0]}/{commit}"


def _remember(table: OrderedDict, key: tuple, value: Any) -> None:
    table[key] = value
    table.move_to_end(key)
    while len(table) > CHECKPOINTS_KEPT:
        table.popitem(last=False)


@contextmanager
def _client(timeout: httpx.Timeout, transport: httpx.BaseTransport | None) -> Iterator[Any]:
    limits = httpx.Limits(max_connections=HEADER_FETCHES)
    with httpx.Client(
        timeout=timeout, follow_redirects=True, transport=transport, limits=limits
    ) as client:
        yield client


def _config_key(config: Mapping[str, Any] | None) -> str:
    """What of config.json the reading depends on, as a cache key."""
    config = config or {}
    text = config.get("text_config") if isinstance(config.get("text_config"), Mapping) else {}
    parts = [
        config.get("quantization_config") or text.get("quantization_config"),
        text.get("tie_word_embeddings", config.get("tie_word_embeddings")),
        text.get("num_hidden_layers", config.get("num_hidden_layers")),
    ]
    return json.dumps(parts, sort_keys=True, default=str)


def _read(
    client: httpx.Client,
    base: str,
    headers: dict[str, str],
    source: str,
    config: Mapping[str, Any] | None,
) -> Checkpoint | None:
    index_url = f"{base}/{INDEX_FILE}"
    response = _get(client, index_url, headers, source)
    revision = response.headers.get("x-repo-commit") or _revision(source)
    if response.status_code == 404:
        index = None
        shards: tuple[str, ...] = (SINGLE_FILE,)
    else:
        _raise_for(response, index_url, source)
        try:
            index = parse_index(response.json(), index_url)
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise SourceError(f"{index_url} did not return JSON: {error}") from error
        except CheckpointError as error:
            raise SourceError(str(error)) from error
        shards = index.shards
        if len(shards) > MAX_SHARDS:
            raise SourceError(
                f"{index_url} lists {len(shards)} shards, more than the {MAX_SHARDS} read"
            )
    with ThreadPoolExecutor(max_workers=min(HEADER_FETCHES, len(shards))) as pool:
        results = list(
            pool.map(lambda s: _header(client, f"{base}/{s}", headers, source, index), shards)
        )
    found: dict[str, list[Tensor]] = {}
    for shard, tensors in zip(shards, results, strict=True):
        if tensors is None:  # only the single file may be missing: no checkpoint at all
            return None
        found[shard] = tensors
    try:
        return read_checkpoint(found, config, index=index, revision=revision)
    except CheckpointError as error:
        raise SourceError(f"{base}: {error}") from error


def _revision(source: str) -> str | None:
    """The revision an hf:// source names (``main`` when none), None for a URL."""
    if not source.startswith("hf://"):
        return None
    return source.partition("@")[2] or "main"


def _header(
    client: httpx.Client, url: str, headers: dict[str, str], source: str, index: Index | None
) -> list[Tensor] | None:
    """One shard's tensors from its header; None if a single model.safetensors is absent."""
    first = _range(client, url, headers, source, 0, 8, missing_ok=index is None)
    if first is None:
        return None
    try:
        length = header_length(first, url)
    except CheckpointError as error:
        raise SourceError(str(error)) from error
    if length > MAX_HEADER_BYTES:
        raise SourceError(
            f"{url}: safetensors header of {length} bytes is larger than the "
            f"{MAX_HEADER_BYTES} read (not a safetensors file?)"
        )
    raw = _range(client, url, headers, source, 8, length, missing_ok=False)
    try:
        return parse_header(raw or b"", url)
    except CheckpointError as error:
        raise SourceError(str(error)) from error


def _range(
    client: httpx.Client,
    url: str,
    headers: dict[str, str],
    source: str,
    start: int,
    length: int,
    *,
    missing_ok: bool,
) -> bytes | None:
    """Bytes [start, start + length) of ``url``: a range request, read as a stream so that a
    server answering 200 with the whole file is cut off after them."""
    wanted = {**headers, "Range": f"bytes={start}-{start + length - 1}"}
    try:
        with client.stream("GET", url, headers=wanted) as response:
            if response.status_code == 404 and missing_ok:
                return None
            if response.status_code == 416:
                raise SourceError(f"{url} is shorter than {start + length} bytes")
            _raise_for(response, url, source)
            skip = 0 if response.status_code == 206 else start
            data = bytearray()
            for chunk in response.iter_bytes():
                if skip:
                    dropped = min(skip, len(chunk))
                    chunk, skip = chunk[dropped:], skip - dropped
                data += chunk
                if len(data) >= length:
                    break
    except httpx.HTTPError as error:
        raise SourceError(
            f"could not read {url} for {source}: {error} (offline? set HF_ENDPOINT to a mirror)",
            retryable=True,
        ) from error
    if len(data) < length:
        raise SourceError(f"{url} ended after {start + len(data)} bytes, before {start + length}")
    return bytes(data[:length])


def _get(
    client: httpx.Client, url: str, headers: dict[str, str], source: str, method: str = "GET"
) -> httpx.Response:
    try:
        return client.request(method, url, headers=headers)
    except httpx.HTTPError as error:
        raise SourceError(
            f"could not fetch {url} for {source}: {error} (offline? set HF_ENDPOINT to a mirror)",
            retryable=True,
        ) from error


def _raise_for(response: httpx.Response, url: str, source: str) -> None:
    """A SourceError for any answer but 200 and 206, saying what to do."""
    code = response.status_code
    if code in (200, 206):
        return
    if code in (401, 403):
        raise SourceError(
            f"{url} answered {code}: the model is gated or private; "
            "set HF_TOKEN to a token that can read it"
        )
    raise SourceError(
        f"{url} answered HTTP {code} for {source}", retryable=code >= 500 or code == 429
    )

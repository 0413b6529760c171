"""ModelAdapters: indexed by their base, planned with it, and told what became of them.

- ``entry`` is the index value of one ModelAdapter, under its base's ``(namespace, name)``
  (``handlers.adapters``); ``listed`` turns a base's entries into the planner's
  ``lora.Listed`` (a malformed one is skipped with a log line: the CRD's schema normally
  refuses it first);
- ``fingerprint`` is what of them a base's plan depends on (names and specs, not their
  status): ``indexed.fingerprint`` includes it, so the resync loop re-plans the base, and
  rolls its pods through a new Deployment spec, when an adapter is added, changed or removed;
- ``with_targets`` fills an adapter's unset ``targetModules`` from its ``adapter_config.json``
  (hf:// sources only, cached by source); when it cannot be had the adapter is sized as if it
  adapted every linear module, an upper bound, and planning never waits for it;
- ``write_statuses`` patches each ModelAdapter's status from its base's plan (Loaded, Rejected
  with a reason, Pending), only when it changed; ``orphan_statuses`` marks Orphaned those whose
  base does not exist. The operator never deletes a ModelAdapter and never writes its spec.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from pydantic import ValidationError

from memplace.api import MODEL_ADAPTER, ModelAdapterSpec, ModelDeploymentSpec, format_bytes
from memplace.planning.adapters import targets_from_adapter_config
from memplace.planning.lora import Listed

from . import inputs, kube
from . import status as mdstatus
from .settings import Settings
from .sources import SourceError, fetch_config
from .state import Key

__all__ = [
    "entry",
    "fingerprint",
    "listed",
    "orphan_statuses",
    "resolved_targets",
    "with_targets",
    "write_statuses",
]


def entry(name: str, meta: Mapping[str, Any], spec: Any, status: Any) -> dict[str, Any]:
    return {
        "name": name,
        "generation": meta.get("generation"),
        "resourceVersion": meta.get("resourceVersion"),
        "spec": inputs._plain(spec or {}),
        "status": inputs._plain(status or {}),
    }


def _entries(indexes: Mapping[str, Any], key: Key) -> list[dict[str, Any]]:
    store = (indexes.get("adapters") or {}).get(key) or []
    return sorted(store, key=lambda e: e["name"])


def fingerprint(indexes: Mapping[str, Any], key: Key) -> list[tuple[str, str]]:
    return [(e["name"], repr(sorted(e["spec"].items()))) for e in _entries(indexes, key)]


def listed(indexes: Mapping[str, Any], key: Key, logger: Any) -> tuple[Listed, ...]:
    out = []
    for e in _entries(indexes, key):
        try:
            out.append(Listed(e["name"], ModelAdapterSpec.model_validate(e["spec"])))
        except ValidationError as error:
            logger.warning(f"ModelAdapter {key[0]}/{e['name']} skipped: {error}")
    return tuple(out)


Fetch = Callable[[str], Mapping[str, Any]]
"""``adapter_config.json`` of an hf:// source (``sources.fetch_config``, off the event loop)."""


async def resolved_targets(
    fields: Iterable[Any], fetch: Fetch, cache: dict[str, Any]
) -> dict[str, tuple[str, ...]]:
    """source → target modules, for adapters without ``targetModules`` whose source is hf://."""
    found: dict[str, tuple[str, ...]] = {}
    for f in fields:
        if f.target_modules or not f.source.startswith("hf://"):
            continue
        key = f"adapter_config:{f.source}"
        if key not in cache:
            try:
                cache[key] = targets_from_adapter_config(await asyncio.to_thread(fetch, f.source))
            except SourceError:
                cache[key] = None  # sized as every module; not retried this run
        if cache[key]:
            found[f.source] = cache[key]
    return found


async def with_targets(
    spec: ModelDeploymentSpec,
    adapters: tuple[Listed, ...],
    settings: Settings,
    cache: dict[str, Any],
) -> tuple[ModelDeploymentSpec, tuple[Listed, ...]]:
    """``spec`` and ``adapters`` with target modules read from each adapter_config.json."""

    def fetch(source: str) -> Mapping[str, Any]:
        return fetch_config(
            source,
            token=settings.hf_token,
            endpoint=settings.hf_endpoint,
            filename="adapter_config.json",
        )

    targets = await resolved_targets([*spec.adapters, *(a.spec for a in adapters)], fetch, cache)
    if not targets:
        return spec, adapters

    def filled(f: Any) -> Any:
        found = targets.get(f.source)
        return f.model_copy(update={"target_modules": list(found)}) if found else f

    spec = spec.model_copy(update={"adapters": [filled(a) for a in spec.adapters]})
    return spec, tuple(Listed(a.name, filled(a.spec)) for a in adapters)


def _status_of(
    e: Mapping[str, Any], base: str, found: Mapping[str, Any] | None, base_message: str
) -> dict[str, Any]:
    if found is None:
        phase, reason, message = "Pending", "NotPlanned", base_message or "not planned yet"
        memory = None
    else:
        phase = found["state"]
        reason = found.get("reason") or phase
        message = found.get("message") or (
            f"loaded beside {base}" if phase == "Loaded" else base_message
        )
        memory = found.get("memoryBytes")
    return {
        "observedGeneration": e.get("generation"),
        "phase": phase,
        "baseDeployment": base,
        "memoryBytes": memory,
        "reason": reason,
        "message": message,
    }


async def _patch(api: kube.Kube, namespace: str, e: Mapping[str, Any], new: dict) -> None:
    """Merge-patch the status fields that changed (and the Loaded condition with them)."""
    memory = new.get("memoryBytes")
    new = {**new, "memory": format_bytes(memory) if memory is not None else None}
    previous = e.get("status") or {}
    changes = {k: v for k, v in new.items() if previous.get(k) != v}
    if not changes:
        return
    now = datetime.datetime.now(datetime.UTC)
    changes["conditions"] = mdstatus.set_condition(
        previous.get("conditions") or [],
        "Loaded",
        new["phase"] == "Loaded",
        new["reason"],
        new["message"] or "",
        generation=new["observedGeneration"],
        now=now,
    )
    url = kube.path(MODEL_ADAPTER.api_version, MODEL_ADAPTER.plural, namespace, e["name"])
    with contextlib.suppress(kube.NotFound):  # deleted meanwhile
        await api.merge_patch(url + "/status", {"status": changes})


async def write_statuses(
    api: kube.Kube,
    indexes: Mapping[str, Any],
    key: Key,
    fields: Mapping[str, Any],
) -> None:
    """Each ModelAdapter of base ``key``: its state in the base's plan (``fields``)."""
    namespace, base = key
    planned = {
        a["name"]: a for a in fields.get("adapters") or [] if a.get("origin") == "ModelAdapter"
    }
    for e in _entries(indexes, key):
        found = planned.get(e["name"])
        await _patch(api, namespace, e, _status_of(e, base, found, fields.get("message") or ""))


async def orphan_statuses(api: kube.Kube, indexes: Mapping[str, Any]) -> None:
    """ModelAdapters whose base ModelDeployment does not exist: Orphaned (never deleted)."""
    models = indexes.get("models") or {}
    for key, store in list((indexes.get("adapters") or {}).items()):
        if key in models:
            continue
        for e in list(store):
            new = {
                "observedGeneration": e.get("generation"),
                "phase": "Orphaned",
                "baseDeployment": key[1],
                "memoryBytes": None,
                "reason": "BaseNotFound",
                "message": f"ModelDeployment {key[0]}/{key[1]} does not exist; "
                "the adapter is kept and loads when it does",
            }
            await _patch(api, key[0], e, new)

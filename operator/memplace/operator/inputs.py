"""Cluster objects → planning inputs: pools, nodes, reports, placed deployments, model configs.

The index functions (``pool_entry`` …) are pure: each turns one watched object into what the
planner needs, or ``None`` when the object cannot be used (a malformed PlacementPool is skipped
with a log line, it never stops the operator). :func:`model_config` does the I/O: a ConfigMap
through the API, or ``config.json`` over HTTP for ``hf://org/name`` and ``https://`` sources
(``HF_ENDPOINT`` and ``HF_TOKEN`` honoured).

Errors, in Kopf's terms (STYLE.md): a spec that cannot be planned is :class:`InvalidSpec`
(permanent: reported as phase Invalid, not retried until the spec changes); a source that is
unreachable right now, or a ConfigMap not created yet, is :class:`Waiting`, a
``kopf.TemporaryError`` (retried; the deployment shows phase Pending meanwhile).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import kopf
from pydantic import ValidationError

from memplace.api import (
    EstimateStatus,
    ModelDeploymentSpec,
    NodeMemoryReportStatus,
    PerformanceProfile,
    PlacementPoolSpec,
    PlacementStatus,
)
from memplace.planning.checkpoint import Checkpoint
from memplace.planning.inventory import Cluster, Node, build_cluster, node_from_manifest

from . import kube
from .settings import Settings
from .sources import SourceError, fetch_checkpoint, fetch_config

__all__ = [
    "InvalidSpec",
    "Placed",
    "Waiting",
    "build_planning_cluster",
    "model_checkpoints",
    "model_config",
    "node_entry",
    "parse_spec",
    "placed_entry",
    "pool_entry",
    "pool_error",
    "profile_entry",
    "report_entry",
    "sized_config",
    "variant_configs",
    "without_own_use",
    "without_unattributed",
]

PLACED_PHASES = ("Placed", "Ready")


class InvalidSpec(Exception):
    """The spec (or what it points to) cannot be planned; the message says why."""


class Waiting(kopf.TemporaryError):
    """An input the spec names is not there yet (retried); the deployment shows ``Pending``.

    ``waiting_for`` completes "waiting for …", e.g. ``ConfigMap ml/qwen3-8b-config``."""

    def __init__(self, waiting_for: str, *, delay: float) -> None:
        super().__init__(f"waiting for {waiting_for}", delay=delay)
        self.waiting_for = waiting_for


@dataclass(frozen=True)
class Placed:
    """A deployment's running placement, as its status records it."""

    placement: PlacementStatus
    estimate: EstimateStatus | None


def pool_entry(spec: Mapping[str, Any], logger: Any = None) -> PlacementPoolSpec | None:
    try:
        return PlacementPoolSpec.model_validate(dict(spec))
    except ValidationError as error:
        if logger is not None:
            logger.warning(f"PlacementPool skipped, its spec is not valid: {_first(error)}")
        return None


def pool_error(spec: Mapping[str, Any]) -> str | None:
    """Why a PlacementPool's spec does not parse, or None (shown in the pool's status)."""
    try:
        PlacementPoolSpec.model_validate(_plain(spec or {}))
    except ValidationError as error:
        return _first(error)
    return None


def profile_entry(body: Mapping[str, Any], logger: Any = None) -> PerformanceProfile | None:
    """A PerformanceProfile as the planner reads it; a malformed one is skipped with a log line
    (it then calibrates nothing, and the planner falls back on the roofline)."""
    plain = _plain(body)
    try:
        return PerformanceProfile.model_validate(
            {
                "metadata": {"name": (plain.get("metadata") or {}).get("name")},
                "spec": plain.get("spec") or {},
                "status": plain.get("status") or None,
            }
        )
    except ValidationError as error:
        if logger is not None:
            name = (plain.get("metadata") or {}).get("name")
            logger.warning(f"PerformanceProfile {name} skipped: {_first(error)}")
        return None


def node_entry(body: Mapping[str, Any], logger: Any = None) -> Node | None:
    try:
        return node_from_manifest(_plain(body))
    except ValueError as error:
        if logger is not None:
            logger.warning(f"Node skipped: {error}")
        return None


def report_entry(
    spec: Mapping[str, Any], status: Mapping[str, Any], logger: Any = None
) -> tuple[str, NodeMemoryReportStatus] | None:
    node = (spec or {}).get("nodeName")
    if not node or not status:
        return None
    try:
        return str(node), NodeMemoryReportStatus.model_validate(_plain(status))
    except ValidationError as error:
        if logger is not None:
            logger.warning(f"NodeMemoryReport for {node} skipped: {_first(error)}")
        return None


def without_own_use(
    reports: Iterable[tuple[str, NodeMemoryReportStatus]], pod_uids: Iterable[str]
) -> list[tuple[str, NodeMemoryReportStatus]]:
    """Reports as if memplace's own replicas (``pod_uids``) held no GPU memory.

    The planner takes the room of every placed deployment from its reservation
    (``Cluster.reserve``), and releases a deployment's own room before re-planning it. Measured
    free memory already lacks what those replicas hold (vLLM reserves its whole
    ``--gpu-memory-utilization`` share at start), so counting it again would make a running
    deployment stop fitting on its own GPU, and move it. Their processes' memory is given back
    to ``memoryFreeBytes`` (never above ``memoryTotalBytes``)."""
    own = {uid for uid in pod_uids if uid}
    result: list[tuple[str, NodeMemoryReportStatus]] = []
    for node, report in reports:
        gpus = []
        changed = False
        for gpu in report.gpus:
            held = sum(p.used_memory_bytes or 0 for p in gpu.processes if p.pod_uid in own)
            if held and gpu.memory_free_bytes is not None:
                free = gpu.memory_free_bytes + held
                if gpu.memory_total_bytes is not None:
                    free = min(free, gpu.memory_total_bytes)
                used = gpu.memory_used_bytes
                update: dict[str, Any] = {"memory_free_bytes": free}
                if used is not None:
                    update["memory_used_bytes"] = max(0, used - held)
                gpu = gpu.model_copy(update=update)
                changed = True
            gpus.append(gpu)
        result.append((node, report.model_copy(update={"gpus": gpus}) if changed else report))
    return result


def without_unattributed(
    reports: Iterable[tuple[str, NodeMemoryReportStatus]], replica_nodes: Iterable[str]
) -> list[tuple[str, NodeMemoryReportStatus]]:
    """Reports less those of nodes that run memplace's replicas but do not say which process is
    whose (a process without ``podUid``: the agent runs without ``hostPID``, its default).

    There :func:`without_own_use` cannot give the replicas' memory back, and measured free
    memory would count it a second time, on top of the placements' reservations. Without a
    report the planner sizes that node from the catalogue and its own reservations, which is
    what it counts on anyway; nodes that run no replica keep their measurements."""
    nodes = set(replica_nodes)
    return [
        (node, report)
        for node, report in reports
        if node not in nodes or all(p.pod_uid for gpu in report.gpus for p in gpu.processes)
    ]


def placed_entry(status: Mapping[str, Any]) -> Placed | None:
    """The running placement recorded in a ModelDeployment's status, if any."""
    if not status or status.get("phase") not in PLACED_PHASES or not status.get("placement"):
        return None
    try:
        placement = PlacementStatus.model_validate(_plain(status["placement"]))
        raw = status.get("estimate")
        estimate = EstimateStatus.model_validate(_plain(raw)) if raw else None
        return Placed(placement, estimate)
    except ValidationError:
        return None


SUCCESSOR = "/successor"
"""Appended to a ModelDeployment's name, the key of the room its move's successor holds (no
object name contains a slash): while a move is in flight both Deployments take room."""


def successor_key(key: tuple[str, str]) -> tuple[str, str]:
    return key[0], key[1] + SUCCESSOR


def successor_entry(status: Mapping[str, Any]) -> Placed | None:
    """The placement a move in flight starts beside the running one, if any."""
    move = (status or {}).get("move")
    if not move or not move.get("placement"):
        return None
    try:
        placement = PlacementStatus.model_validate(_plain(move["placement"]))
        raw = move.get("estimate")
        estimate = EstimateStatus.model_validate(_plain(raw)) if raw else None
        return Placed(placement, estimate)
    except ValidationError:
        return None


def parse_spec(spec: Mapping[str, Any]) -> ModelDeploymentSpec:
    try:
        return ModelDeploymentSpec.model_validate(_plain(spec))
    except ValidationError as error:
        raise InvalidSpec(f"spec is not valid: {_first(error)}") from error


def build_planning_cluster(
    pools: Iterable[tuple[str, PlacementPoolSpec]],
    nodes: Iterable[Node],
    reports: Iterable[tuple[str, NodeMemoryReportStatus]],
    placed: Mapping[tuple[str, str], Placed],
    *,
    exclude: tuple[str, str],
    now: datetime,
) -> Cluster:
    """The planner's cluster, less the room every other placed deployment holds (and the
    successors of their moves in flight)."""
    cluster = build_cluster(pools=list(pools), nodes=list(nodes), reports=list(reports), now=now)
    for owner in sorted(placed):
        if owner not in (exclude, successor_key(exclude)):
            cluster = cluster.reserve(placed[owner].placement, placed[owner].estimate, owner=owner)
    return cluster


async def model_config(
    spec: ModelDeploymentSpec,
    namespace: str,
    api: kube.Kube,
    settings: Settings,
    cache: dict[str, dict[str, Any]] | None = None,
) -> dict[str, Any] | None:
    """The model's config.json: inline, from a ConfigMap, or fetched from its source."""
    return await sized_config(spec.model, namespace, api, settings, cache)


async def variant_configs(
    spec: ModelDeploymentSpec,
    namespace: str,
    api: kube.Kube,
    settings: Settings,
    cache: dict[str, dict[str, Any]] | None = None,
) -> dict[str, dict[str, Any]]:
    """config.json per variant sized by a ConfigMap or a source (``variant_configs``).

    Resolved as the model's is (:func:`sized_config`), with the same errors: a variant the user
    named is waited for, not silently dropped. Inline configs stay in the spec, where the planner
    reads them; a variant sized by ``parameters`` alone is left out."""
    found: dict[str, dict[str, Any]] = {}
    for variant in spec.model.variants:
        if variant.config is not None:
            continue
        config = await sized_config(variant, namespace, api, settings, cache)
        if config is not None:
            found[variant.name] = config
    return found


async def sized_config(
    sized: Any,
    namespace: str,
    api: kube.Kube,
    settings: Settings,
    cache: dict[str, dict[str, Any]] | None = None,
) -> dict[str, Any] | None:
    """The config.json of a ``ModelSpec`` or ``ModelVariant``: inline, ConfigMap or source.

    None when it is sized by ``parameters`` alone (or its source has no config.json and
    ``parameters`` is given). Fetched configs are cached by URL (a model's published config does
    not change under a revision). A missing ConfigMap or an unreachable source is
    :class:`Waiting` (the deployment is Pending until it appears); a ConfigMap without the
    key, or a config that is not a JSON object, is :class:`InvalidSpec`."""
    if sized.config is not None:
        return dict(sized.config)
    if sized.config_map_ref is not None:
        ref = sized.config_map_ref
        configmap = await api.get(kube.path("v1", "configmaps", namespace, ref.name))
        if configmap is None:
            raise Waiting(f"ConfigMap {namespace}/{ref.name}", delay=30)
        text = (configmap.get("data") or {}).get(ref.key)
        if text is None:
            raise InvalidSpec(f"ConfigMap {namespace}/{ref.name} has no key {ref.key!r}")
        return _json_object(text, f"ConfigMap {namespace}/{ref.name} key {ref.key}")
    if sized.source:
        url = sized.source
        if cache is not None and url in cache:
            return cache[url]
        try:
            config = await _fetch(url, settings)
        except InvalidSpec:
            if sized.parameters:
                return None  # the spec sizes the model itself
            raise
        if cache is not None:
            cache[url] = config
        return config
    return None


async def model_checkpoints(
    spec: ModelDeploymentSpec,
    config: Mapping[str, Any] | None,
    variant_configs: Mapping[str, Mapping[str, Any]],
    settings: Settings,
    logger: Any = None,
) -> dict[str | None, Checkpoint]:
    """The published checkpoint of the model (key None) and of each variant with a source.

    Read beside config.json (``sources.fetch_checkpoint``: the index and safetensors headers);
    its bytes are the weights at its native precision. It never stops planning: a checkpoint
    that cannot be read (offline, gated, not safetensors) leaves the weights to config.json,
    and the log says so; ``status.estimate.weightsSource`` shows which was used."""
    wanted: list[tuple[str | None, Any, Mapping[str, Any] | None]] = [
        (None, spec.model, spec.model.config if spec.model.config is not None else config)
    ]
    for v in spec.model.variants:
        wanted.append(
            (v.name, v, v.config if v.config is not None else variant_configs.get(v.name))
        )
    found: dict[str | None, Checkpoint] = {}
    for key, sized, sized_config in wanted:
        if not sized.source or sized_config is None:
            continue
        try:
            checkpoint = await asyncio.to_thread(
                fetch_checkpoint,
                sized.source,
                sized_config,
                token=settings.hf_token,
                endpoint=settings.hf_endpoint,
            )
        except SourceError as error:
            if logger is not None:
                logger.warning(
                    f"weights of {sized.source} computed from config.json: "
                    f"its checkpoint could not be read ({error})"
                )
            continue
        if checkpoint is not None:
            found[key] = checkpoint
    return found


async def _fetch(source: str, settings: Settings) -> dict[str, Any]:
    """config.json through ``sources.fetch_config`` (sync httpx) off the event loop."""
    try:
        config = await asyncio.to_thread(
            fetch_config, source, token=settings.hf_token, endpoint=settings.hf_endpoint
        )
    except SourceError as error:
        if error.retryable:
            raise Waiting(f"config.json from {source} ({error})", delay=60) from error
        raise InvalidSpec(str(error)) from error
    return dict(config)


def _json_object(text: str, where: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError as error:
        raise InvalidSpec(f"{where} is not JSON: {error}") from error
    if not isinstance(value, dict):
        raise InvalidSpec(f"{where} is not a JSON object")
    return value


def _first(error: ValidationError) -> str:
    detail = error.errors()[0]
    where = ".".join(str(part) for part in detail.get("loc", ()))
    return f"{where}: {detail.get('msg')}" if where else str(detail.get("msg"))


def _plain(value: Any) -> Any:
    """Kopf's body views → plain dicts and lists."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value

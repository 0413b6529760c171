"""A placed ModelDeployment as the apps/v1 Deployment and the Service that run it. Pure.

:func:`render` turns (the ModelDeployment, its placement and estimate, the pool) into two
manifests. The pod template pins to the pool (its node selector and tolerations), requests what
the placement needs, and passes the plan to the engine as arguments:

====================  ==========================================================================
engine                what the plan sets
====================  ==========================================================================
vllm                  --dtype, --quantization, --kv-cache-dtype, --max-model-len,
                      --tensor-parallel-size, --gpu-memory-utilization (from the estimate),
                      --max-num-seqs, --cpu-offload-gb (offload tier), --device cpu (cpu tier)
llamacpp              -c, -ngl (all layers, none for cpu, a share for offload), --cache-type-k/v,
                      --threads, --parallel
tgi                   --quantize, --max-total-tokens, --max-input-tokens, --num-shard,
                      --max-concurrent-requests
custom                MEMPLACE_* environment variables only
====================  ==========================================================================

LoRA adapters the plan loaded are added by ``render_lora`` (vLLM --enable-lora …, llama.cpp
--lora, TGI LORA_ADAPTERS).

``spec.runtime.args`` come after the plan's arguments and ``spec.runtime.env`` after its
variables, so a user can override either. The Deployment carries a hash of everything rendered
(``memplace.io/plan-hash``): the handler compares it before writing, so re-running a reconcile
with the same plan writes nothing.

A ModelDeployment runs one Deployment, two while a move is in flight (``moves``): the serving
one and its successor. Each Deployment's pods carry its own name (``memplace.io/workload``), its
selector includes it, and the Service selects the serving one's: two Deployments never share
pods, and the Service switches by changing one label value. The first Deployment is named as
its ModelDeployment; a successor as :func:`successor_name` says, from the placement it runs.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from memplace.api import (
    MODEL_DEPLOYMENT,
    EstimateStatus,
    ModelDeploymentSpec,
    PlacementPoolSpec,
    PlacementStatus,
)

from . import render_lora

__all__ = [
    "MANAGED_BY",
    "PLAN_HASH",
    "Owner",
    "RenderError",
    "WORKLOAD_LABEL",
    "labels_for",
    "placement_id",
    "plan_hash",
    "successor_name",
    "render",
    "render_deployment",
    "render_service",
    "selector_for",
    "serving_name",
]

MANAGED_BY = {"app.kubernetes.io/managed-by": "memplace"}
DEPLOYMENT_LABEL = "memplace.io/deployment"
POOL_LABEL = "memplace.io/pool"
PLAN_HASH = "memplace.io/plan-hash"
WORKLOAD_LABEL = "memplace.io/workload"
PLACEMENT_ID = "memplace.io/placement-id"
PLACEMENT_ANNOTATION = "memplace.io/placement"
GIB = 1024**3
MIB = 1024**2

DEFAULT_IMAGES = {
    "vllm": "vllm/vllm-openai:v0.11.0",
    "llamacpp": "ghcr.io/ggml-org/llama.cpp:server-cuda",
    "tgi": "ghcr.io/huggingface/text-generation-inference:3.3.6",
}
CPU_IMAGES = {
    "vllm": "vllm/vllm-openai:v0.11.0",  # CPU builds are site-specific: set spec.runtime.image
    "llamacpp": "ghcr.io/ggml-org/llama.cpp:server",
    "tgi": "ghcr.io/huggingface/text-generation-inference:3.3.6",
}
VLLM_DTYPE = {"bf16": "bfloat16", "fp16": "float16"}
# In-flight quantisation from a 16-bit checkpoint: dynamic fp8, and bitsandbytes 4-bit (vLLM
# docs, features/quantization/bnb: "Inflight quantization: load as 4bit"). A checkpoint already
# in a quantised format (int8 W8A8, nvfp4, mxfp4, a pre-quantised int4) carries its method in
# config.json and vLLM detects it, so no flag is passed (the planner serves such a checkpoint
# only in its own format: feasibility.ENGINE_SUPPORT). bitsandbytes stores 4.5 bits per weight
# (a 32-bit scale per 64) against the 4.25 the plan assumes for group-128 int4: the 0.9
# --gpu-memory-utilization headroom absorbs the difference.
VLLM_QUANTIZATION = {"fp8": "fp8", "int4": "bitsandbytes"}
TGI_QUANTIZE = {"fp8": "fp8", "int8": "bitsandbytes", "int4": "bitsandbytes-nf4"}
LLAMACPP_CACHE_TYPE = {"bf16": "bf16", "fp16": "f16", "fp8": "q8_0"}
# MIG profiles by GPU memory (GiB), smallest first: (profile, memory GiB).
MIG_PROFILES = {
    80: [("1g.10gb", 10), ("2g.20gb", 20), ("3g.40gb", 40), ("7g.80gb", 80)],
    40: [("1g.5gb", 5), ("2g.10gb", 10), ("3g.20gb", 20), ("7g.40gb", 40)],
}


class RenderError(ValueError):
    """The placement cannot be turned into a workload (e.g. custom engine without an image)."""


@dataclass(frozen=True)
class Owner:
    """The ModelDeployment that owns what is rendered (garbage collection deletes them with it)."""

    name: str
    namespace: str
    uid: str

    @classmethod
    def of(cls, body: Mapping[str, Any]) -> Owner:
        """The owner that a ModelDeployment's own body names."""
        meta = body.get("metadata") or {}
        return cls(name=meta["name"], namespace=meta["namespace"], uid=meta["uid"])

    def reference(self) -> dict[str, Any]:
        return {
            "apiVersion": MODEL_DEPLOYMENT.api_version,
            "kind": MODEL_DEPLOYMENT.kind,
            "name": self.name,
            "uid": self.uid,
            "controller": True,
            "blockOwnerDeletion": True,
        }


def labels_for(owner_name: str) -> dict[str, str]:
    """Labels on everything memplace creates for one ModelDeployment (also the pod selector)."""
    return {
        "app.kubernetes.io/name": owner_name,
        "app.kubernetes.io/instance": owner_name,
        **MANAGED_BY,
        DEPLOYMENT_LABEL: owner_name,
    }


def placement_id(placement: PlacementStatus) -> str:
    """A short hash of where and how a placement runs: everything but its replica count (and
    the nodes the plan packed onto), so that a pure scale keeps the id and a move changes it."""
    text = json.dumps(placement.where(), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def successor_name(owner_name: str, placement: PlacementStatus, serving: str | None) -> str:
    """The name of the Deployment that takes over from ``serving`` to run ``placement``.

    ``<owner>-<placement id>`` (the owner cut to keep it a 63-character label value), or the
    owner's own name when the serving Deployment already holds that one: deterministic, so a
    restarted operator finds the successor it created before, and never the serving name."""
    hashed = f"{owner_name[:54]}-{placement_id(placement)}"
    return hashed if hashed != serving else owner_name


def serving_name(owner_name: str, service: dict[str, Any]) -> str:
    """The Deployment a Service selects: its workload label, or the owner's name for a Service
    rendered before Deployments carried one (it selected the owner's only Deployment)."""
    selector = (service.get("spec") or {}).get("selector") or {}
    return str(selector.get(WORKLOAD_LABEL) or owner_name)


def selector_for(owner_name: str, workload: str) -> dict[str, str]:
    """The pods of Deployment ``workload`` of ModelDeployment ``owner_name``."""
    return {DEPLOYMENT_LABEL: owner_name, WORKLOAD_LABEL: workload}


def plan_hash(deployment: dict[str, Any]) -> str:
    """A short, stable hash of what a Deployment would run (its spec and pinned labels)."""
    essence = {
        "spec": deployment.get("spec"),
        "labels": deployment.get("metadata", {}).get("labels"),
    }
    text = json.dumps(essence, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def render(
    owner: Owner,
    spec: ModelDeploymentSpec,
    placement: PlacementStatus,
    estimate: EstimateStatus | None,
    pool: PlacementPoolSpec,
    *,
    name: str | None = None,
    serving: str | None = None,
    gpu_memory_bytes: int | None = None,
    model_config: dict[str, Any] | None = None,
    lora: Any = None,
    pod_annotations: Mapping[str, str] | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The Deployment ``name`` (default: the owner's name) for one placement, and the Service
    selecting the pods of ``serving`` (default: that same Deployment); ``lora``: the plan's
    ``adapters.LoraSlots``, whose adapters are loaded beside the model (``render_lora``)."""
    deployment = render_deployment(
        owner,
        spec,
        placement,
        estimate,
        pool,
        name=name,
        gpu_memory_bytes=gpu_memory_bytes,
        model_config=model_config,
        lora=lora,
        pod_annotations=pod_annotations,
    )
    return deployment, render_service(owner, spec, serving or deployment["metadata"]["name"])


def render_service(owner: Owner, spec: ModelDeploymentSpec, serving: str) -> dict[str, Any]:
    """A ClusterIP Service on ``spec.runtime.port`` selecting the pods of Deployment ``serving``."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": owner.name,
            "namespace": owner.namespace,
            "labels": labels_for(owner.name),
            "ownerReferences": [owner.reference()],
        },
        "spec": {
            "selector": selector_for(owner.name, serving),
            "ports": [
                {
                    "name": "http",
                    "port": spec.runtime.port,
                    "targetPort": "http",
                    "protocol": "TCP",
                }
            ],
        },
    }


def render_deployment(
    owner: Owner,
    spec: ModelDeploymentSpec,
    placement: PlacementStatus,
    estimate: EstimateStatus | None,
    pool: PlacementPoolSpec,
    *,
    name: str | None = None,
    gpu_memory_bytes: int | None = None,
    model_config: dict[str, Any] | None = None,
    lora: Any = None,
    pod_annotations: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The apps/v1 Deployment ``name`` (default: the owner's), with the plan-hash annotation;
    ``pod_annotations`` go on the pod template (``scrape.pod_annotations``: how Prometheus finds
    the pods)."""
    name = name or owner.name
    runtime = spec.runtime
    engine = runtime.engine
    image = runtime.image or (CPU_IMAGES if placement.tier == "cpu" else DEFAULT_IMAGES).get(engine)
    if not image:
        raise RenderError(f"spec.runtime.image is required for the {engine} engine")

    args, env = _engine_args(spec, placement, estimate, gpu_memory_bytes, model_config)
    lora_args, lora_env = render_lora.engine_args(engine, lora)
    args, env = [*args, *lora_args], [*env, *lora_env]
    env = _merged_env(env, [{"name": e.name, "value": e.value} for e in runtime.env])
    selector = selector_for(owner.name, name)
    labels = {**labels_for(owner.name), **selector, POOL_LABEL: placement.pool}
    container: dict[str, Any] = {
        "name": "engine",
        "image": image,
        "args": [*args, *runtime.args],
        "ports": [{"name": "http", "containerPort": runtime.port, "protocol": "TCP"}],
        "resources": _resources(placement, estimate, pool, gpu_memory_bytes),
    }
    if env:
        container["env"] = env
    probe = _readiness_probe(engine, runtime.port)
    if probe:
        container["readinessProbe"] = probe

    pod_spec: dict[str, Any] = {
        "nodeSelector": dict(pool.node_selector),
        "containers": [container],
    }
    tolerations = [t.to_wire() for t in pool.tolerations]
    if tolerations:
        pod_spec["tolerations"] = tolerations
    if placement.gpus_per_replica > 1:
        # Tensor parallelism talks through shared memory; the default 64Mi /dev/shm is too small.
        pod_spec["volumes"] = [{"name": "dshm", "emptyDir": {"medium": "Memory"}}]
        container["volumeMounts"] = [{"name": "dshm", "mountPath": "/dev/shm"}]

    deployment: dict[str, Any] = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": name,
            "namespace": owner.namespace,
            "labels": labels,
            "annotations": {
                PLACEMENT_ANNOTATION: _describe(placement),
                PLACEMENT_ID: placement_id(placement),
            },
            "ownerReferences": [owner.reference()],
        },
        "spec": {
            "replicas": placement.replicas,
            "selector": {"matchLabels": selector},
            "template": {
                "metadata": {
                    "labels": labels,
                    **({"annotations": dict(pod_annotations)} if pod_annotations else {}),
                },
                "spec": pod_spec,
            },
        },
    }
    deployment["metadata"]["annotations"][PLAN_HASH] = plan_hash(deployment)
    return deployment


def _describe(placement: PlacementStatus) -> str:
    text = f"{placement.precision} {placement.tier} on {placement.pool}"
    return text + f", {placement.gpus_per_replica} GPU x {placement.replicas} replicas"


def _readiness_probe(engine: str, port: int) -> dict[str, Any]:
    if engine == "custom":
        return {"tcpSocket": {"port": port}, "periodSeconds": 10}
    return {
        "httpGet": {"path": "/health", "port": port},
        "periodSeconds": 10,
        "failureThreshold": 3,
    }


def _model_id(spec: ModelDeploymentSpec, placement: PlacementStatus) -> str:
    model = spec.model
    chosen = next((v for v in model.variants if v.name == placement.variant), None)
    source = (chosen.source if chosen else model.source) or ""
    if source.startswith("hf://"):
        return source.removeprefix("hf://")
    return chosen.name if chosen else model.name


def _engine_args(
    spec: ModelDeploymentSpec,
    placement: PlacementStatus,
    estimate: EstimateStatus | None,
    gpu_memory_bytes: int | None,
    model_config: dict[str, Any] | None,
) -> tuple[list[str], list[dict[str, str]]]:
    engine = spec.runtime.engine
    workload = spec.workload
    port = str(spec.runtime.port)
    model = _model_id(spec, placement)
    precision = placement.precision
    kv = placement.kv_cache_dtype
    gpus = placement.gpus_per_replica
    if engine == "vllm":
        args = ["--model", model, "--host", "0.0.0.0", "--port", port]
        args += ["--dtype", VLLM_DTYPE.get(precision, "auto")]
        prequantised = placement.variant is None and (model_config or {}).get("quantization_config")
        if precision in VLLM_QUANTIZATION and not prequantised:
            args += ["--quantization", VLLM_QUANTIZATION[precision]]
        if kv == "fp8":  # vLLM's "auto" is the activation dtype (bf16/fp16)
            args += ["--kv-cache-dtype", "fp8"]
        args += ["--max-model-len", str(workload.context_tokens)]
        args += ["--max-num-seqs", str(workload.concurrency)]
        if placement.tier == "cpu":
            args += ["--device", "cpu"]
        else:
            args += ["--tensor-parallel-size", str(max(gpus, 1))]
            utilization = _gpu_memory_utilization(estimate, gpu_memory_bytes)
            if utilization is not None:
                args += ["--gpu-memory-utilization", f"{utilization:.2f}"]
        if placement.tier == "offload" and placement.offload_bytes_per_replica:
            offload_gb = math.ceil(placement.offload_bytes_per_replica / GIB)
            args += ["--cpu-offload-gb", str(offload_gb)]
        return args, []
    if engine == "llamacpp":
        args = ["--hf-repo", model, "--host", "0.0.0.0", "--port", port]
        args += ["-c", str(workload.context_tokens * workload.concurrency)]
        args += ["--parallel", str(workload.concurrency)]
        args += ["-ngl", str(_gpu_layers(placement, estimate, model_config))]
        if kv:
            cache = LLAMACPP_CACHE_TYPE.get(kv, "f16")
            args += ["--cache-type-k", cache, "--cache-type-v", cache]
        args += ["--threads", str(_threads(placement))]
        return args, []
    if engine == "tgi":
        args = ["--model-id", model, "--hostname", "0.0.0.0", "--port", port]
        if precision in TGI_QUANTIZE:
            args += ["--quantize", TGI_QUANTIZE[precision]]
        args += ["--max-total-tokens", str(workload.context_tokens)]
        max_input = min(workload.prompt_tokens, workload.context_tokens - 1)
        args += ["--max-input-tokens", str(max(max_input, 1))]
        args += ["--max-concurrent-requests", str(workload.concurrency)]
        if placement.tier != "cpu":
            args += ["--num-shard", str(max(gpus, 1))]
        return args, []
    env = {
        "MEMPLACE_MODEL": model,
        "MEMPLACE_PORT": port,
        "MEMPLACE_PRECISION": precision,
        "MEMPLACE_KV_CACHE_DTYPE": kv or "",
        "MEMPLACE_TIER": placement.tier,
        "MEMPLACE_GPUS_PER_REPLICA": str(gpus),
        "MEMPLACE_MAX_MODEL_LEN": str(workload.context_tokens),
        "MEMPLACE_CONCURRENCY": str(workload.concurrency),
        "MEMPLACE_OFFLOAD_BYTES": str(placement.offload_bytes_per_replica or 0),
    }
    if estimate is not None and estimate.total_bytes_per_gpu:
        env["MEMPLACE_GPU_MEMORY_BYTES"] = str(estimate.total_bytes_per_gpu)
    return [], [{"name": k, "value": v} for k, v in env.items()]


def _merged_env(planned: list[dict[str, str]], extra: list[dict[str, str]]) -> list[dict[str, str]]:
    names = {e["name"] for e in extra}
    return [e for e in planned if e["name"] not in names] + extra


def _gpu_memory_utilization(
    estimate: EstimateStatus | None, gpu_memory_bytes: int | None
) -> float | None:
    """The share of GPU memory vLLM may take: the estimate plus 2 points, capped at 0.95."""
    if estimate is None or not estimate.total_bytes_per_gpu or not gpu_memory_bytes:
        return None
    share = estimate.total_bytes_per_gpu / gpu_memory_bytes + 0.02
    return min(0.95, math.ceil(share * 100) / 100)


def _gpu_layers(
    placement: PlacementStatus, estimate: EstimateStatus | None, config: dict[str, Any] | None
) -> int:
    if placement.tier == "cpu":
        return 0
    if placement.tier != "offload":
        return 999  # llama.cpp caps at the model's layer count
    layers = int((config or {}).get("num_hidden_layers") or 0)
    weights = estimate.weights_bytes if estimate else None
    offload = placement.offload_bytes_per_replica or 0
    if not layers or not weights:
        return 0
    on_gpu = max(0.0, 1.0 - offload / weights)
    return int(layers * on_gpu)


def _threads(placement: PlacementStatus) -> int:
    return 16 if placement.tier == "cpu" else 4


def _resources(
    placement: PlacementStatus,
    estimate: EstimateStatus | None,
    pool: PlacementPoolSpec,
    gpu_memory_bytes: int | None,
) -> dict[str, Any]:
    gpus = placement.gpus_per_replica
    limits: dict[str, Any] = {}
    requests: dict[str, Any] = {}
    per_gpu = estimate.total_bytes_per_gpu if estimate else None
    if placement.tier == "cpu" or gpus == 0:
        total = estimate.total_bytes if estimate and estimate.total_bytes else None
        if total:
            requests["memory"] = str(total)
        return {"requests": requests} if requests else {}
    if pool.sharing == "hami":
        limits["nvidia.com/gpu"] = gpus
        if per_gpu:
            limits["nvidia.com/gpumem"] = math.ceil(per_gpu / MIB)  # HAMi counts MiB
    elif pool.sharing == "mig" and per_gpu and gpu_memory_bytes:
        profile = _mig_profile(per_gpu, gpu_memory_bytes)
        limits[f"nvidia.com/mig-{profile}" if profile else "nvidia.com/gpu"] = gpus
    else:
        limits["nvidia.com/gpu"] = gpus
    if placement.tier == "offload" and placement.offload_bytes_per_replica:
        requests["memory"] = str(placement.offload_bytes_per_replica)
    result: dict[str, Any] = {"limits": limits}
    if requests:
        result["requests"] = requests
    return result


def _mig_profile(per_gpu_bytes: int, gpu_memory_bytes: int) -> str | None:
    size_gib = round(gpu_memory_bytes / GIB / 40) * 40  # 40 or 80 GiB class
    for profile, memory_gib in MIG_PROFILES.get(size_gib, []):
        if per_gpu_bytes <= memory_gib * GIB * 0.95:
            return profile
    return None

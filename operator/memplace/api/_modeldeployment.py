"""ModelDeployment: what a user needs served, and where and how memplace placed it.

`spec` says *what*: the model, the demand, the latency SLO, the quality budget and the
allowed tiers and pools. `status` says *how*: the chosen placement, its memory and latency
estimates, its cost, and the alternatives that lost, each with a stable `RejectionCode`.

Model tree::

    ModelDeployment
    ├── spec: ModelDeploymentSpec
    │   ├── model: ModelSpec ── configMapRef: ConfigMapRef, variants: [ModelVariant]
    │   ├── workload: WorkloadSpec
    │   ├── slo: SloSpec
    │   ├── quality: QualitySpec
    │   ├── placement: PlacementSpec
    │   ├── runtime: RuntimeSpec ── env: [EnvVar]
    │   └── scaling: ScalingSpec
    └── status: ModelDeploymentStatus
        ├── placement: PlacementStatus
        ├── estimate: EstimateStatus
        ├── measured: MeasuredStatus
        ├── cost: CostStatus
        ├── demand: DemandStatus
        ├── alternatives: [Alternative]
        ├── conditions: [Condition]
        └── kopf: KopfStatus
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, get_args

from pydantic import (
    ConfigDict,
    Field,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    model_validator,
)

from ._base import ApiModel
from ._modeladapter import AdapterSpec, AdapterStatus
from ._resource import API_VERSION, GROUP, VERSION, NameRule, ObjectMeta, ResourceInfo
from ._status import Conditions, ListType, Timestamp, format_bytes, unique

__all__ = [
    "MODEL_DEPLOYMENT",
    "PRECISIONS",
    "REJECTION_CODES",
    "Alternative",
    "CalibrationStatus",
    "ConfigMapRef",
    "CostStatus",
    "DemandStatus",
    "Engine",
    "EnvVar",
    "EstimateErrorStatus",
    "EstimateStatus",
    "KvCacheDtype",
    "MeasuredLatencyMs",
    "MeasuredStatus",
    "ModelDeployment",
    "ModelDeploymentSpec",
    "ModelDeploymentStatus",
    "ModelSpec",
    "ModelVariant",
    "MoveStatus",
    "Phase",
    "PlacementSpec",
    "PlacementStatus",
    "Precision",
    "QualitySpec",
    "RejectionCode",
    "RuntimeSpec",
    "ScalingSpec",
    "SloSpec",
    "Temperature",
    "Tier",
    "WeightsSource",
    "WorkloadSpec",
]

MODEL_DEPLOYMENT = ResourceInfo(
    group=GROUP,
    version=VERSION,
    plural="modeldeployments",
    kind="ModelDeployment",
    namespaced=True,
    short_names=("mdep",),
)

Precision = Literal["bf16", "fp16", "fp8", "int8", "int4", "nvfp4", "mxfp4"]
"""Weight precisions the planner knows."""
PRECISIONS: tuple[str, ...] = get_args(Precision)

KvCacheDtype = Literal["bf16", "fp16", "fp8"]
"""KV-cache element types the planner knows."""

Tier = Literal["gpu", "offload", "cpu"]
"""Where weights live: all in GPU memory, partly in host RAM or disk, or served by CPUs."""

Temperature = Literal["hot", "warm", "cold"]
"""status.tier, by traffic: hot (served from GPU memory), warm (served from the offload or CPU
tier: weights partly or wholly outside GPU memory) and cold (zero replicas; the Service and the
plan stay, and traffic or KEDA wakes it)."""

Engine = Literal["vllm", "llamacpp", "tgi", "custom"]
"""The serving runtime."""

Phase = Literal["Pending", "Placed", "Ready", "Unschedulable", "Invalid"]
"""Where a ModelDeployment is in its life."""

WeightsSource = Literal["checkpoint", "quantizationConfig", "config", "parameters"]
"""Where an estimate's weight bytes come from, most trusted first."""

RejectionCode = Literal[
    "DoesNotFit",
    "TooSlow",
    "QualityTooLow",
    "UnsupportedPrecision",
    "PrecisionNotAllowed",
    "KvCacheDtypeNotAllowed",
    "TierNotAllowed",
    "PoolNotAllowed",
    "OffloadToDiskNotAllowed",
    "EngineUnsupported",
    "NoCapacity",
    "MoreExpensive",
    "KeptRunning",
    "ReservedForBatch",
    "NoPrice",
    "Invalid",
    "AdaptersNeedBase",
]
"""Why a candidate placement lost: a closed set of stable codes, also used as Event reasons.

- `DoesNotFit`: estimated memory per GPU (or host, for cpu/offload) exceeds what is usable.
- `TooSlow`: estimated time-to-first-token or time-per-output-token exceeds the SLO.
- `QualityTooLow`: quality loss of variant + precision exceeds `spec.quality.maxLoss`.
- `UnsupportedPrecision`: the GPU cannot run the precision (fp8 needs compute capability 8.9).
- `PrecisionNotAllowed`: the precision is not in `spec.quality.precisions`.
- `KvCacheDtypeNotAllowed`: the KV-cache type is not in `spec.quality.kvCacheDtypes`.
- `TierNotAllowed`: the tier is not in `spec.placement.tiers`.
- `PoolNotAllowed`: the pool is not in `spec.placement.pools`.
- `OffloadToDiskNotAllowed`: it needs weights on local disk and `offloadToDisk` is false.
- `EngineUnsupported`: `spec.runtime.engine` cannot serve this precision or tier.
- `NoCapacity`: the pool has too few GPUs (or nodes) free for the replicas needed.
- `MoreExpensive`: feasible, but a cheaper feasible placement won.
- `KeptRunning`: cheaper, but by no more than the consolidation threshold: the running
  placement stays (the batch planner, `--consolidation-threshold`).
- `ReservedForBatch`: cheaper and free, but the batch planner gave its room to another
  deployment that could not be placed without it.
- `NoPrice`: no price is known for the pool, so it cannot be ranked.
- `Invalid`: the spec (or the model's config) cannot be planned at all.
- `AdaptersNeedBase`: a variant cannot serve LoRA adapters trained on the base model.
"""
REJECTION_CODES: tuple[str, ...] = get_args(RejectionCode)

_SIZING_FIELDS = "config, configMapRef, source or parameters"
_SIZING_RULE = {
    "rule": "has(self.config) || has(self.configMapRef) || has(self.source)"
    " || has(self.parameters)",
    "message": f"the model needs at least one of {_SIZING_FIELDS} so that it can be sized",
}


OBJECT_NAME = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
"""A Kubernetes object name (a DNS subdomain, at most 253 characters: kubernetes.io/docs/
concepts/overview/working-with-objects/names/): ConfigMaps and PlacementPools are named so."""
OBJECT_NAME_MAX = 253
MODEL_NAME_MAX = 512
"""A model or variant name is a hub id (``owner/name``) or a path: far longer than any."""


class ConfigMapRef(ApiModel):
    """A ConfigMap in the ModelDeployment's namespace that holds the model's config.json."""

    name: str = Field(min_length=1, max_length=OBJECT_NAME_MAX, pattern=OBJECT_NAME)
    """The ConfigMap's name."""
    key: str = Field(
        default="config.json",
        min_length=1,
        max_length=OBJECT_NAME_MAX,
        pattern=r"^[-._a-zA-Z0-9]+$",
    )
    """The key whose value is the Hugging Face config.json (a ConfigMap key: letters, digits,
    ``-``, ``_`` and ``.``)."""


class _Sized(ApiModel):
    """Fields that let the planner size a model; at least one is required."""

    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": [_SIZING_RULE]})

    name: str = Field(min_length=1, max_length=MODEL_NAME_MAX)
    """The model's name."""
    source: str | None = Field(default=None, min_length=1, max_length=2048)
    """Where config.json can be fetched, e.g. `hf://Qwen/Qwen3-8B` or an https URL."""
    config: dict[str, Any] | None = None
    """The model's Hugging Face config.json, inline (free-form)."""
    config_map_ref: ConfigMapRef | None = None
    """A ConfigMap holding config.json, when it is too large or shared to inline."""
    parameters: PositiveFloat | None = None
    """Total parameter count (e.g. 8.2e9), when no config is at hand or to override it."""
    active_parameters: PositiveFloat | None = None
    """Parameters active per token (MoE); defaults to `parameters`."""

    @model_validator(mode="after")
    def _can_be_sized(self) -> _Sized:
        if all(
            value is None
            for value in (self.config, self.config_map_ref, self.source, self.parameters)
        ):
            raise ValueError(_SIZING_RULE["message"])
        return self


class ModelVariant(_Sized):
    """A cheaper stand-in for the model (e.g. a distilled student) the planner may choose."""

    name: str = Field(min_length=1, max_length=MODEL_NAME_MAX)
    """The variant's name (and its default hub id)."""
    quality_loss: float = Field(ge=0, le=1)
    """Relative quality loss of this variant against the model, 0..1 (0.03 = 3% worse)."""


class ModelSpec(_Sized):
    """The model to serve, and what the planner needs to size it."""

    name: str = Field(min_length=1, max_length=MODEL_NAME_MAX)
    """What the model is, e.g. `Qwen/Qwen3-8B`: for display, and the default hub id."""
    variants: Annotated[list[ModelVariant], ListType("map", ("name",))] = Field(
        default_factory=list, max_length=16
    )
    """Cheaper stand-ins the planner may serve instead when their quality loss is in budget."""


class WorkloadSpec(ApiModel):
    """The demand to serve: sequence lengths, concurrency, throughput and replica bounds."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "!has(self.maxReplicas) || !has(self.minReplicas)"
                    " || self.minReplicas <= self.maxReplicas",
                    "message": "minReplicas must not exceed maxReplicas",
                },
                {
                    "rule": "!has(self.promptTokens) || !has(self.contextTokens)"
                    " || self.promptTokens < self.contextTokens",
                    "message": "promptTokens must be less than contextTokens",
                },
            ]
        }
    )

    context_tokens: PositiveInt = 4096
    """Longest sequence served (prompt + output), in tokens: sizes the KV cache."""
    concurrency: PositiveInt = 1
    """Sequences in flight per replica: multiplies the KV cache, divides per-sequence speed."""
    prompt_tokens: PositiveInt = 1024
    """A typical prompt, in tokens: sets the time-to-first-token estimate."""
    output_tokens_per_second: NonNegativeFloat = 0
    """Demand across all replicas, in output tokens per second; 0 = just run minReplicas."""
    min_replicas: NonNegativeInt = 1
    """Fewest replicas to run, whatever the demand."""
    max_replicas: PositiveInt | None = None
    """Most replicas to run; unset = as many as the demand needs."""
    max_concurrent_adapters: PositiveInt | None = Field(default=None, le=256)
    """LoRA adapters resident on the GPU at once (vLLM's `--max-loras`); unset = all of them,
    at most 8. The rest wait in host memory and are swapped in when asked for."""

    @model_validator(mode="after")
    def _consistent(self) -> WorkloadSpec:
        if self.max_replicas is not None and self.min_replicas > self.max_replicas:
            raise ValueError("minReplicas must not exceed maxReplicas")
        if self.prompt_tokens >= self.context_tokens:
            raise ValueError("promptTokens must be less than contextTokens")
        return self


class SloSpec(ApiModel):
    """Latency targets every replica must meet with spec.workload.concurrency sequences in
    flight. The planner checks its estimate against each target and rejects a placement that
    misses one (reason TooSlow, in status.alternatives); an unset target is not checked."""

    time_to_first_token_ms: PositiveFloat | None = None
    """Longest acceptable time to first token (TTFT), in milliseconds: from a request's arrival
    to its first output token, for a prompt of spec.workload.promptTokens tokens. E.g. 800."""
    time_per_output_token_ms: PositiveFloat | None = None
    """Longest acceptable time between two output tokens of one sequence (TPOT, inter-token
    latency), in milliseconds, while spec.workload.concurrency sequences decode together.
    E.g. 60 (about 17 tokens per second per sequence)."""


class QualitySpec(ApiModel):
    """How much quality may be traded for memory, and which precisions are acceptable."""

    max_loss: float = Field(default=0, ge=0, le=1)
    """Relative quality loss allowed, 0..1 (variant + precision); 0 = serve as published."""
    precisions: Annotated[list[Precision], ListType("set"), unique, Field(min_length=1)] | None = (
        None
    )
    """Weight precisions allowed; unset = every precision within maxLoss."""
    kv_cache_dtypes: (
        Annotated[list[KvCacheDtype], ListType("set"), unique, Field(min_length=1)] | None
    ) = None
    """KV-cache element types allowed; unset = every type within maxLoss."""


class PlacementSpec(ApiModel):
    """Where the model may be placed; among what is allowed, the cheapest feasible wins."""

    tiers: Annotated[list[Tier], ListType("set"), unique, Field(min_length=1)] = Field(
        default_factory=lambda: ["gpu", "offload", "cpu"],
        json_schema_extra={"default": ["gpu", "offload", "cpu"]},
    )
    """Allowed tiers, in no order: gpu (all weights in GPU memory), offload (some in host RAM or
    on disk), cpu (served by CPUs)."""
    pools: Annotated[
        list[Annotated[str, Field(max_length=OBJECT_NAME_MAX, pattern=OBJECT_NAME)]],
        ListType("set"),
        unique,
    ] = Field(default_factory=list, max_length=256)
    """Allowed PlacementPools by name; empty = all."""
    offload_to_disk: bool = False
    """Data residency: may weights be staged on a node's local disk (NVMe) for offloading?"""


class EnvVar(ApiModel):
    """An environment variable for the serving container."""

    name: str = Field(min_length=1)
    """The variable's name."""
    value: str = ""
    """The variable's value."""


class RuntimeSpec(ApiModel):
    """The serving engine and its container."""

    engine: Engine = "vllm"
    """The serving engine: vllm, llamacpp, tgi or custom."""
    image: str | None = None
    """The container image; unset = the operator's default image for the engine."""
    port: int = Field(default=8000, ge=1, le=65535)
    """The port the engine serves on."""
    args: list[str] = Field(default_factory=list)
    """Extra arguments, after the ones the plan sets (precision, parallelism, context)."""
    env: Annotated[list[EnvVar], ListType("map", ("name",))] = Field(default_factory=list)
    """Extra environment variables for the serving container."""


# HPA's defaults, which spec.scaling follows: "scaleUp: stabilizationWindowSeconds: 0" and
# "scaleDown: stabilizationWindowSeconds: 300" (Kubernetes docs, "Horizontal Pod Autoscaling",
# section "Default Behavior", https://kubernetes.io/docs/tasks/run-application/
# horizontal-pod-autoscale/#default-behavior).
HPA_SCALE_UP_STABILIZATION_SECONDS = 0
HPA_SCALE_DOWN_STABILIZATION_SECONDS = 300


class ScalingSpec(ApiModel):
    """How replicas, and with them the tier, follow the demand. Unset: the replicas serve
    spec.workload.outputTokensPerSecond within spec.workload's replica bounds, as before."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "!has(self.maxReplicas) || !has(self.minReplicas)"
                    " || self.minReplicas <= self.maxReplicas",
                    "message": "minReplicas must not exceed maxReplicas",
                },
                {
                    "rule": "!has(self.minReplicas) || self.minReplicas > 0"
                    " || (has(self.coldStart) && self.coldStart == 'allowed')",
                    "message": "minReplicas 0 needs coldStart: allowed",
                },
            ]
        }
    )

    demand: Literal["Static", "Measured"] = "Static"
    """Static: spec.workload.outputTokensPerSecond. Measured: the generated tokens per second
    Prometheus measures on the pods (the static value stays the floor until there is history)."""
    min_replicas: NonNegativeInt = 1
    """Fewest replicas, whatever the demand; 0 lets an idle model go cold (needs coldStart:
    allowed)."""
    max_replicas: PositiveInt | None = None
    """Most replicas; when the demand needs more, they stay here, SLOMet is False and a Warning
    says how many the demand needs. Unset: as many as the demand needs."""
    target_utilization: float = Field(default=0.7, gt=0, le=1)
    """Share of a replica's estimated throughput the demand may fill (0.7 leaves 30 % headroom):
    replicas = ceil(demand ÷ (throughput per replica × targetUtilization))."""
    scale_up_stabilization_seconds: NonNegativeInt = HPA_SCALE_UP_STABILIZATION_SECONDS
    """A rise takes effect at the lowest demand seen over this long (HPA's default: 0)."""
    scale_down_stabilization_seconds: NonNegativeInt = HPA_SCALE_DOWN_STABILIZATION_SECONDS
    """A fall takes effect at the highest demand seen over this long (HPA's default: 300)."""
    idle_after_seconds: PositiveInt | None = None
    """No requests (no tokens generated, none running or waiting) for this long: replicas go to
    minReplicas, 0 = cold. Unset: never idle."""
    cold_start: Literal["allowed", "forbidden"] = "forbidden"
    """Whether the model may go to zero replicas, and so make its first request wait for a cold
    start (status.demand.coldStartSeconds says how long)."""
    wake_query: str | None = None
    """PromQL whose value above 0 wakes a cold model when KEDA is not installed, e.g. the
    gateway's request rate for the Service; `{namespace}` and `{name}` are replaced. Unset: the
    operator's --wake-query."""

    @model_validator(mode="after")
    def _consistent(self) -> ScalingSpec:
        if self.max_replicas is not None and self.min_replicas > self.max_replicas:
            raise ValueError("minReplicas must not exceed maxReplicas")
        if self.min_replicas == 0 and self.cold_start != "allowed":
            raise ValueError("minReplicas 0 needs coldStart: allowed")
        return self


def _defaulted(factory: type[ApiModel]) -> Any:
    """An optional section: absent means all its defaults (also applied by the API server)."""
    return Field(default_factory=factory, json_schema_extra={"default": {}})


class ModelDeploymentSpec(ApiModel):
    """What to serve and the constraints on how; memplace chooses the rest."""

    model: ModelSpec
    """The model to serve."""
    workload: WorkloadSpec = _defaulted(WorkloadSpec)
    """The demand to serve."""
    slo: SloSpec = _defaulted(SloSpec)
    """Latency targets per replica at spec.workload.concurrency (TTFT and TPOT, milliseconds);
    unset targets are not checked."""
    quality: QualitySpec = _defaulted(QualitySpec)
    """The quality budget."""
    placement: PlacementSpec = _defaulted(PlacementSpec)
    """Allowed tiers and pools."""
    runtime: RuntimeSpec = _defaulted(RuntimeSpec)
    """The serving engine and container."""
    scaling: ScalingSpec | None = None
    """How replicas and tier follow the demand; unset = the static demand of spec.workload."""
    priority: int = 0
    """When capacity is short, higher priority places first: the planner never leaves a
    deployment out to place any number of lower-priority ones, and moves a running one only to
    place something of higher priority or to save more than the consolidation threshold.
    Deployments of equal priority (default 0) are placed to place as many as possible, then
    at the least total cost."""
    adapters: Annotated[list[AdapterSpec], ListType("map", ("name",))] = Field(
        default_factory=list, max_length=256
    )
    """LoRA adapters served beside the model, in its pods (ModelAdapters add more)."""

    @model_validator(mode="after")
    def _adapter_names_unique(self) -> ModelDeploymentSpec:
        names = [a.name for a in self.adapters]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"spec.adapters: duplicate names: {', '.join(twice)}")
        return self


class PlacementStatus(ApiModel):
    """The chosen placement."""

    pool: str
    """The PlacementPool the replicas run in."""
    gpu_model: str | None = None
    """The pool's GPU model, e.g. `A100-SXM4-80GB`; unset on the cpu tier."""
    precision: Precision
    """The weight precision served."""
    kv_cache_dtype: KvCacheDtype | None = None
    """The KV-cache element type."""
    tier: Tier
    """Where the weights live."""
    variant: str | None = None
    """The variant served instead of the model; null = the model itself."""
    gpus_per_replica: NonNegativeInt
    """GPUs each replica uses (tensor parallelism); 0 on the cpu tier."""
    replicas: NonNegativeInt
    """Replicas needed for the demand, within minReplicas..maxReplicas."""
    nodes: list[str] | None = None
    """The nodes the plan packed the replicas onto, when it packed them."""
    offload_bytes_per_replica: NonNegativeInt | None = None
    """Weight bytes each replica keeps outside GPU memory (offload tier)."""
    gpu_memory_source: Literal["nvml", "gfd-label", "catalogue"] | None = None
    """Where the pool's GPU memory figure came from: the agent's NVML report, the node label
    `nvidia.com/gpu.memory` (GPU Feature Discovery), or the catalogue; unset on the cpu tier."""
    usable_gpu_memory_bytes: NonNegativeInt | None = None
    """GPU memory a replica may fill on each GPU: 0.9 × the pool's figure (vLLM's default
    `--gpu-memory-utilization`). Where the agent reports less free memory, the plan fits that
    instead (its rejections say "measured free"). Unset on the cpu tier."""

    def where(self) -> dict:
        """Where and how it runs: every field but the replica count and the nodes the plan
        packed onto, so that a pure scale keeps it and a move changes it."""
        essence = self.to_wire()
        for key in ("replicas", "nodes"):
            essence.pop(key, None)
        return essence


class CalibrationStatus(ApiModel):
    """Which PerformanceProfile describes this placement, and the factors applied from it."""

    profile: str
    """The PerformanceProfile's name (derived from the key: architecture, GPU, precision, KV
    dtype, engine, GPUs per replica, tier); it may not exist yet."""
    architecture: str
    """The model architecture's fingerprint, the profile's `spec.architecture`."""
    samples: NonNegativeInt = 0
    """Samples behind the factors applied (the fewest among them); 0 = none applied."""
    decode_factor: PositiveFloat | None = None
    """The factor applied to time per output token (and so to throughput); unset = none."""
    prefill_factor: PositiveFloat | None = None
    """The factor applied to time to first token; unset = none."""
    memory_factor: PositiveFloat | None = None
    """The factor applied to memory per GPU (weights stay as computed); unset = none."""
    message: str | None = None
    """For people, e.g. `calibrated from 12 samples` or `not calibrated: 3 of 5 samples`."""


class EstimateStatus(ApiModel):
    """The planner's estimates for the chosen placement (per replica unless named otherwise)."""

    parameters: NonNegativeInt | None = None
    """Total parameters of the model (or variant) served."""
    active_parameters: NonNegativeInt | None = None
    """Parameters read per token (MoE: the active experts)."""
    weights_bytes: NonNegativeInt | None = None
    """Weights at the chosen precision, including quantisation scales."""
    weights_source: WeightsSource | None = None
    """Where weightsBytes comes from, most trusted first: `checkpoint` (the published
    safetensors headers), `quantizationConfig` (the format config.json declares, bytes
    computed), `config` (computed from config.json), `parameters` (spec.model.parameters)."""
    sizing_notes: list[str] | None = None
    """How config.json was read where that is worth knowing, e.g. `model_type 'my_llama' sized
    from standard fields (no family rules)`, a vision tower loaded but not decoded, or
    multi-token-prediction layers not loaded; unset = nothing to say."""
    kv_cache_bytes: NonNegativeInt | None = None
    """KV cache for contextTokens × concurrency at the chosen KV-cache type."""
    state_bytes: NonNegativeInt | None = None
    """Constant-size state of linear-attention / state-space layers."""
    activation_bytes: NonNegativeInt | None = None
    """Activations and workspace."""
    adapter_bytes: NonNegativeInt | None = None
    """LoRA: what the engine reserves for adapters on the GPU (vLLM: its slots); unset = none."""
    adapter_host_bytes: NonNegativeInt | None = None
    """LoRA: adapters cached in host memory (vLLM's --max-cpu-loras); unset = none."""
    overhead_bytes: NonNegativeInt | None = None
    """Runtime overhead (CUDA context, allocator, graphs)."""
    total_bytes: NonNegativeInt | None = None
    """Sum of the above, per replica."""
    total_bytes_per_gpu: NonNegativeInt | None = None
    """Memory each GPU of a replica needs."""
    total_per_gpu: str | None = None
    """totalBytesPerGpu for people, e.g. `14.9Gi`; derived, any value given is replaced."""
    time_to_first_token_ms: NonNegativeFloat | None = None
    """Estimated time to first token for a typical prompt, in milliseconds."""
    time_per_output_token_ms: NonNegativeFloat | None = None
    """Estimated time between output tokens of one sequence, in milliseconds."""
    output_tokens_per_second_per_replica: NonNegativeFloat | None = None
    """Estimated output tokens per second one replica serves at the stated concurrency."""
    calibration: CalibrationStatus | None = None
    """The learned corrections applied to the figures above (unset on the CPU tier)."""

    @model_validator(mode="after")
    def _derive_readable(self) -> EstimateStatus:
        readable = (
            None if self.total_bytes_per_gpu is None else format_bytes(self.total_bytes_per_gpu)
        )
        object.__setattr__(self, "total_per_gpu", readable)
        return self


class MeasuredLatencyMs(ApiModel):
    """One latency the engine measured over the window, in milliseconds, across replicas.

    p50 and p95 come from the engine's histogram (`histogram_quantile` over the window); an
    engine that exports only totals (llama.cpp server) gives the mean alone."""

    p50: NonNegativeFloat | None = None
    """Median over the window's requests (tokens, for time per output token)."""
    p95: NonNegativeFloat | None = None
    """95th percentile: what the SLO is checked against when it is known."""
    mean: NonNegativeFloat | None = None
    """Mean over the window (sum ÷ count); set where no histogram is exported."""


class EstimateErrorStatus(ApiModel):
    """Measured ÷ estimated, per figure: 1.0 is a perfect estimate, 2.0 twice as slow/large."""

    time_to_first_token: NonNegativeFloat | None = None
    """Measured median (else mean) time to first token ÷ estimate.timeToFirstTokenMs."""
    time_per_output_token: NonNegativeFloat | None = None
    """Measured median (else mean) time per output token ÷ estimate.timePerOutputTokenMs."""
    gpu_memory_per_replica: NonNegativeFloat | None = None
    """gpuMemoryBytesPerReplica ÷ (estimate.totalBytesPerGpu × GPUs per replica)."""


class MeasuredStatus(ApiModel):
    """What the running replicas measured: the engine's own metrics read from Prometheus, and
    the GPU memory the node agents saw."""

    gpu_memory_bytes_per_replica: NonNegativeInt | None = None
    """GPU memory the replica's processes use, summed over its GPUs (largest replica)."""
    observed_at: Timestamp | None = None
    """When it was measured (RFC 3339)."""
    time_to_first_token_ms: MeasuredLatencyMs | None = None
    """Time to first token over the window."""
    time_per_output_token_ms: MeasuredLatencyMs | None = None
    """Time between output tokens of one sequence over the window."""
    output_tokens_per_second: NonNegativeFloat | None = None
    """Output tokens generated per second, all replicas together, over the window."""
    kv_cache_usage: NonNegativeFloat | None = None
    """Share of the KV cache in use (0–1), the fullest replica, averaged over the window."""
    requests_running: NonNegativeFloat | None = None
    """Requests being generated, all replicas together, averaged over the window."""
    requests_waiting: NonNegativeFloat | None = None
    """Requests queued, all replicas together, averaged over the window."""
    window: str | None = None
    """The window the engine figures cover, as a Prometheus duration (`5m`)."""
    estimate_error: EstimateErrorStatus | None = None
    """Measured ÷ estimated, per figure."""
    source: str | None = None
    """Where the engine figures came from, e.g. `prometheus vllm` (the agent gives memory)."""


class CostStatus(ApiModel):
    """What the placement costs, in the price catalogue's currency (USD)."""

    per_hour: NonNegativeFloat | None = None
    """Cost per hour of all replicas: the share of node prices they occupy."""
    per_million_output_tokens: NonNegativeFloat | None = None
    """Cost per million output tokens at the stated demand."""
    naive_per_hour: NonNegativeFloat | None = None
    """Cost per hour of the cheapest bf16, all-in-GPU placement, to show the saving."""
    separate_per_hour: NonNegativeFloat | None = None
    """LoRA: what one deployment per fine-tune would cost per hour (the base alone, plus a copy
    of the base per loaded adapter, each for its own demand), to show the saving."""
    last24h: NonNegativeFloat | None = None
    """Estimated cost of the last 24 hours: the replicas this operator saw running, each
    stretch at its placement's price per replica-hour (since the operator started, if later)."""


class DemandStatus(ApiModel):
    """The demand the replicas follow (spec.scaling), and why they are what they are."""

    source: Literal["static", "measured", "idle", "wake"]
    """Where tokensPerSecond came from: the spec (static, also the floor with no history), the
    measurement, no requests for idleAfterSeconds (idle), or the wake-up query (wake)."""
    tokens_per_second: NonNegativeFloat | None = None
    """The last measured output tokens per second, all replicas together."""
    window: str | None = None
    """The window the measurement covers, a Prometheus duration."""
    planned_tokens_per_second: NonNegativeFloat
    """The demand the placement is sized for: the stabilised demand ÷ targetUtilization."""
    replicas_wanted: NonNegativeInt | None = None
    """Replicas that demand needs on the running placement, before maxReplicas."""
    reason: str
    """Why, for people: e.g. `measured 420 tok/s over 5m (scale-down held 300s)`."""
    cold_start_seconds: NonNegativeFloat | None = None
    """Expected time to serve the first request from zero replicas: the weights ÷ the assumed
    load bandwidth (the assumption is in reason and the docs), loading only."""
    last_active_time: Timestamp | None = None
    """When requests were last seen (RFC 3339)."""


class Alternative(ApiModel):
    """A candidate placement that lost, and why."""

    pool: str | None = None
    """The PlacementPool considered."""
    gpu_model: str | None = None
    """The pool's GPU model."""
    precision: Precision | None = None
    """The weight precision considered."""
    kv_cache_dtype: KvCacheDtype | None = None
    """The KV-cache element type considered."""
    tier: Tier | None = None
    """The tier considered."""
    variant: str | None = None
    """The variant considered; null = the model itself."""
    gpus_per_replica: NonNegativeInt | None = None
    """GPUs per replica considered."""
    replicas: NonNegativeInt | None = None
    """Replicas it would have needed."""
    per_hour: NonNegativeFloat | None = None
    """What it would have cost per hour, when it was priced."""
    reason: str
    """Why it lost, with numbers, e.g. `TPOT 71 ms > SLO 60 ms`."""
    code: RejectionCode | None = None
    """Why it lost, as a stable code (the operator always sets it)."""


class MoveStatus(ApiModel):
    """A move in flight: the successor Deployment starts beside the serving one, the Service
    switches to it once it is Ready, then the serving one is deleted. Until then `placement`,
    `estimate` and `cost` in status stay those of the serving Deployment."""

    from_deployment: str
    """The Deployment that serves until the switch."""
    to_deployment: str
    """The successor Deployment, running `placement`."""
    placement: PlacementStatus
    """Where and how the successor runs: status.placement once the move completes."""
    estimate: EstimateStatus | None = None
    """The successor's estimates: status.estimate once the move completes."""
    cost: CostStatus | None = None
    """The successor's cost: status.cost once the move completes."""
    started_at: Timestamp
    """When the successor was created (RFC 3339); the move is abandoned past the move timeout."""
    trigger: str | None = None
    """What made the re-plan move it, e.g. `capacity changed`."""
    progress: str | None = None
    """The successor's readiness, e.g. `1/2 replicas ready`."""


class KopfStatus(ApiModel):
    """The operator framework's own bookkeeping (Kopf), written with the rest of the status so
    that one write records both (``memplace.operator.storage``); not meant for people."""

    last_handled_spec: str | None = None
    """The spec (and labels and annotations) last handled, as JSON: a later event whose spec
    differs is an update."""
    progress: dict[str, Any] | None = None
    """Per handler in progress, its retries and delays; empty once each succeeded."""
    dummy: str | None = None
    """A value Kopf changes to wake itself up after a delay."""


class ModelDeploymentStatus(ApiModel):
    """What memplace decided and observed; written only by the operator."""

    observed_generation: NonNegativeInt | None = None
    """The `metadata.generation` this status was computed from."""
    phase: Phase | None = None
    """Pending, Placed (plan applied), Ready (replicas serving), Unschedulable or Invalid."""
    placement: PlacementStatus | None = None
    """The chosen placement."""
    estimate: EstimateStatus | None = None
    """Memory and latency estimates for the chosen placement."""
    measured: MeasuredStatus | None = None
    """What the running replicas measured (engine metrics, GPU memory) once they run."""
    cost: CostStatus | None = None
    """What the chosen placement costs."""
    demand: DemandStatus | None = None
    """The demand the replicas follow, when spec.scaling is set."""
    tier: Temperature | None = None
    """hot (GPU-resident), warm (offload or CPU tier) or cold (zero replicas)."""
    alternatives: list[Alternative] | None = None
    """The next few candidates and why each lost."""
    adapters: list[AdapterStatus] | None = None
    """Each LoRA adapter (spec.adapters and ModelAdapters): Loaded, Rejected or Pending."""
    message: str | None = None
    """A one-line summary for people, e.g. `int4 on a100-80: 2 × 1 GPU, $7.40/h`."""
    move: MoveStatus | None = None
    """The move in flight to a new placement, if any (at most one at a time)."""
    last_move_time: Timestamp | None = None
    """When the last move ended, completed or abandoned (RFC 3339); the next one waits
    `--min-move-interval` from here. The first placement is not a move."""
    conditions: Conditions
    """Valid, Placed, Ready and SLOMet."""
    kopf: KopfStatus | None = None
    """The operator framework's bookkeeping: the last handled spec and handler progress."""


MODEL_DEPLOYMENT_NAME = NameRule(
    pattern=r"^[a-z]([-a-z0-9]*[a-z0-9])?$",
    max_length=63,
    message="must be a DNS-1035 label (lowercase letters, digits and '-', starting with a "
    "letter, at most 63 characters): it names the model's Service and labels its pods",
)


class ModelDeployment(ApiModel):
    """A model to serve: memplace chooses precision, tier, pool and replicas, cheapest first."""

    api_version: Literal["memplace.io/v1alpha1"] = API_VERSION
    """`memplace.io/v1alpha1`."""
    kind: Literal["ModelDeployment"] = "ModelDeployment"
    """`ModelDeployment`."""
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    """Standard object metadata."""
    spec: ModelDeploymentSpec
    """What to serve, and the constraints on how."""
    status: ModelDeploymentStatus | None = None
    """What memplace decided and observed."""

    @model_validator(mode="after")
    def _name_fits_a_service(self) -> ModelDeployment:
        MODEL_DEPLOYMENT_NAME.check(self.metadata.name)
        return self

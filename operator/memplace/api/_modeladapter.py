"""LoRA adapters: fine-tunes served beside their base model, in the base's one Deployment.

An adapter is listed either in its base's ``spec.adapters`` (the platform team's list) or as a
namespaced ``ModelAdapter`` naming its base in ``spec.baseDeployment`` (so a team adds its
fine-tune without editing the platform team's ModelDeployment). The planner sizes the base
with every adapter's memory and the engine's LoRA slots (``memplace.planning.adapters``);
``status.adapters`` of the base, and the ModelAdapter's own status, say whether each adapter
is Loaded, or Rejected and why. A ModelAdapter whose base is gone is Orphaned, never deleted.

Model tree::

    ModelAdapter
    ├── spec: ModelAdapterSpec         (AdapterFields + baseDeployment)
    └── status: ModelAdapterStatus ── conditions: [Condition]

    ModelDeployment.spec.adapters: [AdapterSpec]     (AdapterFields + name)
    ModelDeployment.status.adapters: [AdapterStatus]
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import (
    ConfigDict,
    Field,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveInt,
    model_validator,
)

from ._base import ApiModel
from ._resource import API_VERSION, GROUP, VERSION, NameRule, ObjectMeta, ResourceInfo
from ._status import Conditions, ListType, format_bytes, unique

__all__ = [
    "ADAPTER_STATES",
    "MODEL_ADAPTER",
    "AdapterFields",
    "AdapterSpec",
    "AdapterState",
    "AdapterStatus",
    "LoraTarget",
    "ModelAdapter",
    "ModelAdapterPhase",
    "ModelAdapterSpec",
    "ModelAdapterStatus",
]

MODEL_ADAPTER = ResourceInfo(
    group=GROUP,
    version=VERSION,
    plural="modeladapters",
    kind="ModelAdapter",
    namespaced=True,
    short_names=("madapter",),
)

LoraTarget = Literal[
    "q_proj",
    "k_proj",
    "v_proj",
    "o_proj",
    "gate_proj",
    "up_proj",
    "down_proj",
    "qkv_proj",
    "gate_up_proj",
    "all-linear",
]
"""Modules an adapter adapts, as PEFT's ``target_modules`` names them (``qkv_proj`` and
``gate_up_proj`` are vLLM's packed names; ``all-linear`` is PEFT's shorthand). On a
mixture-of-experts base, gate/up/down are the routed experts' modules."""

AdapterState = Literal["Loaded", "Rejected", "Pending"]
"""An adapter on its base: Loaded (in the plan and the engine's arguments), Rejected (with a
reason; the base is planned without it) or Pending (the base has no placement yet)."""
ADAPTER_STATES = ("Loaded", "Rejected", "Pending")

ModelAdapterPhase = Literal["Pending", "Loaded", "Rejected", "Orphaned"]
"""A ModelAdapter's phase: its state on its base, or Orphaned when the base does not exist."""

_NAME = r"^[a-z0-9]([-a-z0-9._]*[a-z0-9])?$"


_ALL_LINEAR_ALONE = {
    "rule": "!has(self.targetModules) || !('all-linear' in self.targetModules)"
    " || size(self.targetModules) == 1",
    "message": "targetModules: all-linear stands for every linear module: list it alone",
}


class AdapterFields(ApiModel):
    """What sizes and serves one LoRA adapter."""

    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": [_ALL_LINEAR_ALONE]})

    source: str = Field(min_length=1)
    """Where the engine reads the adapter: `hf://org/name` (vLLM, TGI) or a path in the pod
    (llama.cpp needs a local GGUF file)."""
    rank: PositiveInt = Field(le=1024)
    """The adapter's LoRA rank `r` (its adapter_config.json `r`)."""
    target_modules: (
        Annotated[list[LoraTarget], ListType("set"), unique, Field(min_length=1, max_length=10)]
        | None
    ) = None
    """Modules the adapter adapts (adapter_config.json `target_modules`); unset = sized as if
    it adapted every linear module (an upper bound). At most 10, the number of names: without
    a bound the API server's CEL cost estimate for the all-linear rule exceeds its budget and
    it refuses the CRD."""
    quality_loss: float | None = Field(default=None, ge=0, le=1)
    """For people: the adapter's own quality loss against its evaluation; not a constraint."""
    output_tokens_per_second: NonNegativeFloat | None = None
    """This adapter's demand, in output tokens per second: added to the base's demand."""

    @model_validator(mode="after")
    def _all_linear_alone(self) -> AdapterFields:
        targets = self.target_modules or []
        if "all-linear" in targets and len(targets) > 1:
            raise ValueError(_ALL_LINEAR_ALONE["message"])
        return self


class AdapterSpec(AdapterFields):
    """An adapter listed in its base's spec."""

    name: str = Field(min_length=1, max_length=63, pattern=_NAME)
    """The name clients ask for (the OpenAI `model` field; vLLM's `--lora-modules name=…`)."""


class ModelAdapterSpec(AdapterFields):
    """A fine-tune to serve beside a ModelDeployment of the same namespace; the adapter's name
    is the ModelAdapter's name."""

    base_deployment: str = Field(
        min_length=1, max_length=63, pattern=r"^[a-z]([-a-z0-9]*[a-z0-9])?$"
    )
    """The ModelDeployment (same namespace) whose pods serve this adapter."""


class AdapterStatus(ApiModel):
    """One adapter of a base, as the plan placed it."""

    name: str
    """The adapter's name."""
    origin: Literal["spec", "ModelAdapter"] = "spec"
    """Where it was listed: the base's spec.adapters, or a ModelAdapter."""
    rank: NonNegativeInt | None = None
    """Its rank."""
    memory_bytes: NonNegativeInt | None = None
    """Its own weights, in the engine's LoRA dtype."""
    memory: str | None = None
    """memoryBytes for people, e.g. `26Mi`; derived, any value given is replaced."""
    state: AdapterState
    """Loaded, Rejected or Pending."""
    reason: str | None = None
    """Why it was rejected: a stable code (`DoesNotFit`, `EngineUnsupported`, `NameTaken`)."""
    message: str | None = None
    """Why, for people, with numbers."""

    @model_validator(mode="after")
    def _derive_readable(self) -> AdapterStatus:
        readable = None if self.memory_bytes is None else format_bytes(self.memory_bytes)
        object.__setattr__(self, "memory", readable)
        return self


class ModelAdapterStatus(ApiModel):
    """What memplace decided for the adapter; written only by the operator."""

    observed_generation: NonNegativeInt | None = None
    """The `metadata.generation` this status was computed from."""
    phase: ModelAdapterPhase | None = None
    """Pending, Loaded, Rejected or Orphaned (the base does not exist)."""
    base_deployment: str | None = None
    """The base it was planned on."""
    memory_bytes: NonNegativeInt | None = None
    """Its own weights, in the engine's LoRA dtype."""
    memory: str | None = None
    """memoryBytes for people; derived."""
    reason: str | None = None
    """A stable code for the phase: Loaded, DoesNotFit, EngineUnsupported, NameTaken,
    BaseNotFound."""
    message: str | None = None
    """For people, with numbers."""
    conditions: Conditions
    """Loaded."""

    @model_validator(mode="after")
    def _derive_readable(self) -> ModelAdapterStatus:
        readable = None if self.memory_bytes is None else format_bytes(self.memory_bytes)
        object.__setattr__(self, "memory", readable)
        return self


MODEL_ADAPTER_NAME = NameRule(
    # a DNS subdomain, as the API server requires of every object name (so no '_', which an
    # inline spec.adapters[].name may have), within 63 characters
    pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$",
    max_length=63,
    message="must be lowercase letters, digits, '-' or '.', at most 63 characters: "
    "clients ask for the adapter by this name",
)


class ModelAdapter(ApiModel):
    """A LoRA fine-tune served beside its base ModelDeployment, sized and placed with it."""

    api_version: Literal["memplace.io/v1alpha1"] = API_VERSION
    """`memplace.io/v1alpha1`."""
    kind: Literal["ModelAdapter"] = "ModelAdapter"
    """`ModelAdapter`."""
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    """Standard object metadata."""
    spec: ModelAdapterSpec
    """The adapter and its base."""
    status: ModelAdapterStatus | None = None
    """What memplace decided."""

    @model_validator(mode="after")
    def _name_is_a_model_name(self) -> ModelAdapter:
        MODEL_ADAPTER_NAME.check(self.metadata.name)
        return self

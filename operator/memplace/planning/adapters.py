"""LoRA adapters on one base model: what each weighs, and what the engine reserves for them.

A LoRA adapter adds two low-rank matrices beside each target module of each layer: A (rank ×
d_in) and B (d_out × rank), so it holds ``rank × (d_in + d_out)`` values per module per layer
(Hu et al. 2021, "LoRA", §4.1), in the engine's LoRA dtype.

Worked example, rank 16 on Llama-3.1-8B's q, k, v, o (hidden 4096, 32 query and 8 KV heads of
128, 32 layers):

* q and o: 16 × (4096 + 4096) = 131,072 each; k and v: 16 × (4096 + 1024) = 81,920 each;
* 425,984 per layer × 32 layers = 13,631,488 parameters ≈ 13.6 M; × 2 bytes (bf16) = 26 MiB.

What the engine holds on the GPU is not the sum of the adapters:

* **vLLM** pre-allocates, at start-up, ``--max-loras`` slots of ``--max-lora-rank`` in every
  module it can wrap, whichever modules the adapters target: ``LoRAModelManager`` wraps each
  module of the model's ``supported_lora_modules`` (vllm/lora/models.py,
  ``_create_lora_modules``), and each wrapped linear layer allocates ``lora_a_stacked`` of
  (max_loras, 1, max_lora_rank, input_size) and ``lora_b_stacked`` of (max_loras, 1,
  output_size, max_lora_rank) in ``lora_dtype`` (vllm/lora/layers/base_linear.py,
  ``BaseLinearLayerWithLoRA.create_lora_weights``). With tensor parallelism a column-parallel
  layer (q/k/v, gate/up) shards B and keeps A whole, a row-parallel one (o, down) shards A and
  keeps B whole (vllm/lora/layers/column_parallel_linear.py, row_parallel_linear.py; the
  default ``fully_sharded_loras=False``). The adapters themselves live in a host-memory LRU
  cache of ``--max-cpu-loras`` (vllm/lora/worker_manager.py, ``LRUCacheWorkerLoRAManager``),
  and are copied into a GPU slot when a request needs them. Defaults (vllm/config/lora.py,
  v0.11.0 ``LoRAConfig``): max_lora_rank 16, max_loras 1, max_cpu_loras = max_loras,
  lora_dtype "auto" = the model's activation dtype (2 bytes); max_lora_rank must be one of
  ``VLLM_MAX_LORA_RANKS``.
* **llama.cpp** loads every ``--lora`` file at start-up into the device that holds the layer
  it adapts (tools/server/README.md: "--lora FNAME: path to LoRA adapter (can be repeated)"):
  the sum of the adapters, no slots.
* **TGI** loads every adapter of ``LORA_ADAPTERS`` at start-up (TGI docs, "Multi-LoRA";
  ``server/text_generation_server/adapters``): the sum of the adapters, sharded like the model.

Speed: ``decode_slowdown``. A decode step is bound by the bytes it reads (``latency``); every
active adapter adds its A and B matrices to them (Punica's SGMV kernel reads each adapter in a
batch once per step: Chen et al. 2023, "Punica: Multi-Tenant LoRA Serving", §4). So each active
adapter slows a step by its bytes over the base's weight bytes (``LORA_PENALTY_PER_ACTIVE_ADAPTER``
names that rule). Cross-check: Punica reports "only adding 2 ms latency per token" serving many
rank-16 adapters on a 7 B model (abstract); 32 active rank-16 adapters on all of Llama-2-7B's
linear modules add 32 × 40 MB ÷ 13.5 GB ≈ 9 % to a ~20 ms A100 step ≈ 1.9 ms.

Pure: no I/O. The base's module shapes come from its config.json (``shapes_from_config``) or,
without one, from the planner's ``Architecture`` (``shapes_from_architecture``: attention
taken as square, an upper bound for grouped-query attention).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "ALL_TARGETS",
    "DEFAULT_MAX_LORAS_CAP",
    "LORA_BYTES_PER_VALUE",
    "LORA_ENGINES",
    "LORA_PENALTY_PER_ACTIVE_ADAPTER",
    "VLLM_MAX_LORA_RANKS",
    "Adapter",
    "AdapterRefusal",
    "LoraSlots",
    "ModuleShape",
    "adapter_bytes",
    "adapter_parameters",
    "adapter_refusal",
    "decode_slowdown",
    "shapes_from_architecture",
    "shapes_from_config",
    "targets_from_adapter_config",
    "vllm_max_lora_rank",
]

ATTENTION_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj")
MLP_TARGETS = ("gate_proj", "up_proj", "down_proj")
ALL_TARGETS: tuple[str, ...] = ATTENTION_TARGETS + MLP_TARGETS
"""The module names PEFT adapters target on Llama-style models (PEFT's ``target_modules``);
unset targets size the adapter as if it targeted all of them, so a plan never under-reserves."""

TARGET_ALIASES = {
    "qkv_proj": ("q_proj", "k_proj", "v_proj"),
    "gate_up_proj": ("gate_proj", "up_proj"),
    "w1": ("gate_proj",),
    "w3": ("up_proj",),
    "w2": ("down_proj",),
    "all-linear": ALL_TARGETS,
}
"""Packed and Mixtral-style names, and PEFT's ``all-linear`` shorthand, as the seven above."""

VLLM_MAX_LORA_RANKS = (8, 16, 32, 64, 128, 256, 320, 512)
"""The values vLLM accepts for ``--max-lora-rank`` (vllm/config/lora.py, v0.11.0
``LoRAConfig.__post_init__``: ``possible_max_ranks``); an adapter's rank rounds up to one."""

LORA_BYTES_PER_VALUE = 2
"""vLLM's ``lora_dtype`` "auto" is the model's activation dtype, bf16 or fp16, also for a
quantised base (vllm/config/lora.py, v0.11.0); TGI and llama.cpp adapters are f16 too."""

DEFAULT_MAX_LORAS_CAP = 8
"""``spec.workload.maxConcurrentAdapters`` unset: every adapter resident, at most 8 (issue 12;
8 is also the example vLLM's LoRA docs use for ``--max-loras``)."""

LORA_ENGINES = frozenset({"vllm", "llamacpp", "tgi"})
"""Engines that serve LoRA adapters beside their base; ``custom`` adapters are rejected."""

LORA_PENALTY_PER_ACTIVE_ADAPTER = "adapter bytes / base weight bytes"
"""The per-active-adapter decode penalty is not a fitted number: decode is bandwidth-bound, and
each active adapter adds its own bytes to what a step reads (see the module docstring, Punica
§4, and ``decode_slowdown``)."""


@dataclass(frozen=True)
class ModuleShape:
    """One kind of linear module of the base: its widths and how many the model has."""

    name: str
    d_in: int
    d_out: int
    count: int
    """Modules of this kind in the model: layers, × experts for routed experts."""
    row_parallel: bool = False
    """o_proj and down_proj: tensor parallelism splits their input, not their output."""
    expert: bool = False


@dataclass(frozen=True)
class Adapter:
    """One adapter to load beside the base, as the planner needs it."""

    name: str
    rank: int
    targets: tuple[str, ...] = ALL_TARGETS
    output_tokens_per_second: float = 0.0
    quality_loss: float = 0.0
    source: str = ""


@dataclass(frozen=True)
class AdapterRefusal:
    """Why an adapter cannot be loaded at all, whatever the placement."""

    adapter: str
    reason: str


def _expand(targets: Iterable[str]) -> tuple[str, ...]:
    out: list[str] = []
    for t in targets:
        for name in TARGET_ALIASES.get(t, (t,)):
            if name not in out:
                out.append(name)
    return tuple(out)


def targets_from_adapter_config(config: Mapping[str, Any]) -> tuple[str, ...]:
    """The target modules a PEFT ``adapter_config.json`` names, as ``ALL_TARGETS`` names.

    ``target_modules`` may be a list, a single name, or a regular expression string (PEFT
    allows one): a name we do not know, or a pattern, sizes as every target (an upper bound)."""
    raw = config.get("target_modules")
    if isinstance(raw, str):
        raw = [raw] if raw in ALL_TARGETS or raw in TARGET_ALIASES else list(ALL_TARGETS)
    if not raw:
        return ALL_TARGETS
    names = _expand(str(t) for t in raw)
    return tuple(n for n in names if n in ALL_TARGETS) or ALL_TARGETS


def _get(config: Mapping[str, Any], *keys: str, default: Any = None) -> Any:
    layers = [config.get("text_config") or {}, config]
    for key in keys:
        for layer in layers:
            if isinstance(layer, Mapping) and layer.get(key) is not None:
                return layer[key]
    return default


def shapes_from_config(config: Mapping[str, Any]) -> tuple[ModuleShape, ...]:
    """The base's linear modules from its config.json (Llama, Mistral, Qwen, Mixtral, Qwen-MoE
    and DeepSeek-style names). MoE layers' gate/up/down are the routed experts (PEFT matches
    ``experts.N.gate_proj`` by its suffix), each expert a module."""
    hidden = int(_get(config, "hidden_size", "d_model", "n_embd"))
    layers = int(_get(config, "num_hidden_layers", "n_layer", "num_layers"))
    heads = int(_get(config, "num_attention_heads", "n_head"))
    kv_heads = int(_get(config, "num_key_value_heads", default=heads) or heads)
    head_dim = int(_get(config, "head_dim", default=0) or hidden // heads)
    intermediate = int(_get(config, "intermediate_size", "ffn_dim", default=4 * hidden))
    experts = int(
        _get(config, "num_experts", "num_local_experts", "n_routed_experts", default=0) or 0
    )
    dense_first = int(_get(config, "first_k_dense_replace", default=0) or 0) if experts else 0
    moe_layers = layers - dense_first if experts else 0
    moe_width = int(_get(config, "moe_intermediate_size", default=intermediate) or intermediate)
    shapes = [
        ModuleShape("q_proj", hidden, heads * head_dim, layers),
        ModuleShape("k_proj", hidden, kv_heads * head_dim, layers),
        ModuleShape("v_proj", hidden, kv_heads * head_dim, layers),
        ModuleShape("o_proj", heads * head_dim, hidden, layers, row_parallel=True),
    ]
    dense = layers - moe_layers
    if dense:
        shapes += [
            ModuleShape("gate_proj", hidden, intermediate, dense),
            ModuleShape("up_proj", hidden, intermediate, dense),
            ModuleShape("down_proj", intermediate, hidden, dense, row_parallel=True),
        ]
    if moe_layers:
        n = moe_layers * experts
        shapes += [
            ModuleShape("gate_proj", hidden, moe_width, n, expert=True),
            ModuleShape("up_proj", hidden, moe_width, n, expert=True),
            ModuleShape("down_proj", moe_width, hidden, n, row_parallel=True, expert=True),
        ]
    return tuple(shapes)


def shapes_from_architecture(arch: Any) -> tuple[ModuleShape, ...]:
    """Shapes from the planner's ``Architecture`` when no config.json is at hand: q/k/v/o taken
    as hidden × hidden (an upper bound: grouped-query k and v are narrower), the MLP as its
    widest intermediate width."""
    h, layers = arch.hidden_size, arch.layers
    width = arch.max_intermediate_size or 4 * h
    return (
        *(ModuleShape(n, h, h, layers, row_parallel=n == "o_proj") for n in ATTENTION_TARGETS),
        ModuleShape("gate_proj", h, width, layers),
        ModuleShape("up_proj", h, width, layers),
        ModuleShape("down_proj", width, h, layers, row_parallel=True),
    )


def adapter_parameters(shapes: Sequence[ModuleShape], rank: int, targets: Iterable[str]) -> int:
    """rank × (d_in + d_out) per targeted module, over every such module of the model."""
    wanted = set(_expand(targets))
    return sum(rank * (s.d_in + s.d_out) * s.count for s in shapes if s.name in wanted)


def adapter_bytes(shapes: Sequence[ModuleShape], adapter: Adapter) -> int:
    """One adapter's weights, in the engine's LoRA dtype (``LORA_BYTES_PER_VALUE``)."""
    return adapter_parameters(shapes, adapter.rank, adapter.targets) * LORA_BYTES_PER_VALUE


def vllm_max_lora_rank(rank: int) -> int | None:
    """The smallest ``--max-lora-rank`` vLLM accepts that holds ``rank``; None above 512."""
    return next((r for r in VLLM_MAX_LORA_RANKS if r >= rank), None)


def adapter_refusal(adapter: Adapter, engine: str) -> AdapterRefusal | None:
    """Why ``engine`` cannot load ``adapter`` at all (``EngineUnsupported``), or None."""
    if engine not in LORA_ENGINES:
        return AdapterRefusal(
            adapter.name, f"the {engine} engine serves no LoRA adapters (vllm, llamacpp, tgi do)"
        )
    if engine == "vllm" and vllm_max_lora_rank(adapter.rank) is None:
        top = VLLM_MAX_LORA_RANKS[-1]
        return AdapterRefusal(adapter.name, f"rank {adapter.rank} > {top}, vLLM's largest")
    if engine == "llamacpp" and adapter.source.startswith(("hf://", "http://", "https://")):
        return AdapterRefusal(
            adapter.name,
            "llama.cpp's --lora reads a local GGUF file: give a path the pod can read",
        )
    return None


@dataclass(frozen=True)
class LoraSlots:
    """The adapters of one base and what the engine reserves for them (hashable: it is part of
    the planner's ``Requirements``)."""

    engine: str
    shapes: tuple[ModuleShape, ...]
    adapters: tuple[Adapter, ...]
    max_loras: int
    """Adapters resident on the GPU at once (vLLM's ``--max-loras``)."""

    @classmethod
    def plan(
        cls,
        engine: str,
        shapes: Sequence[ModuleShape],
        adapters: Sequence[Adapter],
        max_concurrent: int | None = None,
    ) -> LoraSlots:
        n = len(adapters)
        slots = max_concurrent if max_concurrent is not None else min(n, DEFAULT_MAX_LORAS_CAP)
        return cls(engine, tuple(shapes), tuple(adapters), max(1, slots))

    @property
    def max_rank(self) -> int:
        """``--max-lora-rank``: the largest adapter rank, rounded up to what vLLM accepts."""
        top = max((a.rank for a in self.adapters), default=1)
        if self.engine != "vllm":
            return top
        return vllm_max_lora_rank(top) or top

    @property
    def cpu_loras(self) -> int:
        """``--max-cpu-loras``: every adapter cached in host memory, at least ``max_loras``."""
        return max(len(self.adapters), self.max_loras)

    @property
    def targets(self) -> frozenset[str]:
        return frozenset(t for a in self.adapters for t in _expand(a.targets))

    def bytes_of(self, adapter: Adapter) -> int:
        return adapter_bytes(self.shapes, adapter)

    @property
    def adapters_bytes(self) -> int:
        """Every adapter's own weights, summed."""
        return sum(self.bytes_of(a) for a in self.adapters)

    def gpu_bytes_per_gpu(self, gpus: int) -> int:
        """What each GPU of a replica holds for LoRA (see the module docstring per engine)."""
        if not self.adapters:
            return 0
        tp = max(1, gpus)
        if self.engine != "vllm":
            return math.ceil(self.adapters_bytes / tp)
        slots, rank = self.max_loras, self.max_rank
        targets_experts = any(t in MLP_TARGETS for t in self.targets)
        values = 0
        for s in self.shapes:
            if s.expert and not targets_experts:
                continue  # expert slots only where an adapter adapts the experts
            a_in = s.d_in / tp if s.row_parallel else s.d_in
            b_out = s.d_out if s.row_parallel else s.d_out / tp
            values += slots * rank * (a_in + b_out) * s.count
        return math.ceil(values * LORA_BYTES_PER_VALUE)

    @property
    def host_bytes(self) -> int:
        """vLLM's host-memory cache: the ``cpu_loras`` largest adapters; 0 elsewhere."""
        if self.engine != "vllm":
            return 0
        sizes = sorted((self.bytes_of(a) for a in self.adapters), reverse=True)
        return sum(sizes[: self.cpu_loras])

    @property
    def demand_tokens_per_second(self) -> float:
        return sum(a.output_tokens_per_second for a in self.adapters)

    def decode_factor(self, base_weight_bytes: int) -> float:
        """``decode_slowdown`` for this base with every slot active."""
        active = min(self.max_loras, len(self.adapters))
        if not active:
            return 1.0
        mean = self.adapters_bytes / len(self.adapters)
        return decode_slowdown(active, mean, base_weight_bytes)


def decode_slowdown(active: int, adapter_bytes_each: float, base_weight_bytes: int) -> float:
    """Time per output token × this with ``active`` adapters in a batch: each adds its bytes to
    what a bandwidth-bound step reads (``LORA_PENALTY_PER_ACTIVE_ADAPTER``)."""
    if active <= 0 or base_weight_bytes <= 0:
        return 1.0
    return 1.0 + active * adapter_bytes_each / base_weight_bytes

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

  The vocabulary too, on the architectures whose model class names ``embed_tokens`` and
  ``lm_head`` in ``embedding_modules`` (``VLLM_VOCAB_LORA_ARCHITECTURES``):
  ``get_supported_lora_modules`` (vllm/lora/utils.py, v0.11.0) adds those names, so the
  manager wraps both whatever the adapters target. Per slot, whole on every GPU (neither
  wrapper shards with tensor parallelism), with E = ``lora_extra_vocab_size`` = 256 and the
  CUDA padding P = 256 (``VLLM_EXTRA_VOCAB``, ``VLLM_LORA_VOCAB_PADDING``):

  - ``VocabParallelEmbeddingWithLoRA`` (vllm/lora/layers/vocal_parallel_embedding.py, v0.11.0,
    ``create_lora_weights``): ``lora_a_stacked`` (max_loras, vocab + E, rank) and
    ``lora_b_stacked`` (max_loras, 1, hidden, rank) in lora_dtype, ``embeddings_tensors``
    (max_loras, E, hidden) in the embedding's dtype;
  - ``LogitsProcessorWithLoRA`` (vllm/lora/layers/logits_processor.py, v0.11.0):
    ``lora_a_stacked`` (max_loras, 1, rank, hidden), ``lora_b_stacked`` (max_loras, 1,
    ceil((vocab + E) / P) × P, rank) in lora_dtype, ``embeddings_tensors`` (max_loras, E,
    hidden) in lm_head's dtype;
  - and the base's own vocabulary grows: ``LlamaModel`` builds ``embed_tokens`` with
    vocab + E × max_loras rows and ``LlamaForCausalLM`` its ``lm_head`` with vocab + E rows
    padded to P instead of 64 (vllm/model_executor/models/llama.py, v0.11.0; Mixtral, Granite
    and most others of the set do the same), both split by tensor parallelism.

  Mixture-of-experts: v0.11.0 has no LoRA for fused experts. ``FusedMoE`` is not a
  ``LinearBase``, so no expert gets a slot, and ``is_moe_model`` (vllm/lora/models.py,
  v0.11.0) only warns that "vLLM currently does not support fused MoE LoRA inference"; there
  is no ``FusedMoEWithLoRA`` in v0.11.0's vllm/lora/layers/. An adapter that names the MLP of
  a base whose MLP is its routed experts is therefore refused (``adapter_refusal``).
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
    "VLLM_EXTRA_VOCAB",
    "VLLM_LORA_VOCAB_LIMIT",
    "VLLM_LORA_VOCAB_PADDING",
    "VLLM_MAX_LORA_RANKS",
    "VLLM_VOCAB_LORA_ARCHITECTURES",
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

VLLM_EXTRA_VOCAB = 256
"""``lora_extra_vocab_size``'s default (vllm/config/lora.py, v0.11.0 ``LoRAConfig``; memplace
never sets it): the rows each slot may add to the vocabulary."""

VLLM_LORA_VOCAB_PADDING = 256
"""``get_lora_vocab_padding_size`` on CUDA (vllm/platforms/interface.py, v0.11.0): lm_head and
the logits' LoRA B are padded to a multiple of it; 64 without LoRA
(vllm/model_executor/layers/vocab_parallel_embedding.py, v0.11.0,
``DEFAULT_VOCAB_PADDING_SIZE``)."""

VOCAB_PADDING = 64
"""``DEFAULT_VOCAB_PADDING_SIZE`` (same file): embed_tokens' padding, and lm_head's without
LoRA."""

VLLM_LORA_VOCAB_LIMIT = 257024
"""``LogitsProcessorWithLoRA.create_lora_weights`` (vllm/lora/layers/logits_processor.py,
v0.11.0) raises when vocab + ``VLLM_EXTRA_VOCAB`` exceeds it."""

VLLM_VOCAB_LORA_ARCHITECTURES = frozenset(
    {
        "ApertusForCausalLM",
        "AquilaForCausalLM",
        "AquilaModel",
        "BambaForCausalLM",
        "CwmForCausalLM",
        "DeciLMForCausalLM",
        "Ernie4_5ForCausalLM",
        "Exaone4ForCausalLM",
        "Fairseq2LlamaForCausalLM",
        "FalconH1ForCausalLM",
        "GlmForCausalLM",
        "GraniteForCausalLM",
        "GraniteMoeForCausalLM",
        "GraniteMoeHybridForCausalLM",
        "GraniteMoeSharedForCausalLM",
        "GritLM",
        "InternLM3ForCausalLM",
        "InternLMForCausalLM",
        "JambaForCausalLM",
        "LLaMAForCausalLM",
        "Lfm2ForCausalLM",
        "Llama4ForCausalLM",
        "LlamaForCausalLM",
        "MiniCPM3ForCausalLM",
        "MiniCPMForCausalLM",
        "MistralForCausalLM",
        "MixtralForCausalLM",
        "MotifForCausalLM",
        "NemotronForCausalLM",
        "NemotronHForCausalLM",
        "Phi3ForCausalLM",
        "PhiMoEForCausalLM",
        "SolarForCausalLM",
        "TeleChat2ForCausalLM",
        "TeleFLMForCausalLM",
        "XverseForCausalLM",
    }
)
"""config.json ``architectures`` whose vLLM v0.11.0 model class (vllm/model_executor/models/
registry.py ``_TEXT_GENERATION_MODELS``, then the class and its bases) has ``embedding_modules``
naming both ``embed_tokens`` and ``lm_head``: vLLM wraps their vocabulary for LoRA (module
docstring). Qwen2/Qwen3, Gemma, DeepSeek, OLMo and the rest have none: no vocabulary slots.
Llama4, MiniCPM3, Motif and TeleChat2 build their own model and may not grow the vocabulary;
for them the added rows are an upper bound."""

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
    vocab: bool = False
    """``embed_tokens`` (d_in = vocabulary, d_out = hidden) or ``lm_head`` (d_in = hidden,
    d_out = vocabulary): vLLM wraps them on ``VLLM_VOCAB_LORA_ARCHITECTURES``; no adapter
    targets them here (``ALL_TARGETS``)."""
    tied: bool = False
    """An lm_head that shares embed_tokens' weight: it adds no rows of its own."""


@dataclass(frozen=True)
class Adapter:
    """One adapter to load beside the base, as the planner needs it."""

    name: str
    rank: int
    targets: tuple[str, ...] = ALL_TARGETS
    output_tokens_per_second: float = 0.0
    quality_loss: float = 0.0
    source: str = ""
    targets_given: bool = True
    """False when the adapter named no targets: it is sized as every module (an upper bound),
    but not refused for experts it may not adapt."""


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
    ``experts.N.gate_proj`` by its suffix), each expert a module. Its vocabulary
    (``_vocab_shapes``) where its ``architectures`` is one vLLM wraps."""
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
    architectures = config.get("architectures") or _get(config, "architectures", default=())
    if VLLM_VOCAB_LORA_ARCHITECTURES.intersection(architectures or ()):
        vocab = int(_get(config, "vocab_size", "padded_vocab_size"))
        tied = bool(_get(config, "tie_word_embeddings", default=False))
        shapes += _vocab_shapes(vocab, hidden, tied)
    return tuple(shapes)


def _vocab_shapes(vocab: int, hidden: int, tied: bool) -> list[ModuleShape]:
    return [
        ModuleShape("embed_tokens", vocab, hidden, 1, vocab=True),
        ModuleShape("lm_head", hidden, vocab, 1, vocab=True, tied=tied),
    ]


def shapes_from_architecture(arch: Any) -> tuple[ModuleShape, ...]:
    """Shapes from the planner's ``Architecture`` when no config.json is at hand: q/k/v/o taken
    as hidden × hidden (an upper bound: grouped-query k and v are narrower), the MLP as its
    widest intermediate width, and the vocabulary as vLLM wraps it, untied (the architecture
    is not known, so it is taken as one vLLM wraps)."""
    h, layers = arch.hidden_size, arch.layers
    width = arch.max_intermediate_size or 4 * h
    return (
        *(ModuleShape(n, h, h, layers, row_parallel=n == "o_proj") for n in ATTENTION_TARGETS),
        ModuleShape("gate_proj", h, width, layers),
        ModuleShape("up_proj", h, width, layers),
        ModuleShape("down_proj", width, h, layers, row_parallel=True),
        *(_vocab_shapes(arch.vocab_size, h, False) if arch.vocab_size else ()),
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


def adapter_refusal(
    adapter: Adapter, engine: str, shapes: Sequence[ModuleShape] = ()
) -> AdapterRefusal | None:
    """Why ``engine`` cannot load ``adapter`` on a base of ``shapes`` at all
    (``EngineUnsupported``), or None."""
    if engine not in LORA_ENGINES:
        return AdapterRefusal(
            adapter.name, f"the {engine} engine serves no LoRA adapters (vllm, llamacpp, tgi do)"
        )
    if engine == "vllm" and vllm_max_lora_rank(adapter.rank) is None:
        top = VLLM_MAX_LORA_RANKS[-1]
        return AdapterRefusal(adapter.name, f"rank {adapter.rank} > {top}, vLLM's largest")
    if engine == "vllm":
        vocab = next((s.d_out for s in shapes if s.vocab and s.name == "lm_head"), 0)
        if vocab + VLLM_EXTRA_VOCAB > VLLM_LORA_VOCAB_LIMIT:
            return AdapterRefusal(
                adapter.name,
                f"vLLM v0.11.0 serves LoRA only up to a {VLLM_LORA_VOCAB_LIMIT:,}-token "
                f"vocabulary (with its {VLLM_EXTRA_VOCAB} extra); this base has {vocab:,}",
            )
        expert_targets = {s.name for s in shapes if s.expert} & set(_expand(adapter.targets))
        if expert_targets and adapter.targets_given:
            return AdapterRefusal(
                adapter.name,
                f"vLLM v0.11.0 has no LoRA for fused MoE experts, and this base's "
                f"{', '.join(sorted(expert_targets))} are its experts: target attention only",
            )
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
        values = 0.0
        for s in self.shapes:
            if s.expert:
                continue  # vLLM v0.11.0 gives fused experts no LoRA (module docstring)
            if s.vocab:
                values += _vllm_vocab_values(s, slots, rank, tp)
                continue
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


def _pad(n: int, to: int) -> int:
    return -(-n // to) * to


def _vllm_vocab_values(s: ModuleShape, slots: int, rank: int, tp: int) -> float:
    """Values one GPU holds for a wrapped embed_tokens or lm_head (module docstring): the
    stacked A and B and the extra-vocabulary tensors, whole on every GPU, and the rows the
    LoRA vocabulary adds to the base's own matrix, split by tensor parallelism. Every value is
    2 bytes: lora_dtype, and the unquantised embedding's dtype."""
    extra = VLLM_EXTRA_VOCAB
    if s.name == "embed_tokens":
        vocab, hidden = s.d_in, s.d_out
        stacked = slots * (vocab + extra) * rank + slots * hidden * rank
        base = _pad(vocab, VOCAB_PADDING)
        rows = _pad(base + extra * slots, VOCAB_PADDING) - base
    else:
        hidden, vocab = s.d_in, s.d_out
        stacked = (
            slots * rank * hidden + slots * _pad(vocab + extra, VLLM_LORA_VOCAB_PADDING) * rank
        )
        padded = _pad(_pad(vocab, VLLM_LORA_VOCAB_PADDING) + extra, VLLM_LORA_VOCAB_PADDING)
        rows = 0 if s.tied else padded - _pad(vocab, VOCAB_PADDING)
    return stacked + slots * extra * hidden + rows * hidden / tp


def decode_slowdown(active: int, adapter_bytes_each: float, base_weight_bytes: int) -> float:
    """Time per output token × this with ``active`` adapters in a batch: each adds its bytes to
    what a bandwidth-bound step reads (``LORA_PENALTY_PER_ACTIVE_ADAPTER``)."""
    if active <= 0 or base_weight_bytes <= 0:
        return 1.0
    return 1.0 + active * adapter_bytes_each / base_weight_bytes

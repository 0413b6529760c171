"""What a model is made of, read from its Hugging Face ``config.json``.

Everything the memory and speed models need is a count: parameters per kind of tensor (so a
quantiser can leave embeddings and norms in 16 bits, as real ones do), parameters touched per
token (MoE reads only the routed experts), values cached per token per attention layer, and the
constant per-sequence state of linear-attention and Mamba layers.

Worked example, Llama-3-8B (``llama``: 32 layers, hidden 4096, 32 query / 8 KV heads of 128,
MLP 14336, vocabulary 128256, untied embeddings):

* attention per layer: q and o 4096×4096, k and v 4096×1024 → 41.9 M
* MLP per layer: gate, up, down 3 × 4096 × 14336 → 176.2 M
* 32 layers → 6.98 B; embeddings and lm_head 2 × 128256 × 4096 → 1.05 B; total 8.03 B,
  the figure on the model card;
* KV cache per token: 32 layers × 2 (K, V) × 8 heads × 128 = 65,536 values, 128 KiB in fp16.

Supported ``model_type`` values are the keys of ``FAMILIES``; anything else needs
``spec.model.parameters`` (``architecture_from_parameters``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = [
    "Architecture",
    "ConfigError",
    "FAMILIES",
    "TensorGroup",
    "architecture_from_config",
    "architecture_from_parameters",
]


class ConfigError(ValueError):
    """The config cannot be understood: unknown family, or a field the family needs is missing."""


QUANTIZABLE = frozenset(
    {"attention", "mlp", "experts", "shared_experts", "linear_attention", "mamba"}
)
"""Tensor groups made of matmul weights, which quantisers convert; the rest (embeddings, lm_head,
norms, routers, biases, convolutions, the vision tower) stays 16-bit unless a precision says
otherwise (``Precision.kept_16bit`` may also keep some quantizable groups)."""


@dataclass(frozen=True)
class TensorGroup:
    """Parameters of one kind, e.g. all routed experts of all layers."""

    category: str
    parameters: int
    active_parameters: int
    """Parameters used for one token: routed experts count only the chosen ones."""
    rows: int = 0
    """Output channels of the matrices: per-channel quantisation stores one scale per row."""

    @property
    def quantizable(self) -> bool:
        return self.category in QUANTIZABLE


@dataclass(frozen=True)
class Architecture:
    """A model reduced to the counts the estimates need."""

    model_type: str
    groups: tuple[TensorGroup, ...]
    layers: int
    hidden_size: int
    vocab_size: int
    kv_layers: int
    """Layers that cache keys and values for the whole context (full attention)."""
    window_layers: int = 0
    """Layers that cache at most ``sliding_window`` tokens."""
    sliding_window: int | None = None
    kv_values_per_token: int = 0
    """Values cached per token per KV layer: 2 × kv heads × head dim, or MLA's latent + rope."""
    kv_heads: int = 1
    """KV heads, which tensor parallelism splits; MLA's single latent is replicated instead."""
    mla: bool = False
    attention_flops_per_context_token: int = 0
    """FLOPs per generated token per cached token per KV layer (QK^T and AV)."""
    state_values_per_sequence: int = 0
    """Recurrent state of linear-attention / Mamba layers, all layers: constant in context."""
    state_bytes_per_value: int = 2
    experts: int = 0
    experts_per_token: int = 0
    moe_layers: int = 0
    max_intermediate_size: int = 0
    """Widest MLP (or expert) hidden width: sizes the activation workspace."""
    notes: tuple[str, ...] = field(default=())
    """What was left out or assumed (MTP heads, a vision tower, an approximate fallback)."""

    @property
    def total_parameters(self) -> int:
        return sum(g.parameters for g in self.groups)

    @property
    def active_parameters(self) -> int:
        """Parameters per token, embeddings included (Qwen's and Mistral's convention)."""
        return sum(g.active_parameters for g in self.groups if g.category != "vision")

    @property
    def active_parameters_read_per_token(self) -> int:
        """What a decode step reads: the input embedding contributes one row, not the table.

        OpenAI's gpt-oss card counts active parameters this way (3.61 B for gpt-oss-20b)."""
        embeddings = sum(g.active_parameters for g in self.groups if g.category == "embeddings")
        return self.active_parameters - embeddings + (self.hidden_size if embeddings else 0)

    def parameters_in(self, *categories: str) -> int:
        return sum(g.parameters for g in self.groups if g.category in categories)

    @property
    def expert_parameters_per_expert(self) -> int:
        """One routed expert of one layer, for counting distinct experts a batch touches."""
        if not self.experts or not self.moe_layers:
            return 0
        return self.parameters_in("experts") // (self.experts * self.moe_layers)


# --- reading config.json -------------------------------------------------------------------


CLASS_DEFAULTS: dict[str, dict] = {
    "gemma3": {
        "vocab_size": 262_208,
        "head_dim": 256,
        "num_attention_heads": 8,
        "num_key_value_heads": 4,
        "sliding_window": 4096,
        "sliding_window_pattern": 6,
        "tie_word_embeddings": True,
    },
}
"""Fields Hugging Face leaves out of config.json because the config class has them as defaults
(google/gemma-3-12b-it's config.json names neither head_dim nor vocab_size). Values:
transformers' ``Gemma3TextConfig.__init__`` defaults (vocab_size 262_208, head_dim 256, …)."""


class _Config:
    """A config.json with the text model's fields first (multimodal configs nest them), then
    the config class's defaults."""

    def __init__(self, raw: Mapping, family: str):
        self.family = family
        text = raw.get("text_config") or raw.get("llm_config") or {}
        self._layers = [text, raw] if isinstance(text, Mapping) else [raw]
        self._layers.append(CLASS_DEFAULTS.get(family, {}))

    def get(self, key: str, default=None):
        for layer in self._layers:
            if key in layer and layer[key] is not None:
                return layer[key]
        return default

    def need(self, key: str):
        value = self.get(key)
        if value is None:
            raise ConfigError(f"config.json has no {key!r}, which {self.family} models need")
        return value

    def int(self, key: str, default: int | None = None) -> int:
        value = self.get(key, default) if default is not None else self.need(key)
        try:
            return int(value)
        except (TypeError, ValueError):
            raise ConfigError(f"config.json field {key!r} is not a number: {value!r}") from None


class _Tally:
    """Accumulates parameters per category; ``active`` defaults to ``total``."""

    def __init__(self) -> None:
        self.total: dict[str, int] = {}
        self.active: dict[str, int] = {}
        self.rows: dict[str, int] = {}

    def add(self, category: str, total: int, active: int | None = None, rows: int = 0) -> None:
        self.total[category] = self.total.get(category, 0) + total
        self.active[category] = self.active.get(category, 0) + (total if active is None else active)
        self.rows[category] = self.rows.get(category, 0) + rows

    def groups(self) -> tuple[TensorGroup, ...]:
        return tuple(
            TensorGroup(c, self.total[c], self.active[c], self.rows[c]) for c in sorted(self.total)
        )


def _linear(tally: _Tally, category: str, n_in: int, n_out: int, bias: bool = False) -> None:
    tally.add(category, n_in * n_out, rows=n_out)
    if bias:
        tally.add("other", n_out)


def _layer_kinds(c: _Config, layers: int) -> list[str]:
    """'full', 'sliding', 'linear' (Gated DeltaNet) per transformer layer."""
    layer_types = c.get("layer_types")
    if layer_types:
        names = {
            "full_attention": "full",
            "sliding_attention": "sliding",
            "linear_attention": "linear",
            "attention": "full",
        }
        try:
            return [names[t] for t in layer_types[:layers]]
        except KeyError as error:
            raise ConfigError(f"config.json layer_types has an unknown kind {error}") from None
    if c.get("full_attention_interval"):  # qwen3_next: every n-th layer is full attention
        n = c.int("full_attention_interval")
        return ["full" if (i + 1) % n == 0 else "linear" for i in range(layers)]
    window = c.get("sliding_window")
    if c.family == "gemma2" and window:
        return ["sliding" if i % 2 == 0 else "full" for i in range(layers)]
    if c.family == "gemma3" and window:
        pattern = c.int("sliding_window_pattern", 6)
        return ["full" if (i + 1) % pattern == 0 else "sliding" for i in range(layers)]
    if c.family in ("qwen2", "qwen3", "qwen3_moe"):
        if c.get("use_sliding_window") and window:
            first = c.int("max_window_layers", 0)
            return ["sliding" if i >= first else "full" for i in range(layers)]
        return ["full"] * layers
    if window and c.family in ("mistral", "mixtral"):
        return ["sliding"] * layers
    return ["full"] * layers


def _standard_attention(c: _Config, tally: _Tally, h: int) -> tuple[int, int, int]:
    """Multi-head / grouped-query attention; returns (kv values per token, kv heads, flops)."""
    heads = c.int("num_attention_heads")
    kv_heads = c.int("num_key_value_heads", heads)
    head_dim = c.int("head_dim", 0) or c.int("attention_head_dim", 0) or h // heads
    gated = bool(c.get("attn_output_gate")) or c.family == "qwen3_next"
    bias = bool(c.get("attention_bias")) or c.family == "qwen2"
    _linear(tally, "attention", h, heads * head_dim * (2 if gated else 1), bias)
    _linear(tally, "attention", h, kv_heads * head_dim, bias)
    _linear(tally, "attention", h, kv_heads * head_dim, bias)
    _linear(tally, "attention", heads * head_dim, h, bias and c.family != "qwen2")
    if c.family in ("qwen3", "qwen3_moe", "qwen3_next", "qwen3_5", "qwen3_5_moe", "gemma3"):
        tally.add("norms", 2 * head_dim)  # q_norm, k_norm
    if c.family == "gpt_oss":
        tally.add("other", heads)  # attention sinks
    return 2 * kv_heads * head_dim, kv_heads, 4 * heads * head_dim


def _mla_attention(c: _Config, tally: _Tally, h: int) -> tuple[int, int, int]:
    """DeepSeek's multi-head latent attention: the cache holds one latent + rope key per token.

    vLLM caches ``kv_lora_rank + qk_rope_head_dim`` values (576 for DeepSeek-V3) per token per
    layer and decodes with the absorbed weights, so attention reads the latent once per head."""
    heads = c.int("num_attention_heads")
    q_rank = c.int("q_lora_rank", 0)
    kv_rank = c.int("kv_lora_rank")
    nope, rope, v = c.int("qk_nope_head_dim"), c.int("qk_rope_head_dim"), c.int("v_head_dim")
    if q_rank:
        _linear(tally, "attention", h, q_rank)
        tally.add("norms", q_rank)
        _linear(tally, "attention", q_rank, heads * (nope + rope))
    else:
        _linear(tally, "attention", h, heads * (nope + rope))
    _linear(tally, "attention", h, kv_rank + rope)
    tally.add("norms", kv_rank)
    _linear(tally, "attention", kv_rank, heads * (nope + v))
    _linear(tally, "attention", heads * v, h)
    return kv_rank + rope, 1, 2 * heads * (2 * kv_rank + rope)


def _gated_deltanet(c: _Config, tally: _Tally, h: int) -> int:
    """Qwen3-Next / Qwen3.5 linear attention; returns state values per sequence for the layer.

    State = one (key dim × value dim) matrix per value head, plus the causal-conv tail
    (conv width − 1 positions of the q, k, v channels)."""
    nk, dk = c.int("linear_num_key_heads"), c.int("linear_key_head_dim")
    nv, dv = c.int("linear_num_value_heads"), c.int("linear_value_head_dim")
    kernel = c.int("linear_conv_kernel_dim", 4)
    key_dim, value_dim = nk * dk, nv * dv
    conv_dim = 2 * key_dim + value_dim
    _linear(tally, "linear_attention", h, 2 * key_dim + 2 * value_dim)  # q, k, v, z
    _linear(tally, "linear_attention", h, 2 * nv)  # b, a (gates)
    tally.add("other", conv_dim * kernel + 2 * nv)  # conv1d, A_log, dt_bias
    tally.add("norms", dv)
    _linear(tally, "linear_attention", value_dim, h)
    return nv * dk * dv + conv_dim * (kernel - 1)


def _mamba2(c: _Config, tally: _Tally, h: int) -> int:
    """A Mamba-2 mixer (Nemotron-H); returns its state values per sequence."""
    heads, head_dim = c.int("mamba_num_heads"), c.int("mamba_head_dim")
    d_state, groups = c.int("ssm_state_size"), c.int("n_groups", 1)
    kernel = c.int("conv_kernel", 4)
    d_inner = heads * head_dim
    conv_dim = d_inner + 2 * groups * d_state
    _linear(tally, "mamba", h, 2 * d_inner + 2 * groups * d_state + heads)
    tally.add("other", conv_dim * kernel + (conv_dim if c.get("use_conv_bias", True) else 0))
    tally.add("other", 3 * heads)  # A_log, D, dt_bias
    tally.add("norms", d_inner)
    _linear(tally, "mamba", d_inner, h)
    return heads * head_dim * d_state + conv_dim * (kernel - 1)


def _gated_mlp(tally: _Tally, category: str, h: int, width: int, active: bool = True) -> None:
    tally.add(category, 3 * h * width, 3 * h * width if active else 0, rows=2 * width + h)


@dataclass
class _Moe:
    experts: int
    per_token: int
    width: int
    shared_width: int = 0
    shared_gate: bool = False
    router_bias: bool = False
    expert_bias: bool = False

    def add_layer(self, tally: _Tally, h: int) -> None:
        per_expert = 3 * h * self.width + (3 * self.width + h if self.expert_bias else 0)
        tally.add(
            "experts",
            self.experts * per_expert,
            self.per_token * per_expert,
            rows=self.experts * (2 * self.width + h),
        )
        tally.add("moe_router", h * self.experts + (self.experts if self.router_bias else 0))
        if self.shared_width:
            _gated_mlp(tally, "shared_experts", h, self.shared_width)
            if self.shared_gate:
                tally.add("moe_router", h)


def _moe(c: _Config) -> tuple[_Moe | None, set[int]]:
    """The MoE block of this family and the indices of dense (non-MoE) layers."""
    layers = c.int("num_hidden_layers")
    if c.family == "mixtral":
        return _Moe(
            c.int("num_local_experts"), c.int("num_experts_per_tok"), c.int("intermediate_size")
        ), set()
    if c.family == "gpt_oss":
        per_token = c.int("num_experts_per_tok", 0) or c.int("experts_per_token")
        return _Moe(
            c.int("num_local_experts"),
            per_token,
            c.int("intermediate_size"),
            router_bias=True,
            expert_bias=True,
        ), set()
    if c.family == "deepseek_v3":
        first, freq = c.int("first_k_dense_replace", 0), c.int("moe_layer_freq", 1)
        dense = {i for i in range(layers) if i < first or i % freq != 0}
        shared = c.int("n_shared_experts", 0) * c.int("moe_intermediate_size")
        return _Moe(
            c.int("n_routed_experts"),
            c.int("num_experts_per_tok"),
            c.int("moe_intermediate_size"),
            shared_width=shared,
        ), dense
    if c.get("num_experts"):  # qwen3_moe, qwen3_next, qwen3_5_moe
        step = c.int("decoder_sparse_step", 1)
        dense = set(c.get("mlp_only_layers") or ())
        dense |= {i for i in range(layers) if (i + 1) % step != 0}
        shared = c.int("shared_expert_intermediate_size", 0)
        return _Moe(
            c.int("num_experts"),
            c.int("num_experts_per_tok"),
            c.int("moe_intermediate_size"),
            shared_width=shared,
            shared_gate=bool(shared),
        ), dense
    return None, set()


def _vision_tower(vision: Mapping, text_hidden: int) -> int:
    """A ViT image encoder and its projector, approximately (blocks dominate: 4h² + 2hi).

    Multimodal checkpoints load it with the language model, so it occupies memory; it adds
    nothing to the per-token decode cost."""
    h = int(vision.get("hidden_size", 0))
    if not h:
        return 0
    width = int(vision.get("intermediate_size", 4 * h))
    depth = int(vision.get("depth") or vision.get("num_hidden_layers") or 0)
    patch = int(vision.get("patch_size", 14))
    channels = int(vision.get("in_channels", vision.get("num_channels", 3)))
    temporal = int(vision.get("temporal_patch_size", 1))
    positions = int(
        vision.get("num_position_embeddings") or (int(vision.get("image_size", 0)) // patch) ** 2
    )
    blocks = depth * (4 * h * h + 2 * h * width + 9 * h + width)
    embeddings = channels * temporal * patch * patch * h + positions * h
    merge = int(vision.get("spatial_merge_size", 1))
    out = int(vision.get("out_hidden_size", text_hidden))
    merged = h * merge * merge
    projector = merged * merged + merged * out if merge > 1 else h * out
    return blocks + embeddings + projector


def _transformer(c: _Config) -> Architecture:
    h, layers, vocab = c.int("hidden_size"), c.int("num_hidden_layers"), c.int("vocab_size")
    tally = _Tally()
    kinds = _layer_kinds(c, layers)
    moe, dense_layers = _moe(c)
    kv_values = kv_heads = attn_flops = state = 0
    width = c.int("intermediate_size", 0)
    norms_per_layer = 4 if c.family in ("gemma2", "gemma3") else 2
    for i, kind in enumerate(kinds):
        if kind == "linear":
            state += _gated_deltanet(c, tally, h)
        elif c.family == "deepseek_v3":
            kv_values, kv_heads, attn_flops = _mla_attention(c, tally, h)
        else:
            kv_values, kv_heads, attn_flops = _standard_attention(c, tally, h)
        if moe and i not in dense_layers:
            moe.add_layer(tally, h)
        else:
            _gated_mlp(tally, "mlp", h, c.int("intermediate_size"))
        tally.add("norms", norms_per_layer * h)
    tally.add("norms", h)
    _embeddings(c, tally, h, vocab)
    notes = []
    vision = c.get("vision_config")
    if isinstance(vision, Mapping) and (tower := _vision_tower(vision, h)):
        tally.add("vision", tower, 0)
        notes.append(f"vision tower of about {tower / 1e9:.2f} B parameters loaded, not decoded")
    for key in ("num_nextn_predict_layers", "mtp_num_hidden_layers"):
        if c.get(key):
            notes.append(f"{c.get(key)} multi-token-prediction layer(s) not loaded ({key})")
    moe_layers = layers - len(dense_layers) if moe else 0
    ssm_dtype = str(c.get("mamba_ssm_dtype", ""))
    return Architecture(
        model_type=c.family,
        groups=tally.groups(),
        layers=layers,
        hidden_size=h,
        vocab_size=vocab,
        kv_layers=kinds.count("full"),
        window_layers=kinds.count("sliding"),
        sliding_window=c.int("sliding_window", 0) or None if "sliding" in kinds else None,
        kv_values_per_token=kv_values,
        kv_heads=kv_heads,
        mla=c.family == "deepseek_v3",
        attention_flops_per_context_token=attn_flops,
        state_values_per_sequence=state,
        state_bytes_per_value=4 if "32" in ssm_dtype else 2,
        experts=moe.experts if moe else 0,
        experts_per_token=moe.per_token if moe else 0,
        moe_layers=moe_layers,
        max_intermediate_size=max(width, moe.width * moe.per_token if moe else 0),
        notes=tuple(notes),
    )


def _embeddings(c: _Config, tally: _Tally, h: int, vocab: int) -> None:
    tied_default = c.family in ("gemma2", "gemma3")
    tally.add("embeddings", vocab * h)
    if not c.get("tie_word_embeddings", tied_default):
        tally.add("lm_head", vocab * h, rows=vocab)


def _nemotron_h(c: _Config) -> Architecture:
    """Nemotron-H: ``hybrid_override_pattern`` gives one block per character —
    ``M`` Mamba-2, ``*`` attention, ``-`` MLP (squared-ReLU, not gated), ``E`` MoE."""
    h, vocab = c.int("hidden_size"), c.int("vocab_size")
    pattern = str(c.need("hybrid_override_pattern"))
    tally = _Tally()
    kv_values = kv_heads = attn_flops = state = 0
    width = c.int("intermediate_size")
    for block in pattern:
        if block == "M":
            state += _mamba2(c, tally, h)
        elif block == "*":
            kv_values, kv_heads, attn_flops = _standard_attention(c, tally, h)
        elif block == "-":
            _linear(tally, "mlp", h, width, bool(c.get("mlp_bias")))
            _linear(tally, "mlp", width, h, bool(c.get("mlp_bias")))
        elif block == "E":
            raise ConfigError("nemotron_h MoE blocks ('E') are not supported yet; set parameters")
        else:
            raise ConfigError(f"hybrid_override_pattern has an unknown block {block!r}")
        tally.add("norms", h)
    tally.add("norms", h)
    _embeddings(c, tally, h, vocab)
    return Architecture(
        model_type=c.family,
        groups=tally.groups(),
        layers=len(pattern),
        hidden_size=h,
        vocab_size=vocab,
        kv_layers=pattern.count("*"),
        kv_values_per_token=kv_values,
        kv_heads=kv_heads,
        attention_flops_per_context_token=attn_flops,
        state_values_per_sequence=state,
        max_intermediate_size=width,
    )


FAMILIES = {
    "llama": _transformer,
    "mistral": _transformer,
    "qwen2": _transformer,
    "qwen3": _transformer,
    "qwen3_moe": _transformer,
    "qwen3_next": _transformer,
    "qwen3_5": _transformer,
    "qwen3_5_moe": _transformer,
    "mixtral": _transformer,
    "deepseek_v3": _transformer,
    "gpt_oss": _transformer,
    "gemma2": _transformer,
    "gemma3": _transformer,
    "nemotron_h": _nemotron_h,
}
"""model_type → reader. Multimodal wrappers (gemma3, qwen3_5*) are read from ``text_config``."""


def architecture_from_config(config: Mapping) -> Architecture:
    """Read a Hugging Face config.json (already parsed) into an ``Architecture``."""
    if not isinstance(config, Mapping):
        raise ConfigError("config.json must be a JSON object")
    model_type = config.get("model_type")
    if model_type not in FAMILIES:
        known = ", ".join(sorted(FAMILIES))
        raise ConfigError(
            f"unknown model_type {model_type!r}: supported families are {known}; "
            "for another model give spec.model.parameters (and activeParameters for MoE)"
        )
    return FAMILIES[model_type](_Config(config, model_type))


def architecture_from_parameters(
    parameters: float, active_parameters: float | None = None
) -> Architecture:
    """A Llama-shaped stand-in when only parameter counts are known.

    Assumes a dense decoder with 12·L·h² parameters per model, a width-to-depth ratio
    h = 128·L (Llama-3-8B: 4096 / 32) and a KV width of h/4 (grouped-query attention with 4
    query heads per KV head). That overestimates the KV cache of models with wider groups
    (Llama-3-70B uses 8): a conservative error, which the note says."""
    total = int(parameters)
    active = int(active_parameters or parameters)
    if total <= 0 or active <= 0 or active > total:
        raise ConfigError("parameters must be positive and activeParameters ≤ parameters")
    hidden = max(256, round((total * 128 / 12) ** (1 / 3)))
    layers = max(1, round(hidden / 128))
    head_dim = 128
    kv_heads = max(1, hidden // 4 // head_dim)
    tally = _Tally()
    tally.add("mlp", total, active)
    return Architecture(
        model_type="parameters",
        groups=tally.groups(),
        layers=layers,
        hidden_size=hidden,
        vocab_size=0,
        kv_layers=layers,
        kv_values_per_token=2 * kv_heads * head_dim,
        kv_heads=kv_heads,
        attention_flops_per_context_token=4 * hidden,
        max_intermediate_size=int(3.5 * hidden),
        notes=(
            f"shape assumed from the parameter count: {layers} layers, hidden {hidden}, "
            f"{kv_heads} KV heads of {head_dim}",
        ),
    )


def expected_distinct_experts(arch: Architecture, tokens: int) -> float:
    """Routed experts per MoE layer that a step over ``tokens`` tokens reads, on average.

    With uniform routing each expert is missed by one token with probability 1 − k/E, so
    E·(1 − (1 − k/E)^tokens) experts are touched: k for one token, all E for a large batch."""
    if not arch.experts:
        return 0.0
    e, k = arch.experts, arch.experts_per_token
    return e * (1 - math.pow(1 - k / e, max(1, tokens)))

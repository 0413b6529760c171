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

Any decoder config with the standard fields (``hidden_size``, ``num_hidden_layers``,
``num_attention_heads``, ``vocab_size`` …) is sized by one reader: per layer a mixer (full,
sliding or chunked attention, MLA, Gated DeltaNet, lightning attention, Mamba-1/2, or attention
and Mamba side by side) and a feed-forward block (dense, MoE, none), laid out by the common
fields (``layer_types``, ``hybrid_override_pattern``, ``attn_type_list``, ``attn_layer_period``,
``full_attention_interval``, ``first_k_dense_replace``, ``decoder_sparse_step``,
``interleave_moe_layer_step``, ``expert_layer_period`` …). ``family_rules`` holds the few facts a
family's code has and its config does not. A ``model_type`` without rules is sized the same way
and says so in ``notes`` ("sized from standard fields"); a config without the standard fields is
refused, naming what is missing. Configs without any config need ``spec.model.parameters``
(``architecture_from_parameters``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from .config_values import BOUNDS, ConfigError, ConfigValues, whole
from .family_rules import FAMILY_RULES, STANDARD, Rules, rules_for
from .layer_shapes import (
    FALCON_H1_MAMBA,
    GRANITE_MAMBA,
    NEMOTRON_H_MAMBA,
    Attention,
    Moe,
    Tally,
    attention,
    gated_deltanet,
    lightning_attention,
    mamba1,
    mamba2,
    mla_attention,
    mlp,
)

__all__ = [
    "Architecture",
    "ConfigError",
    "KNOWN_FAMILIES",
    "TensorGroup",
    "architecture_from_config",
    "architecture_from_parameters",
    "expected_distinct_experts",
]


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
    attention_heads: int = 0
    """Query heads, which tensor parallelism must divide (``feasibility``); 0: not known."""
    max_context_tokens: int | None = None
    """The longest sequence the model serves (``max_position_embeddings``, extended by rope
    scaling as vLLM extends it); None when the config does not say."""
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

STANDARD_FIELDS = ("hidden_size", "num_hidden_layers", "num_attention_heads", "vocab_size")
"""What every decoder config names (directly or under ``text_config``); without them a config
cannot be sized."""

MAX_PARAMETERS = 10**15
"""A quadrillion parameters: 500× the largest published models (~2 T), so a count above it is
a config error, not a model."""

_LAYER_TYPE_NAMES = {
    "full_attention": "full",
    "attention": "full",
    "global": "full",
    "sliding_attention": "sliding",
    "sliding": "sliding",
    "local": "sliding",
    "chunked_attention": "chunked",
    "linear_attention": "linear",
    "mamba": "mamba",
    "mamba2": "mamba",
}


def _layer_kinds(c: ConfigValues, rules: Rules, layers: int) -> tuple[list[str], list[str]]:
    """The mixer of each layer — 'full', 'sliding', 'chunked' (attention over a bounded
    window), 'linear' (Gated DeltaNet), 'lightning' (MiniMax), 'mamba' — and notes."""
    notes: list[str] = []
    layer_types = c.get("layer_types")
    if layer_types is not None:
        if not isinstance(layer_types, list) or len(layer_types) < layers:
            raise ConfigError(
                f"config.json layer_types must list one kind per layer ({layers} layers)"
            )
        try:
            return [_LAYER_TYPE_NAMES[str(t)] for t in layer_types[:layers]], notes
        except KeyError as error:
            raise ConfigError(f"config.json layer_types has an unknown kind {error}") from None
    attn_types = c.get("attn_type_list")  # MiniMax-Text-01: 1 softmax, 0 lightning attention
    if attn_types is not None:
        if not isinstance(attn_types, list) or len(attn_types) < layers:
            raise ConfigError(f"config.json attn_type_list must list {layers} layers")
        return ["full" if t == 1 else "lightning" for t in attn_types[:layers]], notes
    if c.has("attn_layer_period"):  # Jamba: one attention layer per period, Mamba otherwise
        period = c.int("attn_layer_period")
        offset = c.int("attn_layer_offset", 0, minimum=0)
        return ["full" if i % period == offset else "mamba" for i in range(layers)], notes
    if c.has("full_attention_interval"):  # Qwen3-Next: every n-th layer is full attention
        n = c.int("full_attention_interval")
        return ["full" if (i + 1) % n == 0 else "linear" for i in range(layers)], notes
    if rules.llama4 and c.has("attention_chunk_size"):
        # rope layers attend within chunks; every no_rope_layer_interval-th is global (NoPE):
        # transformers' Llama4TextConfig, default interval 4
        no_rope = c.get("no_rope_layers")
        if isinstance(no_rope, list) and len(no_rope) >= layers:
            return ["chunked" if no_rope[i] else "full" for i in range(layers)], notes
        n = c.int("no_rope_layer_interval", 4)
        return ["full" if (i + 1) % n == 0 else "chunked" for i in range(layers)], notes
    window = c.int("sliding_window", 0, minimum=0) if c.has("sliding_window") else 0
    longest = c.int("max_position_embeddings", 0, minimum=0)
    if not window or (longest and window >= longest):
        return ["full"] * layers, notes
    if c.get("use_sliding_window") is False:
        return ["full"] * layers, notes
    if c.has("sliding_window_pattern"):  # Gemma 3, Cohere2: every n-th layer is global
        n = c.int("sliding_window_pattern")
        return ["full" if (i + 1) % n == 0 else "sliding" for i in range(layers)], notes
    if rules.alternate_sliding:
        return ["sliding" if i % 2 == 0 else "full" for i in range(layers)], notes
    if c.has("max_window_layers") and c.get("use_sliding_window"):  # Qwen2: top layers slide
        first = c.int("max_window_layers", 0, minimum=0)
        return ["sliding" if i >= first else "full" for i in range(layers)], notes
    if rules.slides_every_layer or c.get("use_sliding_window"):
        return ["sliding"] * layers, notes
    notes.append(
        "sliding_window without a layer layout: every layer counted as full attention "
        "(the larger KV cache)"
    )
    return ["full"] * layers, notes


def _moe(c: ConfigValues, rules: Rules, layers: int) -> tuple[Moe | None, set[int]]:
    """The MoE block and the indices of dense (non-MoE) layers, from the common fields."""
    experts = c.experts()
    if not experts:
        return None, set()
    per_token = c.first(
        (
            "num_experts_per_tok",
            "experts_per_token",
            "moe_topk",
            "num_experts_per_token",
            "top_k_experts",
        )
    )
    if per_token > experts:
        raise ConfigError(
            f"config.json routes {per_token} experts per token but has only {experts}"
        )
    width = (
        c.int("moe_intermediate_size")
        if c.has("moe_intermediate_size")
        else c.int("intermediate_size")
    )
    if rules.llama4:  # one shared expert as wide as a routed one (Llama4TextMoe)
        shared = width
    else:
        shared = (
            c.first(
                (
                    "shared_expert_intermediate_size",
                    "moe_shared_expert_intermediate_size",
                    "shared_intermediate_size",
                ),
                0,
                minimum=0,
            )
            or c.int("n_shared_experts", 0, minimum=0) * width
        )
    moe = Moe(
        experts,
        per_token,
        width,
        shared_width=shared,
        shared_gate=c.has("shared_expert_intermediate_size") and bool(shared),
        router_bias=c.family == "gpt_oss"
        or c.get("topk_method") == "noaux_tc"
        or bool(c.get("use_routing_bias")),
        expert_bias=c.family == "gpt_oss",
        gated=rules.gated_mlp,
    )
    dense: set[int] = set()
    if c.has("first_k_dense_replace"):
        first = c.int("first_k_dense_replace", 0, minimum=0)
        dense |= set(range(min(first, layers)))
    freq = c.get("moe_layer_freq")
    if isinstance(freq, list):
        if len(freq) < layers:
            raise ConfigError(f"config.json moe_layer_freq must list {layers} layers")
        dense |= {i for i in range(layers) if not freq[i]}
    elif freq is not None:
        n = c.int("moe_layer_freq")
        dense |= {i for i in range(layers) if i % n != 0}
    if c.has("mlp_only_layers"):
        only = c.get("mlp_only_layers")
        if not isinstance(only, list):
            raise ConfigError("config.json mlp_only_layers must be a list of layer indices")
        dense |= {i for i in only if isinstance(i, int) and 0 <= i < layers}
    if c.has("decoder_sparse_step"):
        step = c.int("decoder_sparse_step")
        dense |= {i for i in range(layers) if (i + 1) % step != 0}
    if c.has("interleave_moe_layer_step"):  # Llama 4: every step-th layer is MoE
        step = c.int("interleave_moe_layer_step")
        dense |= {i for i in range(layers) if (i + 1) % step != 0}
    if c.has("expert_layer_period"):  # Jamba: MoE where i % period == offset
        period = c.int("expert_layer_period")
        offset = c.int("expert_layer_offset", 0, minimum=0)
        dense |= {i for i in range(layers) if i % period != offset}
    return moe, dense


def _attention_options(c: ConfigValues, rules: Rules) -> dict:
    biased = c.flag(rules.bias_key)
    qk = rules.qk_norm
    if qk == "flag":
        qk = "head" if c.flag("use_qk_norm") else ""
    elif qk == "all" and c.family == "minimax_m2" and not c.flag("use_qk_norm"):
        qk = ""
    return {
        "qkv_bias": rules.qkv_bias or biased,
        "o_bias": biased and rules.bias_scope == "all",
        "gated": rules.gated_attention or c.flag("attn_output_gate"),
        "qk_norm": qk,
    }


def _standard(c: ConfigValues, rules: Rules) -> Architecture:
    """Any decoder: per layer a mixer and a feed-forward block, from the standard fields."""
    h, layers, vocab = c.int("hidden_size"), c.int("num_hidden_layers"), c.int("vocab_size")
    tally = Tally()
    kinds, notes = _layer_kinds(c, rules, layers)
    moe, dense_layers = _moe(c, rules, layers)
    parallel_mamba = c.family == "falcon_h1" or c.flag("parallel_hybrid")
    options = _attention_options(c, rules)
    mla = rules.mla or c.has("kv_lora_rank")
    mamba_keys, mamba_v2 = GRANITE_MAMBA, False
    if "mamba" in kinds or parallel_mamba:
        mamba_keys = FALCON_H1_MAMBA if c.has("mamba_d_ssm") else GRANITE_MAMBA
        mamba_v2 = c.has("mamba_n_heads") or c.has("mamba_num_heads")
    cached: Attention | None = None
    state = 0
    dense_width = c.int("intermediate_size_mlp") if c.has("intermediate_size_mlp") else 0
    if not moe and rules.dense_width_key != "intermediate_size" and c.has(rules.dense_width_key):
        dense_width = c.int(rules.dense_width_key)
    mlp_bias = rules.bias_key == "use_bias" and c.flag("use_bias") or c.flag("mlp_bias")
    for i, kind in enumerate(kinds):
        if kind == "linear":
            state += gated_deltanet(c, tally, h)
        elif kind == "lightning":
            state += lightning_attention(c, tally, h)
        elif kind == "mamba":
            state += mamba2(c, tally, h, mamba_keys) if mamba_v2 else mamba1(c, tally, h)
        elif mla:
            cached = mla_attention(c, tally, h)
        else:
            cached = attention(c, tally, h, **options)
        if parallel_mamba:
            state += mamba2(c, tally, h, FALCON_H1_MAMBA)
        if moe and i not in dense_layers:
            moe.add_layer(tally, h)
        else:  # a dense layer: its width is required, never silently left out
            width = dense_width or c.int("intermediate_size")
            mlp(tally, "mlp", h, width, gated=rules.gated_mlp, bias=mlp_bias)
        tally.add("norms", rules.norms_per_layer * h * (2 if rules.norm_bias else 1))
    tally.add("norms", h * (2 if rules.norm_bias else 1))
    _embeddings(c, rules, tally, h, vocab)
    notes += _extras(c, tally, h)
    window_kinds = ("sliding", "chunked")
    window = 0
    if any(k in window_kinds for k in kinds):
        window = c.int("attention_chunk_size") if "chunked" in kinds else c.int("sliding_window")
    return _architecture(
        c,
        tally,
        layers=layers,
        hidden=h,
        vocab=vocab,
        kv_layers=kinds.count("full"),
        window_layers=sum(kinds.count(k) for k in window_kinds),
        window=window or None,
        cached=cached,
        state=state,
        moe=moe,
        moe_layers=layers - len(dense_layers) if moe else 0,
        width=dense_width or c.int("intermediate_size", 0, minimum=0),
        notes=notes,
    )


def _nemotron_h(c: ConfigValues, rules: Rules) -> Architecture:
    """Nemotron-H: ``hybrid_override_pattern`` gives one block per character — ``M`` Mamba-2,
    ``*`` attention, ``-`` MLP (squared-ReLU, not gated), ``E`` MoE (Nemotron 3: routed
    squared-ReLU experts plus a shared expert, ``NemotronHMOE``)."""
    h, vocab = c.int("hidden_size"), c.int("vocab_size")
    pattern = c.get("hybrid_override_pattern")
    if not isinstance(pattern, str) or not pattern:
        raise ConfigError("config.json hybrid_override_pattern must be a non-empty string")
    whole("hybrid_override_pattern length", len(pattern), 1, BOUNDS["num_hidden_layers"])
    if c.has("num_hidden_layers") and c.int("num_hidden_layers") != len(pattern):
        raise ConfigError(
            f"config.json hybrid_override_pattern has {len(pattern)} blocks but "
            f"num_hidden_layers is {c.get('num_hidden_layers')}"
        )
    tally = Tally()
    cached: Attention | None = None
    state = 0
    moe, _ = _moe(c, rules, len(pattern)) if "E" in pattern else (None, set())
    width = c.int("intermediate_size", 0, minimum=0)
    for block in pattern:
        if block == "M":
            state += mamba2(c, tally, h, NEMOTRON_H_MAMBA)
        elif block == "*":
            cached = attention(c, tally, h, **_attention_options(c, rules))
        elif block == "-":
            mlp(tally, "mlp", h, c.int("intermediate_size"), gated=False, bias=c.flag("mlp_bias"))
        elif block == "E":
            if moe is None:
                raise ConfigError("hybrid_override_pattern has MoE blocks ('E') but no experts")
            moe.add_layer(tally, h)
        else:
            raise ConfigError(f"hybrid_override_pattern has an unknown block {block!r}")
        tally.add("norms", h)
    tally.add("norms", h)
    _embeddings(c, rules, tally, h, vocab)
    notes = _extras(c, tally, h)
    return _architecture(
        c,
        tally,
        layers=len(pattern),
        hidden=h,
        vocab=vocab,
        kv_layers=pattern.count("*"),
        cached=cached,
        state=state,
        moe=moe,
        moe_layers=pattern.count("E"),
        width=width,
        notes=notes,
    )


def _embeddings(c: ConfigValues, rules: Rules, tally: Tally, h: int, vocab: int) -> None:
    tally.add("embeddings", vocab * h)
    tied = c.flag("tie_word_embeddings") if c.has("tie_word_embeddings") else rules.tied
    if not tied:
        tally.add("lm_head", vocab * h, rows=vocab)
    if c.flag("lm_head_bias"):  # PhiMoE: ``nn.Linear(h, vocab, bias=config.lm_head_bias)``
        tally.add("other", vocab)


def _extras(c: ConfigValues, tally: Tally, h: int) -> list[str]:
    """A vision tower (loaded, not decoded) and multi-token-prediction layers (not loaded)."""
    notes = []
    vision = c.get("vision_config")
    if isinstance(vision, Mapping):
        if tower := _vision_tower(vision, h):
            tally.add("vision", tower, 0)
            notes.append(
                f"vision tower of about {tower / 1e9:.2f} B parameters loaded, not decoded"
            )
        else:
            notes.append("vision_config not understood: the vision tower's weights are not counted")
    for key in ("num_nextn_predict_layers", "mtp_num_hidden_layers", "num_mtp_modules"):
        if c.get(key):
            notes.append(f"{c.get(key)} multi-token-prediction layer(s) not loaded ({key})")
    return notes


def _vision_tower(vision: Mapping, text_hidden: int) -> int:
    """A ViT image encoder and its projector, approximately (blocks dominate: 4h² + 2hi).

    Multimodal checkpoints load it with the language model, so it occupies memory; it adds
    nothing to the per-token decode cost."""

    def num(key: str, default: int = 0, *alternatives: str) -> int:
        for name in (key, *alternatives):
            if vision.get(name) is not None:
                return whole(f"vision_config.{name}", vision[name], 0)
        return default

    h = num("hidden_size", 0, "vt_hidden_size")  # vt_*: Kimi K2.5's MoonViT
    if not h:
        return 0
    width = num("intermediate_size", 4 * h, "vt_intermediate_size")
    depth = num("depth", 0, "num_hidden_layers", "vt_num_hidden_layers")
    patch = num("patch_size", 14) or 1
    channels = num("in_channels", 3, "num_channels")
    temporal = num("temporal_patch_size", 1)
    positions = num("num_position_embeddings") or (num("image_size") // patch) ** 2
    # SiLU towers (Pixtral, Qwen2.5-VL) gate their MLP: three matrices; GELU ones (SigLIP,
    # CLIP, Llama 4's) have two
    matrices = 3 if str(vision.get("hidden_act", "")).lower() in ("silu", "swish") else 2
    blocks = depth * (4 * h * h + matrices * h * width + 9 * h + width)
    embeddings = channels * temporal * patch * patch * h + positions * h
    merge = num("spatial_merge_size", 1)
    out = num("out_hidden_size", text_hidden)
    merged = h * merge * merge
    projector = merged * merged + merged * out if merge > 1 else h * out
    return blocks + embeddings + projector


def _max_context(c: ConfigValues) -> int | None:
    """The longest context vLLM accepts without ``VLLM_ALLOW_LONG_MAX_MODEL_LEN``, after
    vLLM's ``_get_and_verify_max_len`` (vllm/config/model.py): ``max_position_embeddings``,
    times the rope-scaling ``factor`` for every rope type but "su", "longrope" and "llama3"
    (whose max_position_embeddings already includes it), starting from
    ``original_max_position_embeddings`` for "yarn"; Gemma 3's scaling is not applied."""
    if not c.has("max_position_embeddings"):
        return None
    longest = c.int("max_position_embeddings")
    scaling = c.get("rope_scaling")
    if isinstance(scaling, Mapping) and not c.family.startswith("gemma3"):
        kind = scaling.get("rope_type", scaling.get("type"))
        factor = scaling.get("factor")
        if kind not in ("su", "longrope", "llama3", "default", None) and factor is not None:
            if isinstance(factor, bool) or not isinstance(factor, int | float):
                raise ConfigError(f"config.json rope_scaling.factor is not a number: {factor!r}")
            if not math.isfinite(factor) or not 0 < factor <= 1e6:
                raise ConfigError(f"config.json rope_scaling.factor is out of range: {factor!r}")
            base = scaling.get("original_max_position_embeddings") if kind == "yarn" else None
            key = "rope_scaling.original_max_position_embeddings"
            start = whole(key, base, maximum=BOUNDS["max_position_embeddings"]) if base else longest
            longest = max(longest if kind != "yarn" else 0, int(start * max(factor, 1.0)))
    return longest


def _architecture(
    c: ConfigValues,
    tally: Tally,
    *,
    layers: int,
    hidden: int,
    vocab: int,
    kv_layers: int,
    cached: Attention | None,
    state: int,
    moe: Moe | None,
    moe_layers: int,
    width: int,
    notes: list[str],
    window_layers: int = 0,
    window: int | None = None,
) -> Architecture:
    groups = tuple(
        TensorGroup(k, tally.total[k], tally.active[k], tally.rows[k]) for k in sorted(tally.total)
    )
    total = sum(g.parameters for g in groups)
    if total > MAX_PARAMETERS:
        raise ConfigError(
            f"config.json describes {total:.3g} parameters, above {MAX_PARAMETERS:.0e} "
            "(500× the largest published model); check hidden_size, num_hidden_layers, "
            "vocab_size and the expert counts"
        )
    ssm_dtype = str(c.get("mamba_ssm_dtype") or c.get("mamba_ssm_cache_dtype") or "")
    heads = c.int("num_attention_heads") if c.has("num_attention_heads") else 0
    return Architecture(
        model_type=c.family,
        groups=groups,
        layers=layers,
        hidden_size=hidden,
        vocab_size=vocab,
        kv_layers=kv_layers if cached else 0,
        window_layers=window_layers if cached else 0,
        sliding_window=window if cached and window_layers else None,
        kv_values_per_token=cached.kv_values if cached else 0,
        kv_heads=cached.kv_heads if cached else 1,
        mla=bool(cached and cached.mla),
        attention_flops_per_context_token=cached.flops_per_context_token if cached else 0,
        state_values_per_sequence=state,
        state_bytes_per_value=4 if "32" in ssm_dtype else 2,
        experts=moe.experts if moe else 0,
        experts_per_token=moe.per_token if moe else 0,
        moe_layers=moe_layers,
        max_intermediate_size=max(width, moe.width * moe.per_token if moe else 0),
        attention_heads=heads,
        max_context_tokens=_max_context(c),
        notes=tuple(notes),
    )


KNOWN_FAMILIES = frozenset(FAMILY_RULES)
"""model_types whose rules are known (``family_rules.FAMILY_RULES``); others are sized from the
standard fields alone, and say so."""


def architecture_from_config(config: Mapping) -> Architecture:
    """Read a Hugging Face config.json (already parsed) into an ``Architecture``.

    Raises ``ConfigError`` naming the field for a config that cannot be sized."""
    if not isinstance(config, Mapping):
        raise ConfigError("config.json must be a JSON object")
    model_type = config.get("model_type")
    text = config.get("text_config") or config.get("llm_config") or {}
    text_type = text.get("model_type") if isinstance(text, Mapping) else None
    for where, value in (("model_type", model_type), ("text_config.model_type", text_type)):
        if value is not None and not isinstance(value, str):
            raise ConfigError(f"config.json {where} must be a string, not {value!r}")
    family, rules = rules_for(model_type, text_type)
    name = str(model_type or text_type or "unknown")
    c = ConfigValues(config, family or name)
    if c.has("hybrid_override_pattern"):
        missing = [k for k in ("hidden_size", "vocab_size") if not c.has(k)]
    else:
        missing = [k for k in STANDARD_FIELDS if not c.has(k)]
    if missing:
        raise ConfigError(
            f"config.json (model_type {model_type!r}) has no {', '.join(missing)}: a decoder "
            "config names hidden_size, num_hidden_layers, num_attention_heads and vocab_size; "
            "for another model give spec.model.parameters (and activeParameters for MoE)"
        )
    if c.has("block_configs"):  # Nemotron-NAS: every layer its own shape, not the fields'
        raise ConfigError(
            "config.json has per-layer block_configs (Nemotron-NAS), which the standard fields "
            "do not describe; give spec.model.parameters"
        )
    reader = _nemotron_h if c.has("hybrid_override_pattern") else _standard
    arch = reader(c, rules or STANDARD)
    if rules is None:
        note = f"model_type {name!r} sized from standard fields (no family rules)"
        arch = replace(arch, notes=(note, *arch.notes))
    return arch


def architecture_from_parameters(
    parameters: float, active_parameters: float | None = None
) -> Architecture:
    """A Llama-shaped stand-in when only parameter counts are known.

    Assumes a dense decoder with 12·L·h² parameters per model, a width-to-depth ratio
    h = 128·L (Llama-3-8B: 4096 / 32) and a KV width of h/4 (grouped-query attention with 4
    query heads per KV head). That overestimates the KV cache of models with wider groups
    (Llama-3-70B uses 8): a conservative error, which the note says."""
    for name, value in (("parameters", parameters), ("activeParameters", active_parameters)):
        if value is not None and not (isinstance(value, int | float) and math.isfinite(value)):
            raise ConfigError(f"spec.model.{name} must be a finite number, not {value!r}")
        if value is not None and value > MAX_PARAMETERS:
            raise ConfigError(
                f"spec.model.{name} is {value:.3g}, above {MAX_PARAMETERS:.0e} "
                "(500× the largest published model)"
            )
    total = int(parameters)
    active = int(active_parameters or parameters)
    if total <= 0 or active <= 0 or active > total:
        raise ConfigError("parameters must be positive and activeParameters ≤ parameters")
    hidden = max(256, round((total * 128 / 12) ** (1 / 3)))
    layers = max(1, round(hidden / 128))
    head_dim = 128
    kv_heads = max(1, hidden // 4 // head_dim)
    return Architecture(
        model_type="parameters",
        groups=(TensorGroup("mlp", total, active),),
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

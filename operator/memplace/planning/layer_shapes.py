"""The parameters of each kind of decoder block, and what each caches per sequence.

Each function adds one block's tensors to a ``Tally`` (parameters per category, so quantisers
can leave norms and embeddings in 16 bits) and returns what the block caches. Shapes follow the
Hugging Face modelling code of the family named in each docstring; cache shapes follow vLLM's
(``MambaStateShapeCalculator`` for Mamba-1/2 and linear attention: conv state
(conv channels × (kernel − 1)) plus the recurrent state).
"""

from __future__ import annotations

from dataclasses import dataclass

from .config_values import ConfigError, ConfigValues

__all__ = [
    "Attention",
    "Moe",
    "Tally",
    "attention",
    "gated_deltanet",
    "lightning_attention",
    "linear",
    "mamba1",
    "mamba2",
    "mla_attention",
    "mlp",
]


class Tally:
    """Accumulates parameters per category; ``active`` defaults to ``total``."""

    def __init__(self) -> None:
        self.total: dict[str, int] = {}
        self.active: dict[str, int] = {}
        self.rows: dict[str, int] = {}

    def add(self, category: str, total: int, active: int | None = None, rows: int = 0) -> None:
        self.total[category] = self.total.get(category, 0) + total
        self.active[category] = self.active.get(category, 0) + (total if active is None else active)
        self.rows[category] = self.rows.get(category, 0) + rows


def linear(tally: Tally, category: str, n_in: int, n_out: int, bias: bool = False) -> None:
    tally.add(category, n_in * n_out, rows=n_out)
    if bias:
        tally.add("other", n_out)


@dataclass(frozen=True)
class Attention:
    """What one softmax-attention layer caches per token, and its FLOPs per cached token."""

    kv_values: int
    kv_heads: int
    flops_per_context_token: int
    mla: bool = False


def heads_of(c: ConfigValues, h: int) -> tuple[int, int, int]:
    """(query heads, KV heads, head dim), validated: KV heads divide the query heads, and
    without ``head_dim`` the hidden size divides evenly into heads."""
    heads = c.int("num_attention_heads")
    kv_heads = c.int("num_key_value_heads", heads)
    if heads % kv_heads:
        raise ConfigError(
            f"config.json num_attention_heads ({heads}) is not divisible by "
            f"num_key_value_heads ({kv_heads})"
        )
    head_dim = c.int("head_dim", 0, minimum=0) or c.int("attention_head_dim", 0, minimum=0)
    if not head_dim:
        if h % heads:
            raise ConfigError(
                f"config.json hidden_size ({h}) is not divisible by num_attention_heads "
                f"({heads}) and there is no head_dim"
            )
        head_dim = h // heads
    return heads, kv_heads, head_dim


def attention(
    c: ConfigValues,
    tally: Tally,
    h: int,
    *,
    qkv_bias: bool = False,
    o_bias: bool = False,
    gated: bool = False,
    qk_norm: str = "",
) -> Attention:
    """Multi-head / grouped-query attention (Llama and most others; Phi-3's fused qkv_proj has
    the same shape). ``qk_norm``: "" none, "head" (one weight per head dim: Qwen3, Gemma 3,
    GLM-4.5), "all" (across all heads: OLMo-2, MiniMax-M2)."""
    heads, kv_heads, head_dim = heads_of(c, h)
    linear(tally, "attention", h, heads * head_dim * (2 if gated else 1), qkv_bias)
    linear(tally, "attention", h, kv_heads * head_dim, qkv_bias)
    linear(tally, "attention", h, kv_heads * head_dim, qkv_bias)
    linear(tally, "attention", heads * head_dim, h, o_bias)
    if qk_norm == "head":
        tally.add("norms", 2 * head_dim)
    elif qk_norm == "all":
        tally.add("norms", (heads + kv_heads) * head_dim)
    return Attention(2 * kv_heads * head_dim, kv_heads, 4 * heads * head_dim)


def mla_attention(c: ConfigValues, tally: Tally, h: int) -> Attention:
    """DeepSeek's multi-head latent attention (DeepSeek-V2/V3, Kimi-K2): the cache holds one
    latent + rope key per token. DeepSeek-V2 (not Lite) has ``q_lora_rank`` 1536; V2-Lite has
    null (a plain q_proj).

    vLLM caches ``kv_lora_rank + qk_rope_head_dim`` values (576 for DeepSeek-V3) per token per
    layer and decodes with the absorbed weights, so attention reads the latent once per head."""
    heads = c.int("num_attention_heads")
    q_rank = c.int("q_lora_rank", 0, minimum=0)
    kv_rank = c.int("kv_lora_rank")
    nope, rope, v = c.int("qk_nope_head_dim"), c.int("qk_rope_head_dim"), c.int("v_head_dim")
    if q_rank:
        linear(tally, "attention", h, q_rank)
        tally.add("norms", q_rank)
        linear(tally, "attention", q_rank, heads * (nope + rope))
    else:
        linear(tally, "attention", h, heads * (nope + rope))
    linear(tally, "attention", h, kv_rank + rope)
    tally.add("norms", kv_rank)
    linear(tally, "attention", kv_rank, heads * (nope + v))
    linear(tally, "attention", heads * v, h)
    return Attention(kv_rank + rope, 1, 2 * heads * (2 * kv_rank + rope), mla=True)


def gated_deltanet(c: ConfigValues, tally: Tally, h: int) -> int:
    """Qwen3-Next / Qwen3.5 linear attention; returns state values per sequence for the layer.

    State = one (key dim × value dim) matrix per value head, plus the causal-conv tail
    (conv width − 1 positions of the q, k, v channels)."""
    nk, dk = c.int("linear_num_key_heads"), c.int("linear_key_head_dim")
    nv, dv = c.int("linear_num_value_heads"), c.int("linear_value_head_dim")
    kernel = c.int("linear_conv_kernel_dim", 4)
    key_dim, value_dim = nk * dk, nv * dv
    conv_dim = 2 * key_dim + value_dim
    linear(tally, "linear_attention", h, 2 * key_dim + 2 * value_dim)  # q, k, v, z
    linear(tally, "linear_attention", h, 2 * nv)  # b, a (gates)
    tally.add("other", conv_dim * kernel + 2 * nv)  # conv1d, A_log, dt_bias
    tally.add("norms", dv)
    linear(tally, "linear_attention", value_dim, h)
    return nv * dk * dv + conv_dim * (kernel - 1)


def lightning_attention(c: ConfigValues, tally: Tally, h: int) -> int:
    """MiniMax-Text-01's lightning (linear) attention: fused qkv, an output gate, a norm and the
    output projection (``MiniMaxText01LinearAttention``); the state is one head_dim × head_dim
    matrix per head (vLLM ``MambaStateShapeCalculator.linear_attention_state_shape``)."""
    heads, _, head_dim = heads_of(c, h)
    inner = heads * head_dim
    linear(tally, "linear_attention", h, 3 * inner)
    linear(tally, "linear_attention", h, inner)  # output gate
    tally.add("norms", inner)
    linear(tally, "linear_attention", inner, h)
    return heads * head_dim * head_dim


def mamba1(c: ConfigValues, tally: Tally, h: int) -> int:
    """A Mamba-1 mixer as in Jamba (``JambaMambaMixer``): in_proj h → 2·d_inner, a depthwise conv,
    x_proj → dt_rank + 2·d_state, dt_proj, A (d_inner × d_state), D, out_proj, and Jamba's
    dt/B/C RMSNorms. State (vLLM ``mamba1_state_shape``): conv d_inner × (d_conv − 1) plus
    ssm d_inner × d_state."""
    inner = c.int("mamba_expand", 2) * h
    d_state, d_conv = c.int("mamba_d_state", 16), c.int("mamba_d_conv", 4)
    rank = c.get("mamba_dt_rank", "auto")
    dt_rank = -(-h // 16) if rank == "auto" else c.int("mamba_dt_rank")
    proj_bias = c.flag("mamba_proj_bias")
    linear(tally, "mamba", h, 2 * inner, proj_bias)
    tally.add("other", inner * d_conv + (inner if c.flag("mamba_conv_bias", True) else 0))
    linear(tally, "mamba", inner, dt_rank + 2 * d_state)
    linear(tally, "mamba", dt_rank, inner, True)
    tally.add("other", inner * d_state + inner)  # A_log, D
    tally.add("norms", dt_rank + 2 * d_state)
    linear(tally, "mamba", inner, h, proj_bias)
    return inner * (d_conv - 1) + inner * d_state


@dataclass(frozen=True)
class Mamba2Keys:
    """Where a family keeps its Mamba-2 sizes (Nemotron-H and Falcon-H1 name them differently)."""

    heads: str = "mamba_num_heads"
    head_dim: str = "mamba_head_dim"
    d_state: str = "ssm_state_size"
    groups: str = "n_groups"
    conv: str = "conv_kernel"
    inner: str = ""
    conv_bias: str = "use_conv_bias"
    proj_bias: str = "mamba_proj_bias"
    expand: str = ""
    """Set where the config class defaults the head size to "auto" (d_inner / heads, d_inner =
    expand · hidden): transformers' GraniteMoeHybridConfig and FalconH1Config."""


NEMOTRON_H_MAMBA = Mamba2Keys()
GRANITE_MAMBA = Mamba2Keys(
    "mamba_n_heads",
    "mamba_d_head",
    "mamba_d_state",
    "mamba_n_groups",
    "mamba_d_conv",
    conv_bias="mamba_conv_bias",
    expand="mamba_expand",
)
FALCON_H1_MAMBA = Mamba2Keys(
    "mamba_n_heads",
    "mamba_d_head",
    "mamba_d_state",
    "mamba_n_groups",
    "mamba_d_conv",
    inner="mamba_d_ssm",
    conv_bias="mamba_conv_bias",
    expand="mamba_expand",
)


def mamba2(c: ConfigValues, tally: Tally, h: int, keys: Mamba2Keys = NEMOTRON_H_MAMBA) -> int:
    """A Mamba-2 mixer (Nemotron-H, Granite-4.0-H, Falcon-H1); returns its state per sequence:
    conv (d_inner + 2·groups·d_state) × (kernel − 1) plus ssm heads × head_dim × d_state
    (vLLM ``mamba2_state_shape``)."""
    heads = c.int(keys.heads)
    d_state, groups = c.int(keys.d_state), c.int(keys.groups, 1)
    kernel = c.int(keys.conv, 4)
    inner = c.int(keys.inner) if keys.inner and c.has(keys.inner) else 0
    if keys.expand and c.get(keys.head_dim, "auto") == "auto":
        inner = inner or c.int(keys.expand, 2) * h
        if inner % heads:
            raise ConfigError(
                f"config.json has no {keys.head_dim} and d_inner ({inner}) is not divisible "
                f"by {keys.heads} ({heads})"
            )
        head_dim = inner // heads
    else:
        head_dim = c.int(keys.head_dim)
    inner = inner or heads * head_dim
    if heads * head_dim != inner:
        raise ConfigError(
            f"config.json {keys.heads} × {keys.head_dim} ({heads} × {head_dim}) "
            f"is not {keys.inner} ({inner})"
        )
    conv_dim = inner + 2 * groups * d_state
    proj_bias = c.flag(keys.proj_bias)
    linear(tally, "mamba", h, 2 * inner + 2 * groups * d_state + heads, proj_bias)
    tally.add("other", conv_dim * kernel + (conv_dim if c.flag(keys.conv_bias, True) else 0))
    tally.add("other", 3 * heads)  # A_log, D, dt_bias
    tally.add("norms", inner)
    linear(tally, "mamba", inner, h, proj_bias)
    return heads * head_dim * d_state + conv_dim * (kernel - 1)


def mlp(
    tally: Tally,
    category: str,
    h: int,
    width: int,
    *,
    gated: bool = True,
    bias: bool = False,
    active: bool = True,
) -> None:
    """A feed-forward block: gate, up, down (SwiGLU/GeGLU) or up, down (GELU, ReLU²)."""
    matrices = 3 if gated else 2
    params = matrices * h * width + ((matrices - 1) * width + h if bias else 0)
    tally.add(category, params, params if active else 0, rows=(matrices - 1) * width + h)


@dataclass
class Moe:
    """One MoE block: routed experts (``per_token`` of ``experts`` chosen), a router, and
    optionally shared experts that every token passes through."""

    experts: int
    per_token: int
    width: int
    shared_width: int = 0
    shared_gate: bool = False
    router_bias: bool = False
    expert_bias: bool = False
    gated: bool = True

    def add_layer(self, tally: Tally, h: int) -> None:
        matrices = 3 if self.gated else 2
        per_expert = matrices * h * self.width
        if self.expert_bias:
            per_expert += (matrices - 1) * self.width + h
        tally.add(
            "experts",
            self.experts * per_expert,
            self.per_token * per_expert,
            rows=self.experts * ((matrices - 1) * self.width + h),
        )
        tally.add("moe_router", h * self.experts + (self.experts if self.router_bias else 0))
        if self.shared_width:
            mlp(tally, "shared_experts", h, self.shared_width, gated=self.gated)
            if self.shared_gate:
                tally.add("moe_router", h)

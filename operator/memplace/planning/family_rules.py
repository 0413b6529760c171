"""Where a model family departs from the standard decoder, as data.

Everything not listed here is read from the standard fields (``architecture``). Each entry is
what that family's Hugging Face modelling code does and its config.json does not say: whether
embeddings are tied when the field is absent, which projections carry biases, how many norms a
layer has, whether the MLP is gated, and how ``sliding_window`` is applied.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["FAMILY_RULES", "STANDARD", "Rules", "rules_for"]


@dataclass(frozen=True)
class Rules:
    tied: bool = False
    """Embeddings tied when config.json has no ``tie_word_embeddings`` (the config class's
    default). Unknown families: untied, which counts lm_head (the larger, safe estimate)."""
    qkv_bias: bool = False
    """q, k, v carry biases whatever ``attention_bias`` says (Qwen2, MiMo)."""
    bias_scope: str = "all"
    """What ``attention_bias: true`` adds a bias to: "all" four projections (Llama's
    convention) or "qkv" only (GLM-4's)."""
    qk_norm: str = ""
    """"" none; "head": q/k RMSNorm over head_dim; "all": over all heads; "flag": "head" when
    ``use_qk_norm`` is true."""
    norms_per_layer: int = 2
    norm_bias: bool = False
    """LayerNorm with bias (StarCoder2): each norm holds 2·hidden values."""
    gated_mlp: bool = True
    bias_key: str = "attention_bias"
    """The field that turns on projection biases; ``use_bias`` (StarCoder2) also biases the
    MLP."""
    slides_every_layer: bool = False
    """``sliding_window`` applies to every layer (Mistral's convention)."""
    alternate_sliding: bool = False
    """Even layers slide, odd layers are global (Gemma 2)."""
    dense_width_key: str = "intermediate_size"
    """The field that sizes a dense layer's MLP: Granite-4.0-H's decoder layer always has a
    ``shared_mlp`` of ``shared_intermediate_size`` and adds experts only when
    ``num_local_experts`` > 0 (``GraniteMoeHybridDecoderLayer``)."""
    gated_attention: bool = False
    mla: bool = False
    llama4: bool = False
    """Chunked local attention on rope layers, global NoPE layers, a shared expert per MoE
    layer, and dense layers of ``intermediate_size_mlp``."""


STANDARD = Rules()

FAMILY_RULES: dict[str, Rules] = {
    "llama": STANDARD,
    "mistral": Rules(slides_every_layer=True),
    "mixtral": Rules(slides_every_layer=True),
    "qwen2": Rules(qkv_bias=True),
    "qwen2_moe": Rules(qkv_bias=True),
    "qwen3": Rules(qk_norm="head"),
    "qwen3_moe": Rules(qk_norm="head"),
    "qwen3_next": Rules(qk_norm="head", gated_attention=True),
    "qwen3_5": Rules(qk_norm="head"),
    "qwen3_5_text": Rules(qk_norm="head"),
    "qwen3_5_moe": Rules(qk_norm="head"),
    "qwen3_5_moe_text": Rules(qk_norm="head"),
    "qwen3_vl": Rules(qk_norm="head"),
    "qwen3_vl_text": Rules(qk_norm="head"),
    "mimo": Rules(qkv_bias=True),
    "deepseek_v2": Rules(mla=True),
    "deepseek_v3": Rules(mla=True),
    "kimi_k2": Rules(mla=True),
    "gpt_oss": STANDARD,
    "gemma": Rules(tied=True),
    "gemma2": Rules(tied=True, norms_per_layer=4, alternate_sliding=True),
    "gemma3": Rules(tied=True, norms_per_layer=4, qk_norm="head"),
    "gemma3_text": Rules(tied=True, norms_per_layer=4, qk_norm="head"),
    "nemotron_h": Rules(gated_mlp=False),
    "llama4": Rules(llama4=True),
    "llama4_text": Rules(llama4=True),
    "glm4": Rules(bias_scope="qkv", norms_per_layer=4),
    "glm4_moe": Rules(bias_scope="qkv", qk_norm="flag"),
    "phi3": Rules(slides_every_layer=True),
    "phimoe": Rules(slides_every_layer=True, norm_bias=True),
    "mistral3": STANDARD,
    "granite": STANDARD,
    "granitemoe": STANDARD,
    "granitemoehybrid": Rules(dense_width_key="shared_intermediate_size"),
    "olmo2": Rules(qk_norm="all"),
    "olmoe": Rules(qk_norm="all"),
    "cohere": Rules(tied=True, norms_per_layer=1),
    "cohere2": Rules(tied=True, norms_per_layer=1),
    "falcon_h1": STANDARD,
    "minimax": STANDARD,
    "minimax_m2": Rules(qk_norm="all"),
    "jamba": STANDARD,
    "starcoder2": Rules(
        tied=True,
        norm_bias=True,
        gated_mlp=False,
        bias_key="use_bias",
        slides_every_layer=True,
    ),
}
"""model_type → rules, for every family whose counts are checked against a published figure
(tests/fixtures/configs/published.yaml) or whose layout differs from the standard fields.
Sources: the family's ``modeling_*.py`` in transformers (biases, norms, gating); vLLM's model
file where the cache differs."""


def rules_for(*model_types: str | None) -> tuple[str | None, Rules | None]:
    """The first of ``model_types`` (top level, then ``text_config``'s) that has rules."""
    for model_type in model_types:
        if model_type in FAMILY_RULES:
            return model_type, FAMILY_RULES[model_type]
    return None, None

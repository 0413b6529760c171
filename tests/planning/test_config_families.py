"""Layer layouts and cache shapes of the families that depart from a plain decoder, checked on
their real configs (tests/fixtures/configs): which layers attend, which hold recurrent state
and how much, which carry experts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from memplace.planning.architecture import ConfigError, architecture_from_config

CONFIGS = Path(__file__).parents[1] / "fixtures" / "configs"


def load(name: str) -> dict:
    return json.loads((CONFIGS / name).read_text())


def arch(name: str):
    return architecture_from_config(load(name))


def test_jamba_attends_once_per_eight_layers_and_routes_every_other_layer():
    a = arch("jamba-1.5-mini.json")
    assert a.kv_layers == 4  # layers 4, 12, 20, 28 (attn_layer_period 8, offset 4)
    assert (a.moe_layers, a.experts, a.experts_per_token) == (16, 16, 2)
    # 28 Mamba-1 layers, d_inner 8192: conv 8192 × (4 − 1) + ssm 8192 × 16 (vLLM's shapes)
    assert a.state_values_per_sequence == 28 * (8192 * 3 + 8192 * 16)


def test_llama4_scout_chunks_three_layers_in_four_and_has_a_shared_expert():
    a = arch("llama-4-scout-17b-16e-instruct.json")
    assert (a.kv_layers, a.window_layers, a.sliding_window) == (12, 36, 8192)
    assert a.moe_layers == 48
    assert a.parameters_in("shared_experts") == 48 * 3 * 5120 * 8192
    assert a.parameters_in("vision") > 0


def test_llama4_maverick_interleaves_dense_and_moe_layers():
    a = arch("llama-4-maverick-17b-128e-instruct.json")
    assert a.moe_layers == 24
    assert a.parameters_in("mlp") == 24 * 3 * 5120 * 16384  # intermediate_size_mlp
    assert a.expert_parameters_per_expert == 3 * 5120 * 8192


def test_nemotron_3_nano_reads_moe_blocks_from_the_pattern():
    config = load("nemotron-3-nano-30b-a3b.json")
    pattern = config["hybrid_override_pattern"]
    a = architecture_from_config(config)
    assert (a.moe_layers, a.kv_layers) == (pattern.count("E"), pattern.count("*"))
    assert (a.experts, a.experts_per_token) == (128, 6)
    assert a.expert_parameters_per_expert == 2 * 2688 * 1856  # squared-ReLU: up and down only
    # Mamba-2: ssm 64 heads × 64 × 128 plus conv (4096 + 2 × 8 × 128) × (4 − 1)
    assert a.state_values_per_sequence == pattern.count("M") * (64 * 64 * 128 + 6144 * 3)
    assert a.state_bytes_per_value == 4  # mamba_ssm_cache_dtype float32


def test_falcon_h1_runs_attention_and_mamba_side_by_side_in_every_layer():
    a = arch("falcon-h1-0.5b.json")
    assert a.kv_layers == 36
    assert a.state_values_per_sequence == 36 * (24 * 64 * 128 + (1536 + 2 * 128) * 3)
    assert a.parameters_in("mamba") > 0 and a.parameters_in("attention") > 0


def test_deepseek_v2_lite_has_no_query_compression():
    a = arch("deepseek-v2-lite.json")  # q_lora_rank absent: a plain q_proj
    assert a.mla and a.kv_values_per_token == 512 + 64
    per_layer = 2048 * 16 * 192 + 2048 * 576 + 512 * 16 * 256 + 16 * 128 * 2048
    assert a.parameters_in("attention") == 27 * per_layer
    full = arch("deepseek-v2.json")  # q_lora_rank 1536
    assert full.parameters_in("norms") > 0 and full.kv_values_per_token == 576


def test_phi3_slides_only_when_the_window_is_shorter_than_the_context():
    assert arch("phi-3-mini-4k-instruct.json").window_layers == 32
    long = arch("phi-3.5-mini-instruct.json")  # sliding_window 262144 > 131072 positions
    assert (long.kv_layers, long.window_layers) == (32, 0)


def test_starcoder2_ties_embeddings_and_biases_an_ungated_mlp():
    a = arch("starcoder2-7b.json")
    assert a.parameters_in("lm_head") == 0
    assert a.parameters_in("mlp") == 32 * (2 * 4608 * 18432 + 18432 + 4608)
    assert a.window_layers == 32 and a.sliding_window == 4096


def test_gemma3_text_keeps_five_local_layers_per_global_by_the_class_default():
    a = arch("gemma-3-1b.json")
    assert (a.kv_layers, a.window_layers, a.sliding_window) == (4, 22, 512)


def test_qwen2_moe_has_a_gated_shared_expert():
    a = arch("qwen1.5-moe-a2.7b.json")
    assert a.parameters_in("shared_experts") == 24 * 3 * 2048 * 5632
    assert a.parameters_in("moe_router") == 24 * (2048 * 60 + 2048)


def test_a_multimodal_wrapper_is_read_with_its_text_models_rules():
    wrapped = arch("kimi-k2.5.json")
    assert wrapped.mla and not any("standard fields" in n for n in wrapped.notes)
    assert wrapped.total_parameters == pytest.approx(
        arch("kimi-k2-instruct.json").total_parameters, rel=0.01
    )


@pytest.mark.parametrize("name", ["stablelm-2-zephyr-1.6b.json", "deepseek-v3.2.json"])
def test_families_without_rules_are_sized_from_standard_fields_and_say_so(name):
    a = arch(name)
    assert a.notes[0].endswith("sized from standard fields (no family rules)")
    assert a.total_parameters > 0 and a.kv_layers > 0


def test_the_plan_carries_the_sizing_notes_into_status_estimate():
    """The note is read by people, so it must reach status.estimate (and `memplace plan -o
    json`), not stay on the Architecture; a known family has none."""
    from planning_clusters import l4_nodes

    from memplace.api import ModelDeploymentSpec
    from memplace.planning.discovery import build_cluster
    from memplace.planning.plan import DeploymentRequest, plan_deployment

    cluster = build_cluster(nodes=l4_nodes(1))

    def estimate(config: dict) -> dict:
        spec = ModelDeploymentSpec.model_validate(
            {
                "model": {"name": "m", "config": config},
                "workload": {"contextTokens": 4096, "concurrency": 1},
                "slo": {"timePerOutputTokenMs": 500},
            }
        )
        plan = plan_deployment(DeploymentRequest("ml", "m", spec), cluster)
        assert plan.phase == "Placed", plan.status_fields()
        return plan.status_fields()["estimate"]

    renamed = estimate(load("qwen3-0.6b.json") | {"model_type": "my_qwen"})
    assert renamed["sizingNotes"] == [
        "model_type 'my_qwen' sized from standard fields (no family rules)"
    ]
    assert "sizingNotes" not in estimate(load("qwen3-0.6b.json"))


def test_per_layer_block_configs_are_refused_not_guessed():
    config = load("llama-3.1-70b.json") | {
        "model_type": "nemotron-nas",
        "block_configs": [{"attention": {"n_heads_in_group": 8}, "ffn": {"ffn_mult": 2.0}}],
    }
    with pytest.raises(ConfigError, match="block_configs"):
        architecture_from_config(config)


def test_experts_per_token_above_the_expert_count_is_refused():
    config = load("qwen3-30b-a3b.json") | {"num_experts_per_tok": 129}
    with pytest.raises(ConfigError, match="129 experts per token"):
        architecture_from_config(config)


def test_minimax_text_01_lightning_layers_hold_a_head_dim_square_state_per_head():
    # No verbatim MiniMax-Text-01 config.json was found; this one is built from the MiniMax-01
    # paper (arXiv:2501.08313, Table 2 / section 2): 80 layers, hidden 6144, 64 heads of 128,
    # 8 KV heads, one softmax-attention layer after every 7 lightning layers, 32 experts of
    # 9216, top-2, vocabulary 200,064; 456 B total, 45.9 B activated per token.
    config = {
        "model_type": "minimax",
        "hidden_size": 6144,
        "num_hidden_layers": 80,
        "num_attention_heads": 64,
        "num_key_value_heads": 8,
        "head_dim": 128,
        "intermediate_size": 9216,
        "num_local_experts": 32,
        "num_experts_per_tok": 2,
        "vocab_size": 200064,
        "attn_type_list": ([0] * 7 + [1]) * 10,
    }
    a = architecture_from_config(config)
    assert a.kv_layers == 10
    assert a.state_values_per_sequence == 70 * 64 * 128 * 128
    assert a.total_parameters == pytest.approx(456e9, rel=0.01)
    # the paper's 45.9 B leaves out both embedding tables
    no_tables = a.active_parameters - a.parameters_in("embeddings", "lm_head")
    assert no_tables == pytest.approx(45.9e9, rel=0.01)


def test_a_dense_granite_4_hybrid_sizes_its_mlp_by_the_shared_width():
    # GraniteMoeHybridDecoderLayer: shared_mlp (shared_intermediate_size) always, experts only
    # when num_local_experts > 0; intermediate_size then sizes nothing
    config = {
        "model_type": "granitemoehybrid",
        "hidden_size": 2048,
        "num_hidden_layers": 4,
        "num_attention_heads": 16,
        "num_key_value_heads": 4,
        "intermediate_size": 512,
        "shared_intermediate_size": 8192,
        "num_local_experts": 0,
        "vocab_size": 1000,
        "layer_types": ["attention"] * 4,
    }
    a = architecture_from_config(config)
    assert a.parameters_in("mlp") == 4 * 3 * 2048 * 8192


# IBM's Granite 3.1 model card (README.md of every granite-3.1 hub repository; copied in
# jeremieconte/granite-3.1-1b-a400m-instruct@73154eec21d1) tabulates the four sizes:
# (embedding size, layers, heads, KV heads, MLP hidden size, experts) and the counts
# (# Parameters, # Active parameters). No verbatim config.json of the 8B or 3B model was found;
# these are built from that table over the real 1B config (same tokenizer, vocabulary 49155,
# shared input/output embeddings, as the table says).
GRANITE_31_TABLE = {  # shape, (# Parameters, # Active), each ± half its last printed digit
    "8b": ((4096, 40, 32, 8, 12800, 0), (8.1e9, 0.01), (8.1e9, 0.01)),
    "3b-a800m": ((1536, 32, 24, 8, 512, 40), (3.3e9, 0.05 / 3.3), (0.8e9, 0.05 / 0.8)),
    "2b": ((2048, 40, 32, 8, 8192, 0), (2.5e9, 0.05 / 2.5), (2.5e9, 0.05 / 2.5)),
}


@pytest.mark.parametrize("size", sorted(GRANITE_31_TABLE))
def test_granite_3_1_sizes_from_ibms_architecture_table_match_its_counts(size):
    (hidden, layers, heads, kv_heads, width, experts), total, active = GRANITE_31_TABLE[size]
    config = load("granite-3.1-1b-a400m-instruct.json") | {
        "hidden_size": hidden,
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "num_key_value_heads": kv_heads,
        "intermediate_size": width,
    }
    if experts:
        config["num_local_experts"] = experts
    else:  # the dense sizes are GraniteForCausalLM
        config = {k: v for k, v in config.items() if "expert" not in k} | {"model_type": "granite"}
    a = architecture_from_config(config)
    assert a.parameters_in("lm_head") == 0  # shared input/output embeddings
    assert a.total_parameters == pytest.approx(total[0], rel=total[1])
    # The card's dense "active" is the total; its MoE "active" leaves the embedding table out
    # (3B-A800M: 807 M besides it, 883 M with it, outside the one-digit 800M)
    counted = a.active_parameters - (a.parameters_in("embeddings") if experts else 0)
    assert counted == pytest.approx(active[0], rel=active[1])


def test_phimoe_biases_every_projection_and_lm_head_and_attends_over_the_whole_context():
    a = arch("phi-3.5-moe-instruct.json")
    assert (a.kv_layers, a.window_layers) == (32, 0)  # sliding_window 131072 = the context
    # q, o 4096 and k, v 1024 biases per layer (attention_bias), plus lm_head's (lm_head_bias)
    assert a.parameters_in("other") == 32 * (4096 + 1024 + 1024 + 4096) + 32064
    assert a.parameters_in("norms") == (2 * 32 + 1) * 2 * 4096  # LayerNorm weight and bias
    assert (a.experts, a.experts_per_token, a.moe_layers) == (16, 2, 32)


def test_granite_4_h_small_from_its_published_fields_counts_32b_total_9b_active():
    # No verbatim config.json was found. These are the fields of ibm-granite/granite-4.0-h-small's
    # config.json as quoted ("relevant fields only") in code-index file id 57624389648 (repository
    # not named), with its layer_types tally (36 mamba, 4 attention); the attention layers sit at
    # 5, 15, 25, 35 (9 Mamba-2 blocks per attention block, IBM's Granite 4.0 announcement).
    # mamba_n_heads and mamba_n_groups are GraniteMoeHybridConfig's defaults (128, 1), which
    # mamba_d_head "auto" turns into 2 · 4096 / 128 = 64. IBM's card: 32B total, 9B active.
    config = {
        "model_type": "granitemoehybrid",
        "hidden_size": 4096,
        "num_hidden_layers": 40,
        "num_attention_heads": 32,
        "num_key_value_heads": 8,
        "num_local_experts": 72,
        "num_experts_per_tok": 10,
        "shared_intermediate_size": 1536,
        "intermediate_size": 768,
        "mamba_d_state": 128,
        "mamba_d_conv": 4,
        "mamba_expand": 2,
        "mamba_n_heads": 128,
        "tie_word_embeddings": True,
        "vocab_size": 100352,
        "layer_types": ["attention" if i % 10 == 5 else "mamba" for i in range(40)],
    }
    a = architecture_from_config(config)
    assert (a.kv_layers, a.moe_layers, a.experts, a.experts_per_token) == (4, 40, 72, 10)
    assert a.parameters_in("shared_experts") == 40 * 3 * 4096 * 1536  # one per layer, always on
    assert a.total_parameters == pytest.approx(32e9, rel=0.5 / 32)
    assert a.active_parameters == pytest.approx(9e9, rel=0.5 / 9)
    # 36 Mamba-2 layers: ssm 128 heads × 64 × 128 plus conv (8192 + 2 × 128) × (4 − 1)
    assert a.state_values_per_sequence == 36 * (128 * 64 * 128 + (8192 + 256) * 3)


def test_an_auto_mamba_head_size_that_does_not_divide_d_inner_is_refused():
    config = {
        "model_type": "granitemoehybrid",
        "hidden_size": 4096,
        "num_hidden_layers": 2,
        "num_attention_heads": 32,
        "shared_intermediate_size": 1024,
        "num_local_experts": 0,
        "vocab_size": 1000,
        "mamba_n_heads": 100,
        "mamba_d_head": "auto",
        "mamba_d_state": 128,
        "layer_types": ["mamba", "attention"],
    }
    with pytest.raises(ConfigError, match="not divisible by mamba_n_heads"):
        architecture_from_config(config)


# Cohere2 (Command R7B, Command A): no verbatim config.json was found. The shapes below are the
# hub configs' as converted into a preset table in code-index file id 56084358836 (COHERE2_CONFIG:
# vocab 256000, tied embeddings, sliding window 4096 with sliding_window_pattern 4), renamed to
# Hugging Face's fields; code-index file id 56489348127 tallies the same hub files' layers as
# 24 sliding + 8 full (R7B) and 48 + 16 (Command A). Published: Command A "111 billion
# parameters" (huggingface.co/CohereForAI/c4ai-command-a-03-2025 model card); R7B "a 7B billion
# parameter model" (transformers docs/source/en/model_doc/cohere2.md).
COHERE2_SHAPES = {  # hidden, layers, heads, MLP
    "c4ai-command-r7b-12-2024": (4096, 32, 32, 14336),
    "c4ai-command-a-03-2025": (12288, 64, 96, 36864),
}


def cohere2(name: str) -> dict:
    hidden, layers, heads, width = COHERE2_SHAPES[name]
    return {
        "model_type": "cohere2",
        "hidden_size": hidden,
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "num_key_value_heads": 8,
        "head_dim": 128,
        "intermediate_size": width,
        "vocab_size": 256000,
        "tie_word_embeddings": True,
        "sliding_window": 4096,
        "sliding_window_pattern": 4,
        "max_position_embeddings": 131072,
    }


@pytest.mark.parametrize("name", sorted(COHERE2_SHAPES))
def test_cohere2_slides_three_layers_in_four(name):
    a = architecture_from_config(cohere2(name))
    layers = COHERE2_SHAPES[name][1]
    assert (a.kv_layers, a.window_layers, a.sliding_window) == (layers // 4, layers * 3 // 4, 4096)
    # one LayerNorm (weight only) per parallel attention+MLP block, plus the final one
    assert a.parameters_in("norms") == (layers + 1) * COHERE2_SHAPES[name][0]
    assert a.parameters_in("lm_head", "other") == 0  # tied, no biases


def test_command_a_counts_111b_and_r7b_7b_besides_its_embedding_table():
    assert architecture_from_config(cohere2("c4ai-command-a-03-2025")).total_parameters == (
        pytest.approx(111e9, rel=0.01)
    )
    r7b = architecture_from_config(cohere2("c4ai-command-r7b-12-2024"))
    # 8.03 B with the 1.05 B table (256000 × 4096); Cohere's "7B" is the rest
    assert r7b.total_parameters - r7b.parameters_in("embeddings") == pytest.approx(7e9, rel=0.01)


def test_glm4_0414_biases_q_k_v_only_and_has_four_norms_per_layer():
    # GLM-4-9B-0414's shape: transformers' Glm4Config defaults (huggingface/transformers@008e5743
    # src/transformers/models/glm4/configuration_glm4.py, "glm-4-9b-chat style"), the same values
    # as the hub config quoted in code-index file id 56014767049. Glm4DecoderLayer: input,
    # post_self_attn, post_attention, post_mlp RMSNorms; q/k/v biased, o_proj not; fused
    # gate_up_proj (2 × 13696 rows) and down_proj. Published: GLM-4-9B-0414, "9B".
    config = {
        "model_type": "glm4",
        "vocab_size": 151552,
        "hidden_size": 4096,
        "intermediate_size": 13696,
        "num_hidden_layers": 40,
        "num_attention_heads": 32,
        "num_key_value_heads": 2,
        "head_dim": 128,
        "tie_word_embeddings": False,
        "attention_bias": True,
        "partial_rotary_factor": 0.5,
        "max_position_embeddings": 131072,
    }
    a = architecture_from_config(config)
    assert a.parameters_in("other") == 40 * (4096 + 256 + 256)
    assert a.parameters_in("norms") == (4 * 40 + 1) * 4096
    assert a.parameters_in("mlp") == 40 * 3 * 4096 * 13696
    assert a.kv_values_per_token == 2 * 2 * 128  # partial rotary changes no cache shape
    assert a.total_parameters == pytest.approx(9e9, rel=0.5 / 9)


def test_the_shortened_minimax_m2_5_copy_sizes_as_the_full_file_does():
    short, full = arch("minimax-m2.5.json"), arch("minimax-m2.5-nvfp4.json")
    assert load("minimax-m2.5-nvfp4.json")["attn_type_list"] == [1] * 62  # all softmax attention
    assert (full.total_parameters, full.active_parameters, full.kv_layers) == (
        short.total_parameters,
        short.active_parameters,
        short.kv_layers,
    )
    assert full.kv_layers == 62 and full.state_values_per_sequence == 0

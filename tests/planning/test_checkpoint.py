"""Reading a checkpoint from its safetensors headers: bytes by group, native format, skips.

The headers are the fake hub's (tests/fixtures/hub, README there says which are real); these
tests read them from disk, without HTTP (tests/operator/test_sources.py does the HTTP part).
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest

from memplace.planning.architecture import architecture_from_config
from memplace.planning.catalogue import default_catalogue
from memplace.planning.checkpoint import (
    CheckpointError,
    format_from_quantization_config,
    header_length,
    parse_header,
    parse_index,
    read_checkpoint,
    tensor_group,
    with_checkpoint,
)
from memplace.planning.memory import estimate_memory, weights_bytes, weights_source

HUB = Path(__file__).parents[1] / "fixtures" / "hub"
CATALOGUE = default_catalogue()


def load(repo: str):
    folder = HUB / repo
    config = json.loads((folder / "config.json").read_text())
    index_file = folder / "model.safetensors.index.json"
    index = parse_index(json.loads(index_file.read_text())) if index_file.exists() else None
    headers = {
        p.name.removesuffix(".header.json"): parse_header(p.read_bytes(), p.name)
        for p in sorted(folder.glob("*.header.json"))
    }
    return config, index, read_checkpoint(headers, config, index=index)


def test_bf16_qwen3_matches_its_real_tensor_list_and_skips_the_tied_lm_head():
    config, _, checkpoint = load("Qwen/Qwen3-0.6B")
    # 311 tensors, 751,632,384 values in bf16, as the published tensor list sums them
    assert checkpoint.tensors == 311
    assert checkpoint.stored_bytes == 751_632_384 * 2
    assert checkpoint.precision == "bf16" and checkpoint.native is None
    # the file carries lm_head.weight, config.json ties it: vLLM loads the embeddings only
    assert dict(checkpoint.skipped) == {"lm_head tied to the embeddings": 151_936 * 1024 * 2}
    assert checkpoint.loaded_bytes == checkpoint.stored_bytes - 151_936 * 1024 * 2
    arch = architecture_from_config(config)
    assert checkpoint.loaded_bytes == weights_bytes(arch, CATALOGUE.precisions["bf16"])


def test_fp8_block_scales_count_with_the_weights_they_scale():
    _, _, checkpoint = load("constructed/Qwen3-0.6B-FP8")
    assert checkpoint.precision == "fp8" and checkpoint.format.method == "fp8"
    assert checkpoint.format.group_size == 128
    groups = dict(checkpoint.loaded_bytes_by_group)
    # q_proj 2048×1024 e4m3 + 16×8 fp32 block scales, and so on for k, v, o, per layer
    attention = (2048 * 1024 + 1024 * 1024 * 2 + 1024 * 2048) + 4 * (16 * 8 + 8 * 8 * 2 + 8 * 16)
    assert groups["attention"] == 28 * attention
    assert dict(checkpoint.bytes_by_dtype)["F32"] == 28 * 4 * (128 + 128 + 128 + 3 * 24 * 8)


def test_bitsandbytes_int8_sums_to_the_real_index_total():
    _, index, checkpoint = load("jeevanchaps/Meta-Llama3.1-8B-Instruct-assessment")
    assert index is not None and index.total_size == 9_086_705_888
    assert checkpoint.stored_bytes == index.total_size == checkpoint.index_total_size
    assert (checkpoint.precision, checkpoint.format.method) == ("int8", "bitsandbytes")
    assert checkpoint.shards == 2 and checkpoint.skipped == ()


def test_gptq_int4_packs_weights_and_zeros_into_int32():
    config, _, checkpoint = load("constructed/Llama-3.1-8B-Instruct-GPTQ-INT4")
    assert (checkpoint.precision, checkpoint.format.group_size) == ("int4", 128)
    by_dtype = dict(checkpoint.bytes_by_dtype)
    linear = 32 * (2 * 4096 * 4096 + 2 * 1024 * 4096 + 3 * 14336 * 4096)
    # qweight: half a byte per weight; qzeros: half a byte per group of 128 per row; g_idx
    g_idx = 32 * 4 * (4 * 4096 + 2 * 4096 + 14336)
    assert by_dtype["I32"] == linear // 2 + linear // 128 // 2 + g_idx
    assert by_dtype["F16"] - 2 * 128_256 * 4096 * 2 - 65 * 4096 * 2 == linear // 128 * 2
    arch = architecture_from_config(config)
    computed = weights_bytes(arch, CATALOGUE.precisions["int4"])
    assert checkpoint.loaded_bytes < computed  # the estimate charges 16-bit zero points


def test_mxfp4_gpt_oss_blocks_and_scales_sum_to_the_real_total():
    _, index, checkpoint = load("openai/gpt-oss-20b")
    assert index is not None and checkpoint.stored_bytes == index.total_size == 13_761_264_768
    assert checkpoint.precision == "mxfp4" and checkpoint.native == "mxfp4"
    groups = dict(checkpoint.loaded_bytes_by_group)
    # 24 layers × 32 experts × (5760 + 2880) rows × 90 blocks × (16 bytes + 1 scale) + biases
    assert groups["experts"] == 24 * 32 * (5760 + 2880) * (90 * 17 + 2)
    assert groups["moe_router"] == 24 * (32 * 2880 + 32) * 2


def test_nvfp4_is_read_from_modelopt_config_and_its_packed_dtypes():
    """A synthetic two-tensor header in modelopt's NVFP4 layout (uint8 weight with two 4-bit
    values per byte, an fp8 scale per 16 values, fp32 global scales)."""
    tensors = {
        "model.layers.0.mlp.down_proj.weight": ("U8", [64, 32]),
        "model.layers.0.mlp.down_proj.weight_scale": ("F8_E4M3", [64, 4]),
        "model.layers.0.mlp.down_proj.weight_scale_2": ("F32", []),
        "model.layers.0.mlp.down_proj.input_scale": ("F32", []),
    }
    raw = _header(tensors)
    config = {"quantization_config": {"quant_method": "modelopt", "quant_algo": "NVFP4"}}
    checkpoint = read_checkpoint({"model.safetensors": parse_header(raw, "x")}, config)
    assert checkpoint.precision == "nvfp4"
    assert dict(checkpoint.loaded_bytes_by_group) == {"mlp": 64 * 32 + 64 * 4 + 4 + 4}
    # without config.json's word, the dtypes say the same
    assert read_checkpoint({"m": parse_header(raw, "x")}).precision == "nvfp4"


@pytest.mark.parametrize(
    ("quant", "expected"),
    [
        ({"quant_method": "gptq", "bits": 4, "group_size": 128}, ("int4", 128)),
        ({"quant_method": "awq", "bits": 4, "group_size": 64}, ("int4", 64)),
        ({"quant_method": "gptq", "bits": 8, "group_size": 128}, ("int8", 128)),
        ({"quant_method": "fp8", "fmt": "e4m3", "weight_block_size": [128, 128]}, ("fp8", 128)),
        ({"quant_method": "mxfp4"}, ("mxfp4", 32)),
        ({"quant_method": "bitsandbytes", "load_in_4bit": True}, ("int4", 64)),
        ({"quant_method": "modelopt", "quant_algo": "FP8"}, ("fp8", None)),
        (
            {
                "quant_method": "compressed-tensors",
                "format": "nvfp4-pack-quantized",
                "config_groups": {"group_0": {"weights": {"num_bits": 4, "type": "float"}}},
            },
            ("nvfp4", 16),
        ),
        (
            {
                "quant_method": "compressed-tensors",
                "format": "pack-quantized",
                "config_groups": {
                    "group_0": {"weights": {"num_bits": 4, "type": "int", "group_size": 128}}
                },
            },
            ("int4", 128),
        ),
        (
            {
                "quant_method": "compressed-tensors",
                "format": "float-quantized",
                "config_groups": {"group_0": {"weights": {"num_bits": 8, "type": "float"}}},
            },
            ("fp8", None),
        ),
    ],
)
def test_quantization_config_names_the_native_format(quant, expected):
    found = format_from_quantization_config(quant)
    assert found is not None and (found.precision, found.group_size) == expected


def test_unknown_quantization_methods_name_no_format():
    assert format_from_quantization_config({"quant_method": "hqq"}) is None
    assert format_from_quantization_config(None) is None


@pytest.mark.parametrize(
    ("name", "group"),
    [
        ("model.embed_tokens.weight", "embeddings"),
        ("lm_head.weight", "lm_head"),
        ("model.layers.3.input_layernorm.weight", "norms"),
        ("model.layers.3.self_attn.q_proj.qweight", "attention"),
        ("model.layers.3.self_attn.kv_a_proj_with_mqa.weight_scale_inv", "attention"),
        ("model.layers.3.mlp.gate.weight", "moe_router"),
        ("model.layers.3.mlp.gate.e_score_correction_bias", "moe_router"),
        ("model.layers.3.mlp.gate_proj.weight", "mlp"),
        ("model.layers.3.mlp.experts.17.down_proj.weight", "experts"),
        ("model.layers.0.mlp.experts.gate_up_proj_blocks", "experts"),
        ("model.layers.3.mlp.shared_experts.up_proj.weight", "shared_experts"),
        ("model.layers.3.linear_attn.in_proj_qkvz.weight", "linear_attention"),
        ("backbone.layers.0.mixer.A_log", "mamba"),
        ("backbone.layers.0.mixer.in_proj.weight", "mamba"),
        ("backbone.layers.1.mixer.q_proj.weight", "attention"),
        ("model.visual.blocks.0.attn.qkv.weight", "vision"),
        ("vision_tower.vision_model.encoder.layers.0.mlp.fc1.weight", "vision"),
        ("multi_modal_projector.linear_1.weight", "vision"),
        ("mtp.layers.0.mlp.experts.3.up_proj.weight", "mtp"),
    ],
)
def test_tensor_names_map_to_architecture_groups(name, group):
    assert tensor_group(name) == group


def test_layers_beyond_the_config_are_mtp_and_not_loaded():
    """DeepSeek-V3 stores its MTP module as layer 61 of a 61-layer model."""
    assert tensor_group("model.layers.61.mlp.experts.0.up_proj.weight", layers=61) == "mtp"
    tensors = {
        "model.layers.0.mlp.up_proj.weight": ("BF16", [8, 4]),
        "model.layers.1.mlp.up_proj.weight": ("BF16", [8, 4]),
    }
    checkpoint = read_checkpoint(
        {"m": parse_header(_header(tensors), "m")}, {"num_hidden_layers": 1}
    )
    assert checkpoint.loaded_bytes == 64 and dict(checkpoint.skipped) == {
        "MTP layers (loaded only for speculative decoding)": 64
    }


def test_fp32_checkpoints_load_in_16_bits():
    tensors = {"model.layers.0.mlp.up_proj.weight": ("F32", [8, 4])}
    checkpoint = read_checkpoint({"m": parse_header(_header(tensors), "m")})
    assert checkpoint.precision == "bf16"
    assert (checkpoint.stored_bytes, checkpoint.loaded_bytes) == (128, 64)


def test_the_planner_takes_the_checkpoints_bytes_at_its_precision_only():
    config, _, checkpoint = load("openai/gpt-oss-20b")
    arch = architecture_from_config(config)
    published = with_checkpoint(arch, checkpoint)
    mxfp4, bf16 = CATALOGUE.precisions["mxfp4"], CATALOGUE.precisions["bf16"]
    assert weights_bytes(published, mxfp4) == 13_761_264_768
    assert weights_bytes(published, bf16) == weights_bytes(arch, bf16)
    assert weights_source(published, mxfp4, "mxfp4") == "checkpoint"
    assert weights_source(arch, mxfp4, "mxfp4") == "quantizationConfig"
    assert weights_source(arch, bf16, None) == "config"
    kv = CATALOGUE.kv_dtypes["bf16"]
    memory = estimate_memory(published, mxfp4, kv, context_tokens=4096, concurrency=1)
    assert memory.weights_bytes == 13_761_264_768
    assert hash(published) != hash(arch) and published != arch


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"[1]", "not a JSON object"),
        (b"{not json", "not JSON"),
        (b'{"t": {"dtype": "BF16", "shape": [2]}}', "lacks dtype, shape or data_offsets"),
        (b'{"t": {"dtype": "Q4", "shape": [2], "data_offsets": [0, 1]}}', "unknown dtype"),
        (b'{"t": {"dtype": "BF16", "shape": [2], "data_offsets": [0, 3]}}', "holds 3 bytes"),
    ],
)
def test_malformed_headers_say_what_is_wrong(raw, message):
    with pytest.raises(CheckpointError, match=message):
        parse_header(raw, "model.safetensors")


def test_malformed_indexes_and_lengths_are_refused():
    with pytest.raises(CheckpointError, match="no weight_map"):
        parse_index({"metadata": {}})
    with pytest.raises(CheckpointError, match="not a shard file"):
        parse_index({"weight_map": {"a": "../../etc/passwd"}})
    with pytest.raises(CheckpointError, match="8-byte header length"):
        header_length(b"\x01\x02", "x")
    assert header_length(struct.pack("<Q", 1234), "x") == 1234


def test_a_tensor_in_two_shards_is_refused():
    raw = _header({"model.layers.0.mlp.up_proj.weight": ("BF16", [2])})
    with pytest.raises(CheckpointError, match="more than one shard"):
        read_checkpoint({"a": parse_header(raw, "a"), "b": parse_header(raw, "b")})


def _header(tensors: dict[str, tuple[str, list[int]]]) -> bytes:
    bits = {"BF16": 16, "F32": 32, "U8": 8, "F8_E4M3": 8}
    out, at = {}, 0
    for name, (dtype, shape) in tensors.items():
        size = (bits[dtype] * max(1, _prod(shape))) // 8
        out[name] = {"dtype": dtype, "shape": shape, "data_offsets": [at, at + size]}
        at += size
    return json.dumps(out).encode()


def _prod(shape: list[int]) -> int:
    result = 1
    for d in shape:
        result *= d
    return result


# --- the planner -----------------------------------------------------------------------------


def _request(repo: str, with_checkpoint_read: bool, **quality):
    from memplace.api import ModelDeploymentSpec
    from memplace.planning.plan import DeploymentRequest

    config, _, checkpoint = load(repo)
    spec = ModelDeploymentSpec.model_validate(
        {
            "model": {"name": repo, "source": f"hf://{repo}", "config": config},
            "workload": {"contextTokens": 4096, "concurrency": 4},
            "slo": {"timeToFirstTokenMs": 5000, "timePerOutputTokenMs": 200},
            "quality": {"maxLoss": 0.05, **quality},
        }
    )
    checkpoints = {None: checkpoint} if with_checkpoint_read else {}
    return DeploymentRequest("ml", "m", spec, checkpoints=checkpoints), checkpoint


@pytest.fixture
def gpu_cluster():
    from planning_clusters import a100_nodes, h100_nodes, l4_nodes

    from memplace.planning.discovery import build_cluster

    return build_cluster(nodes=l4_nodes(2) + a100_nodes(1) + h100_nodes(1))


def test_a_plan_weighs_the_checkpoint_and_says_so(gpu_cluster):
    from memplace.planning.plan import plan_deployment

    request, checkpoint = _request("openai/gpt-oss-20b", True)
    plan = plan_deployment(request, gpu_cluster)
    assert plan.phase == "Placed" and plan.placement.precision == "mxfp4"
    assert plan.estimate.weights_bytes == checkpoint.loaded_bytes == 13_761_264_768
    assert plan.estimate.weights_source == "checkpoint"
    assert plan.status_fields()["estimate"]["weightsSource"] == "checkpoint"


def test_without_the_checkpoint_the_config_sizes_the_weights_and_says_so(gpu_cluster):
    from memplace.planning.plan import plan_deployment

    request, _ = _request("openai/gpt-oss-20b", False)
    plan = plan_deployment(request, gpu_cluster)
    assert plan.placement.precision == "mxfp4"  # quantization_config still sets the format
    assert plan.estimate.weights_source == "quantizationConfig"
    assert plan.estimate.weights_bytes != 13_761_264_768


def test_a_gptq_checkpoint_serves_as_int4_from_its_quantization_config(gpu_cluster):
    from memplace.planning.plan import plan_deployment

    for read in (True, False):
        request, checkpoint = _request("constructed/Llama-3.1-8B-Instruct-GPTQ-INT4", read)
        plan = plan_deployment(request, gpu_cluster)
        assert plan.placement.precision == "int4"
        expected = "checkpoint" if read else "quantizationConfig"
        assert plan.estimate.weights_source == expected
        assert (plan.estimate.weights_bytes == checkpoint.loaded_bytes) is read


def test_a_16_bit_checkpoint_sizes_only_the_16_bit_candidates(gpu_cluster):
    from memplace.planning.plan import plan_deployment

    bf16, _ = _request("Qwen/Qwen3-0.6B", True, precisions=["bf16"])
    assert plan_deployment(bf16, gpu_cluster).estimate.weights_source == "checkpoint"
    int4, _ = _request("Qwen/Qwen3-0.6B", True, precisions=["int4"])
    assert plan_deployment(int4, gpu_cluster).estimate.weights_source == "config"

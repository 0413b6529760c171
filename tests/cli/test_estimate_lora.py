"""``memplace estimate --lora-rank --max-loras --lora-targets``: vLLM's LoRA reservation on top."""

import json
from pathlib import Path

import pytest

from memplace.cli import main

LLAMA = str(Path(__file__).parents[1] / "fixtures" / "configs" / "llama-3.1-8b.json")
MIB = 1 << 20


def estimate(capsys, *extra):
    assert main(["estimate", LLAMA, "--precision", "bf16", "-o", "json", *extra]) == 0
    return json.loads(capsys.readouterr().out)


def test_lora_slots_are_added_to_the_memory(capsys):
    plain = estimate(capsys)
    lora = estimate(
        capsys,
        "--lora-rank",
        "16",
        "--max-loras",
        "4",
        "--lora-targets",
        "q_proj,k_proj,v_proj,o_proj",
    )
    assert lora["adapterBytesEach"] == 26 * MIB  # rank 16 on q, k, v, o: 13.6 M parameters
    # vLLM reserves every module it wraps for each of the 4 slots: the seven linear ones,
    # 4 × 80 MiB, and Llama's embed_tokens and lm_head, 58.375 MiB (hand-checked in
    # tests/planning/test_adapters.py)
    assert lora["adapterBytes"] == 4 * 80 * MIB + int(58.375 * MIB)
    assert lora["adapterHostBytes"] == 4 * 26 * MIB
    assert lora["totalBytes"] == plain["totalBytes"] + lora["adapterBytes"]


def test_the_rank_rounds_up_to_one_vllm_accepts_and_decode_slows(capsys):
    plain = estimate(capsys, "--gpu", "L4")
    lora = estimate(capsys, "--gpu", "L4", "--lora-rank", "12", "--max-loras", "8")
    assert lora["maxLoraRank"] == 16
    assert lora["timePerOutputTokenMs"] > plain["timePerOutputTokenMs"]


def test_unknown_targets_are_refused(capsys):
    with pytest.raises(SystemExit):
        main(["estimate", LLAMA, "--lora-rank", "8", "--lora-targets", "attn"])
    assert "unknown module attn" in capsys.readouterr().err


def test_an_adapter_the_planner_would_refuse_is_refused_here_too(capsys):
    """estimate runs the planner's adapter_refusal: vLLM v0.11.0 has no LoRA for fused MoE
    experts, so targeting Qwen3-30B-A3B's gate/up experts is an error, not a figure; attention
    targets on the same base are sized."""
    moe = str(Path(LLAMA).with_name("qwen3-30b-a3b.json"))
    args = ["estimate", moe, "--precision", "bf16", "--lora-rank", "16"]
    assert main([*args, "--lora-targets", "gate_proj,up_proj"]) == 2
    assert "no LoRA for fused MoE experts" in capsys.readouterr().err
    assert main([*args, "--lora-targets", "q_proj,v_proj", "-o", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["adapterBytes"] > 0

"""A tensor-parallel size that does not divide the heads is refused, as vLLM refuses it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from planning_clusters import a100_nodes, l4_nodes

from memplace.api import ModelDeploymentSpec
from memplace.planning.architecture import architecture_from_config, architecture_from_parameters
from memplace.planning.discovery import build_cluster
from memplace.planning.feasibility import tensor_parallel_refusal
from memplace.planning.plan import DeploymentRequest, plan_deployment

CONFIGS = Path(__file__).parents[1] / "fixtures" / "configs"


def arch(name: str):
    return architecture_from_config(json.loads((CONFIGS / name).read_text()))


def test_vllm_refuses_three_gpus_for_32_heads_and_accepts_powers_of_two():
    llama = arch("llama-3.1-8b.json")  # 32 query heads, 8 KV heads
    assert "32 attention heads" in tensor_parallel_refusal("vllm", llama, 3)
    assert all(tensor_parallel_refusal("vllm", llama, n) is None for n in (1, 2, 4, 8))


def test_kv_heads_must_split_or_replicate_by_whole_factors():
    # 24 query heads divide by 3 and 6, but 8 KV heads divide neither way by 6
    phi4_mini = arch("phi-4-mini-reasoning.json")
    assert tensor_parallel_refusal("vllm", phi4_mini, 3) is not None
    assert "8 KV heads" in tensor_parallel_refusal("vllm", phi4_mini, 6)


def test_mla_replicates_its_latent_so_only_query_heads_count():
    assert tensor_parallel_refusal("vllm", arch("deepseek-v3.json"), 8) is None


def test_llama_cpp_splits_by_layers_and_a_parameter_count_has_no_heads():
    assert tensor_parallel_refusal("llamacpp", arch("llama-3.1-8b.json"), 3) is None
    assert tensor_parallel_refusal("vllm", architecture_from_parameters(8e9), 3) is None


def _plan(config: dict):
    spec = ModelDeploymentSpec.model_validate(
        {
            "model": {"name": "Qwen/Qwen2.5-7B", "config": config},
            "workload": {"contextTokens": 131072, "concurrency": 40},
            "quality": {"maxLoss": 0.0},
            "placement": {"tiers": ["gpu"]},
        }
    )
    return plan_deployment(DeploymentRequest("ml", "q", spec), build_cluster(nodes=a100_nodes(1)))


def test_the_planner_never_splits_qwen2_5s_28_heads_over_eight_gpus():
    # 40 sequences of 128k need 8 A100s: a shape with 32 heads gets them, Qwen2.5's 28 cannot
    config = json.loads((CONFIGS / "qwen2.5-7b.json").read_text())  # 28 heads, 4 KV heads
    divisible = _plan(config | {"num_attention_heads": 32, "num_key_value_heads": 8})
    assert divisible.phase == "Placed" and divisible.placement.gpus_per_replica == 8
    refused = _plan(config)
    assert refused.phase == "Unschedulable"
    supported = dict(refused.funnel)["supported by hardware and engine"]
    assert supported < dict(divisible.funnel)["supported by hardware and engine"]


@pytest.mark.parametrize("engine", ["vllm", "tgi", "llamacpp"])
def test_the_fast_path_counts_tensor_parallel_refusals_as_the_checks_do(engine):
    # the planner's grouped fast path and every check on every candidate must agree, also
    # for a model (28 heads, 4 KV heads) whose 8-GPU candidates vLLM and TGI refuse
    from memplace.planning.evaluation import _evaluate, _evaluate_all
    from memplace.planning.feasibility import Requirements, check_all, funnel
    from memplace.planning.grouping import _bases
    from memplace.planning.sizing import _variants

    config = json.loads((CONFIGS / "qwen2.5-7b.json").read_text())
    spec = ModelDeploymentSpec.model_validate(
        {
            "model": {"name": "Qwen/Qwen2.5-7B", "config": config},
            "workload": {"contextTokens": 32768, "concurrency": 16, "outputTokensPerSecond": 300},
            "slo": {"timeToFirstTokenMs": 2000, "timePerOutputTokenMs": 80},
            "quality": {"maxLoss": 0.05},
            "runtime": {"engine": engine},
        }
    )
    cluster = build_cluster(nodes=a100_nodes(1) + l4_nodes(1))
    request = DeploymentRequest("ml", "x", spec)
    variants, _ = _variants(request, cluster.memo)
    r = Requirements.from_spec(request.spec)
    shape = _bases(variants, r, cluster)
    kept, _, steps, _ = _evaluate_all(shape, r)
    slow = []
    for g in shape.groups:
        for b in g.members:
            e = _evaluate(b, r, 1, 1, check=False)
            demand = r.demand_tokens_per_second
            e.replicas_for_demand = int(-(-demand // b.tps)) if b.tps else 10**9
            e.rejections = check_all(e, r)
            slow.append(e)
    assert steps[:-1] == funnel(slow)[:-1]
    feasible = {id(e.candidate) for e in slow if e.feasible}
    assert {id(shape.bases[at].candidate) for at, _, _ in kept} == feasible
    refused = [e for e in slow if any("attention heads" in x.message for x in e.rejections)]
    assert bool(refused) == (engine != "llamacpp")
    assert all(e.candidate.gpus == 8 for e in refused)

"""LoRA adapter memory, checked by hand against Llama-3.1-8B's shapes and a real adapter config,
and planning a base with its adapters (properties: more or bigger adapters never cost less
memory; N adapters on one base never cost more than N deployments)."""

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from planning_clusters import a100_nodes, l4_nodes

from memplace.api import ModelAdapterSpec, ModelDeploymentSpec
from memplace.planning.adapters import (
    ALL_TARGETS,
    Adapter,
    LoraSlots,
    adapter_bytes,
    adapter_parameters,
    adapter_refusal,
    decode_slowdown,
    shapes_from_architecture,
    shapes_from_config,
    targets_from_adapter_config,
    vllm_max_lora_rank,
)
from memplace.planning.architecture import architecture_from_config
from memplace.planning.discovery import build_cluster
from memplace.planning.lora import Listed
from memplace.planning.plan import DeploymentRequest, plan_deployment

FIXTURES = Path(__file__).parents[1] / "fixtures"
LLAMA = json.loads((FIXTURES / "configs" / "llama-3.1-8b.json").read_text())
QWEN_MOE = json.loads((FIXTURES / "configs" / "qwen3-30b-a3b.json").read_text())
QWEN_DENSE = json.loads((FIXTURES / "configs" / "qwen2.5-7b.json").read_text())
MIXTRAL = json.loads((FIXTURES / "configs" / "mixtral-8x7b.json").read_text())
ADAPTER_CONFIG = json.loads(
    (FIXTURES / "adapters" / "foundation-sec-8b-r8-qv.adapter_config.json").read_text()
)
QKVO = ("q_proj", "k_proj", "v_proj", "o_proj")
MIB = 1 << 20


def test_rank_16_on_llama_3_1_8b_qkvo_is_13_6_m_parameters_and_26_mib_in_bf16():
    # by hand: q, o 16 × (4096 + 4096); k, v 16 × (4096 + 1024); × 32 layers
    by_hand = (2 * 16 * (4096 + 4096) + 2 * 16 * (4096 + 1024)) * 32
    shapes = shapes_from_config(LLAMA)
    assert adapter_parameters(shapes, 16, QKVO) == by_hand == 13_631_488
    assert adapter_bytes(shapes, Adapter("a", 16, QKVO)) == 26 * MIB


def test_a_real_adapter_config_is_read_and_sized():
    # Danvin-44/FS8B-finetuned: r = 8 on q_proj, v_proj of a Llama-3.1-8B architecture
    targets = targets_from_adapter_config(ADAPTER_CONFIG)
    assert targets == ("q_proj", "v_proj")
    rank = ADAPTER_CONFIG["r"]
    by_hand = (8 * (4096 + 4096) + 8 * (4096 + 1024)) * 32  # 3,407,872
    assert adapter_parameters(shapes_from_config(LLAMA), rank, targets) == by_hand
    assert adapter_bytes(shapes_from_config(LLAMA), Adapter("sec", rank, targets)) == 6.5 * MIB


def test_packed_names_and_all_linear_expand_to_the_modules_they_pack():
    assert targets_from_adapter_config({"target_modules": ["qkv_proj"]}) == QKVO[:3]
    assert targets_from_adapter_config({"target_modules": "all-linear"}) == ALL_TARGETS
    # a regular expression (PEFT allows one) sizes as every module: an upper bound
    assert targets_from_adapter_config({"target_modules": ".*proj"}) == ALL_TARGETS


def test_moe_experts_count_per_expert_when_the_mlp_is_targeted():
    shapes = shapes_from_config(QWEN_MOE)
    attention = adapter_parameters(shapes, 16, QKVO)
    mlp = adapter_parameters(shapes, 16, ("gate_proj", "up_proj", "down_proj"))
    # 48 layers × 128 experts × 3 × 16 × (2048 + 768)
    assert mlp == 48 * 128 * 3 * 16 * (2048 + 768)
    assert mlp > 10 * attention


def test_vllm_reserves_every_supported_module_for_every_slot_at_the_rounded_max_rank():
    shapes = shapes_from_config(QWEN_DENSE)  # Qwen2: no vocabulary slots in vLLM v0.11.0
    assert not any(s.vocab for s in shapes)
    one = LoraSlots.plan("vllm", shapes, [Adapter("a", 12, ("q_proj",))])
    assert one.max_rank == 16 and one.max_loras == 1
    # the slot covers all seven modules at rank 16, whatever the adapter targets
    assert one.gpu_bytes_per_gpu(1) == adapter_bytes(shapes, Adapter("x", 16, ALL_TARGETS))
    eight = LoraSlots.plan("vllm", shapes, [Adapter(f"a{i}", 16) for i in range(12)])
    assert eight.max_loras == 8 and eight.cpu_loras == 12
    assert eight.gpu_bytes_per_gpu(1) == 8 * one.gpu_bytes_per_gpu(1)
    assert eight.host_bytes == 12 * adapter_bytes(shapes, Adapter("x", 16))
    # tensor parallelism shards half of each pair of matrices
    assert one.gpu_bytes_per_gpu(1) / 2 < one.gpu_bytes_per_gpu(2) < one.gpu_bytes_per_gpu(1)


def test_vllm_slots_on_llama_3_1_8b_rank_16_4_slots_include_the_vocabulary():
    """vLLM v0.11.0 wraps Llama's embed_tokens and lm_head too (its ``embedding_modules``).
    By hand, S = 4 slots, R = 16, hidden H = 4096, vocab V = 128,256, E = 256 extra rows,
    one GPU, 2 bytes a value:

    * linear layers, per layer per slot R × (d_in + d_out): q, o 16 × 8,192 = 131,072 each;
      k, v 16 × 5,120 = 81,920 each; gate, up, down 16 × 18,432 = 294,912 each; 1,310,720
      per layer × 32 layers × 4 slots = 167,772,160 values = 320 MiB (all the code counted
      before);
    * embed_tokens: A 4 × (128,256 + 256) × 16 = 8,224,768; B 4 × 4,096 × 16 = 262,144;
      extra-vocabulary tensors 4 × 256 × 4,096 = 4,194,304; the base's embedding grows by
      256 × 4 rows × 4,096 = 4,194,304 → 16,875,520;
    * lm_head (LogitsProcessorWithLoRA): A 4 × 16 × 4,096 = 262,144; B 4 × 128,512 × 16
      (128,512 is already a multiple of 256) = 8,224,768; extra tensors 4,194,304; lm_head
      grows from 128,256 (padded to 64) to 128,512 rows: 256 × 4,096 = 1,048,576
      → 13,729,792;
    * total 167,772,160 + 16,875,520 + 13,729,792 = 198,377,472 values = 396,754,944 bytes
      = 378.375 MiB, of which the vocabulary is 58.375 MiB.
    """
    shapes = shapes_from_config(LLAMA)
    assert [s.name for s in shapes if s.vocab] == ["embed_tokens", "lm_head"]
    slots = LoraSlots.plan("vllm", shapes, [Adapter(f"a{i}", 16, QKVO) for i in range(4)])
    assert slots.max_loras == 4 and slots.max_rank == 16
    assert slots.gpu_bytes_per_gpu(1) == 396_754_944 == int(378.375 * MIB)
    linear_only = LoraSlots.plan("vllm", tuple(s for s in shapes if not s.vocab), slots.adapters)
    assert linear_only.gpu_bytes_per_gpu(1) == 320 * MIB
    # with TP 2 the vocabulary's stacked buffers stay whole; only the added rows split
    vocab_tp1 = slots.gpu_bytes_per_gpu(1) - linear_only.gpu_bytes_per_gpu(1)
    vocab_tp2 = slots.gpu_bytes_per_gpu(2) - linear_only.gpu_bytes_per_gpu(2)
    added_rows = 4_194_304 + 1_048_576  # values; half of them leave each GPU, 2 bytes each
    assert vocab_tp1 - vocab_tp2 == added_rows // 2 * 2
    # the adapter's own weights do not include the vocabulary: it targets q, k, v, o
    assert slots.bytes_of(slots.adapters[0]) == 26 * MIB


def test_a_tied_lm_head_adds_no_rows_and_unknown_architectures_size_the_vocabulary():
    tied = shapes_from_config({**LLAMA, "tie_word_embeddings": True})
    untied = shapes_from_config(LLAMA)
    one = [Adapter("a", 16)]
    rows = (128_512 - 128_256) * 4096 * 2  # lm_head's 256 added rows, 2 bytes each
    assert (
        LoraSlots.plan("vllm", untied, one).gpu_bytes_per_gpu(1)
        - LoraSlots.plan("vllm", tied, one).gpu_bytes_per_gpu(1)
        == rows
    )
    # no config.json: the architecture is unknown, so the vocabulary is sized (upper bound)
    arch = shapes_from_architecture(architecture_from_config(LLAMA))
    assert [s.name for s in arch if s.vocab] == ["embed_tokens", "lm_head"]


def test_vllm_0_11_gives_moe_experts_no_slots_and_refuses_adapters_that_target_them():
    shapes = shapes_from_config(QWEN_MOE)
    attention = [Adapter("a", 16, QKVO)]
    mlp = Adapter("m", 16, ("gate_proj", "up_proj", "down_proj"))
    # the slots are the attention modules only (Qwen3-MoE: no vocabulary wrap either)
    assert LoraSlots.plan("vllm", shapes, attention).gpu_bytes_per_gpu(1) == adapter_bytes(
        shapes, Adapter("x", 16, QKVO)
    )
    assert "fused MoE" in adapter_refusal(mlp, "vllm", shapes).reason
    assert adapter_refusal(attention[0], "vllm", shapes) is None
    # Mixtral's w1/w2/w3 are its experts too; an adapter that named no targets is not refused
    mixtral = shapes_from_config(MIXTRAL)
    assert "gate_proj" in adapter_refusal(Adapter("w", 8, ("w1",)), "vllm", mixtral).reason
    assert adapter_refusal(Adapter("u", 8, targets_given=False), "vllm", mixtral) is None
    # other engines load what the adapter holds
    assert adapter_refusal(mlp, "tgi", shapes) is None


def test_vllm_0_11_refuses_lora_on_a_vocabulary_over_its_limit():
    big = shapes_from_config({**LLAMA, "vocab_size": 262_144})
    assert "257,024" in adapter_refusal(Adapter("a", 8), "vllm", big).reason
    assert adapter_refusal(Adapter("a", 8), "vllm", shapes_from_config(LLAMA)) is None


def test_other_engines_hold_the_adapters_themselves():
    shapes = shapes_from_config(LLAMA)
    adapters = [Adapter("a", 8, QKVO), Adapter("b", 64, ("q_proj",))]
    slots = LoraSlots.plan("tgi", shapes, adapters)
    assert slots.gpu_bytes_per_gpu(1) == sum(adapter_bytes(shapes, a) for a in adapters)
    assert slots.host_bytes == 0


def test_engines_that_cannot_load_an_adapter_say_why():
    assert "serves no LoRA" in adapter_refusal(Adapter("a", 8), "custom").reason
    assert "512" in adapter_refusal(Adapter("a", 1024), "vllm").reason
    assert "GGUF" in adapter_refusal(Adapter("a", 8, source="hf://o/n"), "llamacpp").reason
    assert adapter_refusal(Adapter("a", 8, source="/models/a.gguf"), "llamacpp") is None
    assert vllm_max_lora_rank(1) == 8 and vllm_max_lora_rank(300) == 320


def test_the_decode_penalty_is_the_active_adapters_bytes_over_the_base_weights():
    assert decode_slowdown(0, 50e6, 16e9) == 1.0
    assert decode_slowdown(4, 40e6, 16e9) == pytest.approx(1.01)


@settings(max_examples=60, deadline=None)
@given(
    engine=st.sampled_from(["vllm", "tgi", "llamacpp"]),
    ranks=st.lists(st.integers(1, 512), min_size=1, max_size=12),
    extra_rank=st.integers(1, 512),
    slots=st.none() | st.integers(1, 16),
    gpus=st.sampled_from([1, 2, 4, 8]),
)
def test_more_adapters_or_higher_rank_never_lower_the_memory(
    engine, ranks, extra_rank, slots, gpus
):
    shapes = shapes_from_config(LLAMA)
    adapters = [Adapter(f"a{i}", r, QKVO) for i, r in enumerate(ranks)]
    base = LoraSlots.plan(engine, shapes, adapters, slots)
    more = LoraSlots.plan(engine, shapes, [*adapters, Adapter("x", extra_rank, QKVO)], slots)
    higher = LoraSlots.plan(
        engine, shapes, [Adapter(a.name, min(512, a.rank * 2), QKVO) for a in adapters], slots
    )
    for bigger in (more, higher):
        assert bigger.gpu_bytes_per_gpu(gpus) >= base.gpu_bytes_per_gpu(gpus)
        assert bigger.host_bytes >= base.host_bytes


# --- planning a base with its adapters -------------------------------------------------------


def spec(adapters=(), **workload):
    return ModelDeploymentSpec.model_validate(
        {
            "model": {"name": "meta-llama/Llama-3.1-8B-Instruct", "config": LLAMA},
            "workload": {"contextTokens": 8192, "concurrency": 8, **workload},
            "slo": {"timePerOutputTokenMs": 80},
            "adapters": list(adapters),
        }
    )


def adapter(name, rank=16, tps=50.0, **kw):
    return {"name": name, "source": f"hf://org/{name}", "rank": rank, "outputTokensPerSecond": tps}


@pytest.fixture(scope="module")
def cluster():
    return build_cluster(nodes=l4_nodes(2) + a100_nodes(1))


def test_adapters_are_placed_with_their_base_in_one_deployment(cluster):
    alone = plan_deployment(DeploymentRequest("ml", "base", spec()), cluster)
    plan = plan_deployment(
        DeploymentRequest("ml", "base", spec([adapter("a"), adapter("b")])), cluster
    )
    assert plan.phase == "Placed"
    assert [(a.name, a.state) for a in plan.adapters] == [("a", "Loaded"), ("b", "Loaded")]
    assert plan.estimate.adapter_bytes > 0
    assert plan.estimate.total_bytes == alone.estimate.total_bytes + plan.estimate.adapter_bytes
    assert plan.cost.separate_per_hour > plan.cost.per_hour
    assert plan.status_fields()["adapters"][0]["memory"] == "80Mi"


def test_a_model_adapter_with_a_rank_that_cannot_fit_is_rejected_and_the_base_kept(cluster):
    small = build_cluster(nodes=l4_nodes(1))
    before = plan_deployment(DeploymentRequest("ml", "base", spec([adapter("a")])), small)
    huge = Listed(
        "huge", ModelAdapterSpec(base_deployment="base", source="hf://org/huge", rank=512)
    )
    request = DeploymentRequest(
        "ml",
        "base",
        spec([adapter("a")], maxConcurrentAdapters=32),
        model_adapters=(huge,),
    )
    plan = plan_deployment(request, small)
    assert plan.phase == "Placed"
    states = {a.name: (a.state, a.reason) for a in plan.adapters}
    assert states == {"a": ("Loaded", "Loaded"), "huge": ("Rejected", "DoesNotFit")}
    assert "rank 512" in plan.adapters[1].message
    assert plan.placement.model_dump() == before.placement.model_dump()


def test_a_model_adapter_cannot_take_a_name_the_spec_uses(cluster):
    clash = Listed("a", ModelAdapterSpec(base_deployment="base", source="hf://o/a", rank=8))
    plan = plan_deployment(
        DeploymentRequest("ml", "base", spec([adapter("a")]), model_adapters=(clash,)), cluster
    )
    assert [(a.origin, a.state, a.reason) for a in plan.adapters] == [
        ("spec", "Loaded", "Loaded"),
        ("ModelAdapter", "Rejected", "NameTaken"),
    ]


def test_a_custom_engine_rejects_its_adapters_and_plans_the_base(cluster):
    s = spec([adapter("a")]).model_copy(
        update={"runtime": spec().runtime.model_copy(update={"engine": "custom"})}
    )
    plan = plan_deployment(DeploymentRequest("ml", "base", s), cluster)
    assert plan.phase == "Placed"
    assert (plan.adapters[0].state, plan.adapters[0].reason) == ("Rejected", "EngineUnsupported")
    assert plan.estimate.adapter_bytes is None


def test_variants_do_not_serve_adapters(cluster):
    body = spec([adapter("a")]).to_wire()
    body["model"]["variants"] = [{"name": "small", "parameters": 1e9, "qualityLoss": 0.0}]
    plan = plan_deployment(
        DeploymentRequest("ml", "base", ModelDeploymentSpec.model_validate(body)), cluster
    )
    assert plan.placement.variant is None
    assert any(a.code == "AdaptersNeedBase" for a in plan.alternatives)


def test_adapter_demand_adds_to_the_base_demand(cluster):
    quiet = plan_deployment(
        DeploymentRequest("ml", "b", spec([adapter("a", tps=0)], outputTokensPerSecond=100)),
        cluster,
    )
    busy = plan_deployment(
        DeploymentRequest("ml", "b", spec([adapter("a", tps=400)], outputTokensPerSecond=100)),
        cluster,
    )
    assert busy.adapters[0].state == "Loaded"
    assert busy.placement.replicas > quiet.placement.replicas
    assert busy.cost.per_hour > quiet.cost.per_hour


def test_an_adapter_whose_demand_cannot_be_served_is_rejected_as_too_slow_or_full(cluster):
    plan = plan_deployment(
        DeploymentRequest("ml", "b", spec([adapter("a", tps=50_000)], outputTokensPerSecond=100)),
        cluster,
    )
    assert plan.phase == "Placed"
    assert plan.adapters[0].state == "Rejected"
    assert plan.adapters[0].reason in ("TooSlow", "NoCapacity")


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    ranks=st.lists(st.sampled_from([8, 16, 32, 64]), min_size=1, max_size=6),
    tps=st.sampled_from([0.0, 50.0, 400.0]),
)
def test_n_adapters_on_one_base_never_cost_more_than_n_deployments(cluster, ranks, tps):
    adapters = [adapter(f"a{i}", r, tps) for i, r in enumerate(ranks)]
    plan = plan_deployment(DeploymentRequest("ml", "b", spec(adapters)), cluster)
    assert plan.phase == "Placed"
    assert plan.cost.per_hour <= plan.cost.separate_per_hour + 1e-9

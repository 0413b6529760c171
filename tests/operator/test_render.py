"""render: the Deployment and Service for a placement, per engine; pure."""

from __future__ import annotations

import pytest

from memplace.api import EstimateStatus, ModelDeploymentSpec, PlacementPoolSpec, PlacementStatus
from memplace.operator import render

OWNER = render.Owner(name="summarizer", namespace="ml", uid="uid-1")
GIB = 1024**3
POOL = PlacementPoolSpec.model_validate(
    {
        "nodeSelector": {"cloud.google.com/gke-nodepool": "a100-80"},
        "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
    }
)


def spec(engine: str = "vllm", **runtime) -> ModelDeploymentSpec:
    return ModelDeploymentSpec.model_validate(
        {
            "model": {"name": "Qwen/Qwen3-8B", "source": "hf://Qwen/Qwen3-8B"},
            "workload": {"contextTokens": 8192, "concurrency": 8, "promptTokens": 1024},
            "runtime": {"engine": engine, "port": 8000, **runtime},
        }
    )


def placement(**overrides) -> PlacementStatus:
    values = {
        "pool": "a100-80",
        "gpuModel": "A100-SXM4-80GB",
        "precision": "fp8",
        "kvCacheDtype": "fp8",
        "tier": "gpu",
        "gpusPerReplica": 2,
        "replicas": 3,
    }
    values.update(overrides)
    return PlacementStatus.model_validate(values)


ESTIMATE = EstimateStatus.model_validate(
    {"totalBytesPerGpu": 40 * GIB, "totalBytes": 80 * GIB, "weightsBytes": 16 * GIB}
)


def container(deployment) -> dict:
    return deployment["spec"]["template"]["spec"]["containers"][0]


def args_of(deployment) -> dict[str, str]:
    args = container(deployment)["args"]
    return {args[i]: args[i + 1] for i in range(0, len(args) - 1) if args[i].startswith("-")}


def test_vllm_gets_precision_kv_cache_context_parallelism_and_memory_share():
    deployment = render.render_deployment(
        OWNER, spec(), placement(), ESTIMATE, POOL, gpu_memory_bytes=80 * GIB
    )
    args = args_of(deployment)
    assert args["--model"] == "Qwen/Qwen3-8B"
    assert args["--quantization"] == "fp8"
    assert args["--kv-cache-dtype"] == "fp8"
    assert args["--max-model-len"] == "8192"
    assert args["--tensor-parallel-size"] == "2"
    assert args["--gpu-memory-utilization"] == "0.52"
    assert "--cpu-offload-gb" not in args


def test_vllm_offload_tier_passes_cpu_offload_gigabytes():
    offloaded = placement(
        tier="offload",
        precision="bf16",
        kvCacheDtype="bf16",
        gpusPerReplica=1,
        offloadBytesPerReplica=int(20.5 * GIB),
    )
    deployment = render.render_deployment(OWNER, spec(), offloaded, ESTIMATE, POOL)
    args = args_of(deployment)
    assert args["--cpu-offload-gb"] == "21"
    assert args["--dtype"] == "bfloat16"
    assert "--quantization" not in args
    assert container(deployment)["resources"]["requests"]["memory"] == str(int(20.5 * GIB))


def test_llamacpp_gets_context_layers_cache_types_and_threads():
    deployment = render.render_deployment(OWNER, spec("llamacpp"), placement(), ESTIMATE, POOL)
    args = container(deployment)["args"]
    assert args[args.index("-c") + 1] == str(8192 * 8)
    assert args[args.index("-ngl") + 1] == "999"
    assert args[args.index("--cache-type-k") + 1] == "q8_0"
    assert args[args.index("--cache-type-v") + 1] == "q8_0"
    assert "--threads" in args


def test_llamacpp_on_cpu_offloads_no_layers_and_requests_no_gpu():
    cpu = placement(tier="cpu", gpusPerReplica=0, precision="int4", kvCacheDtype="fp16")
    deployment = render.render_deployment(OWNER, spec("llamacpp"), cpu, ESTIMATE, POOL)
    args = container(deployment)["args"]
    assert args[args.index("-ngl") + 1] == "0"
    resources = container(deployment)["resources"]
    assert "limits" not in resources
    assert resources["requests"]["memory"] == str(80 * GIB)
    assert container(deployment)["image"].endswith(":server")


def test_tgi_gets_quantize_total_tokens_and_shards():
    int4 = placement(precision="int4")
    args = args_of(render.render_deployment(OWNER, spec("tgi"), int4, ESTIMATE, POOL))
    assert args["--quantize"] == "bitsandbytes-nf4"
    assert args["--max-total-tokens"] == "8192"
    assert args["--max-input-tokens"] == "1024"
    assert args["--num-shard"] == "2"


def test_custom_engine_gets_environment_variables_and_user_env_wins():
    custom = spec(
        "custom",
        image="example.com/engine:1",
        env=[{"name": "MEMPLACE_PRECISION", "value": "mine"}],
        args=["--x"],
    )
    deployment = render.render_deployment(OWNER, custom, placement(), ESTIMATE, POOL)
    env = {e["name"]: e["value"] for e in container(deployment)["env"]}
    assert env["MEMPLACE_TIER"] == "gpu"
    assert env["MEMPLACE_GPUS_PER_REPLICA"] == "2"
    assert env["MEMPLACE_MAX_MODEL_LEN"] == "8192"
    assert env["MEMPLACE_PRECISION"] == "mine"
    assert container(deployment)["args"] == ["--x"]


def test_custom_engine_without_an_image_cannot_be_rendered():
    with pytest.raises(render.RenderError):
        render.render_deployment(OWNER, spec("custom"), placement(), ESTIMATE, POOL)


def test_extra_args_come_after_the_plans():
    deployment = render.render_deployment(
        OWNER, spec(args=["--enable-prefix-caching"]), placement(), ESTIMATE, POOL
    )
    assert container(deployment)["args"][-1] == "--enable-prefix-caching"


def test_pods_pin_to_the_pool_and_request_gpus_per_replica():
    deployment = render.render_deployment(OWNER, spec(), placement(), ESTIMATE, POOL)
    pod = deployment["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"cloud.google.com/gke-nodepool": "a100-80"}
    assert pod["tolerations"] == [
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
    ]
    assert container(deployment)["resources"]["limits"] == {"nvidia.com/gpu": 2}
    assert deployment["spec"]["replicas"] == 3
    assert pod["volumes"][0]["emptyDir"] == {"medium": "Memory"}  # /dev/shm for TP


def test_hami_pools_request_gpu_memory_in_mebibytes():
    hami = POOL.model_copy(update={"sharing": "hami"})
    deployment = render.render_deployment(
        OWNER, spec(), placement(gpusPerReplica=1), ESTIMATE, hami
    )
    assert container(deployment)["resources"]["limits"] == {
        "nvidia.com/gpu": 1,
        "nvidia.com/gpumem": 40 * 1024,
    }


def test_mig_pools_request_the_smallest_profile_that_fits():
    mig = POOL.model_copy(update={"sharing": "mig"})
    small = EstimateStatus.model_validate({"totalBytesPerGpu": 15 * GIB})
    deployment = render.render_deployment(
        OWNER, spec(), placement(gpusPerReplica=1), small, mig, gpu_memory_bytes=80 * GIB
    )
    assert container(deployment)["resources"]["limits"] == {"nvidia.com/mig-2g.20gb": 1}


def test_owned_labelled_and_selected_by_a_stable_label():
    deployment, service = render.render(OWNER, spec(), placement(), ESTIMATE, POOL)
    for obj in (deployment, service):
        assert obj["metadata"]["ownerReferences"] == [
            {
                "apiVersion": "memplace.io/v1alpha1",
                "kind": "ModelDeployment",
                "name": "summarizer",
                "uid": "uid-1",
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ]
        assert obj["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "memplace"
    own = {"memplace.io/deployment": "summarizer", "memplace.io/workload": "summarizer"}
    assert deployment["spec"]["selector"] == {"matchLabels": own}
    assert own.items() <= deployment["spec"]["template"]["metadata"]["labels"].items()
    assert service["spec"]["selector"] == own
    assert service["spec"]["ports"][0]["port"] == 8000


def test_a_successor_selects_only_its_own_pods_while_the_service_keeps_the_old_ones():
    moved = placement(precision="int4")
    name = render.successor_name("summarizer", moved, serving="summarizer")
    deployment, service = render.render(
        OWNER, spec(), moved, ESTIMATE, POOL, name=name, serving="summarizer"
    )
    assert name.startswith("summarizer-") and name != "summarizer"
    assert deployment["metadata"]["name"] == name
    assert deployment["spec"]["selector"]["matchLabels"]["memplace.io/workload"] == name
    assert service["spec"]["selector"]["memplace.io/workload"] == "summarizer"
    assert render.serving_name("summarizer", service) == "summarizer"


def test_the_successor_name_is_deterministic_and_never_the_serving_one():
    moved = placement(precision="int4")
    first = render.successor_name("summarizer", moved, serving="summarizer")
    assert render.successor_name("summarizer", moved, serving="summarizer") == first
    assert render.successor_name("summarizer", moved, serving=first) == "summarizer"
    long_name = "m" * 63
    assert len(render.successor_name(long_name, moved, serving=long_name)) <= 63


def test_the_placement_id_ignores_the_replica_count_and_nothing_else():
    base = render.placement_id(placement())
    assert render.placement_id(placement(replicas=4)) == base
    assert render.placement_id(placement(precision="int4")) != base
    assert render.placement_id(placement(pool="other")) != base


def test_the_plan_hash_is_stable_and_moves_with_the_plan():
    first = render.render_deployment(OWNER, spec(), placement(), ESTIMATE, POOL)
    again = render.render_deployment(OWNER, spec(), placement(), ESTIMATE, POOL)
    other = render.render_deployment(OWNER, spec(), placement(replicas=4), ESTIMATE, POOL)
    hash_of = lambda d: d["metadata"]["annotations"][render.PLAN_HASH]  # noqa: E731
    assert hash_of(first) == hash_of(again)
    assert hash_of(first) != hash_of(other)


def test_vllm_quantises_in_flight_only_what_it_can_and_never_a_prequantised_checkpoint():
    def quantization(precision, config=None):
        deployment = render.render_deployment(
            OWNER,
            spec(),
            placement(precision=precision),
            ESTIMATE,
            POOL,
            gpu_memory_bytes=80 * GIB,
            model_config=config,
        )
        return args_of(deployment).get("--quantization")

    assert quantization("int4") == "bitsandbytes"  # in-flight 4-bit from a bf16 checkpoint
    assert quantization("bf16") is None
    awq = {"model_type": "qwen3", "quantization_config": {"quant_method": "awq", "bits": 4}}
    assert quantization("int4", awq) is None  # vLLM reads the method from the checkpoint

"""The API models accept the v1alpha1 contract, apply its defaults and reject what it forbids."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import yaml
from pydantic import ValidationError

from memplace.api import (
    MODEL_DEPLOYMENT,
    NODE_MEMORY_REPORT,
    PLACEMENT_POOL,
    REJECTION_CODES,
    Condition,
    EstimateStatus,
    ModelDeployment,
    ModelDeploymentSpec,
    ModelDeploymentStatus,
    ModelSpec,
    NodeMemoryReport,
    PerformanceProfile,
    PlacementPool,
    PlacementPoolSpec,
    WorkloadSpec,
    format_bytes,
)

# The contract example from DESIGN.md ("API v1alpha1"), with its elisions filled in.
CONTRACT = """
apiVersion: memplace.io/v1alpha1
kind: ModelDeployment
metadata: {name: summarizer, namespace: ml}
spec:
  model:
    name: Qwen/Qwen3-8B
    source: hf://Qwen/Qwen3-8B
    config: {model_type: qwen3, num_hidden_layers: 36, num_key_value_heads: 8}
    configMapRef: {name: qwen3-8b-config}
    parameters: 8.2e9
    activeParameters: 8.2e9
    variants:
      - {name: qwen3-4b-distilled, source: hf://org/qwen3-4b-distilled, qualityLoss: 0.03}
  workload:
    contextTokens: 8192
    concurrency: 8
    promptTokens: 1024
    outputTokensPerSecond: 400
    minReplicas: 1
  slo:
    timeToFirstTokenMs: 800
    timePerOutputTokenMs: 60
  quality:
    maxLoss: 0.02
    precisions: [bf16, fp8, int8, int4, nvfp4]
  placement:
    tiers: [gpu, offload, cpu]
    pools: []
    offloadToDisk: false
  runtime:
    engine: vllm
    image: vllm/vllm-openai:v0.11.0
    port: 8000
    args: []
status:
  observedGeneration: 3
  phase: Placed
  placement: {pool: a100-80, gpuModel: A100-SXM4-80GB, precision: int4, kvCacheDtype: fp8,
              tier: gpu, variant: null, gpusPerReplica: 1, replicas: 2}
  estimate: {weightsBytes: 4600000000, kvCacheBytes: 4831838208, totalBytesPerGpu: 16000000000,
             timeToFirstTokenMs: 210.5, timePerOutputTokenMs: 18.2,
             outputTokensPerSecondPerReplica: 440}
  measured: {gpuMemoryBytesPerReplica: 15500000000}
  cost: {perHour: 7.4, perMillionOutputTokens: 5.1}
  alternatives:
    - {pool: l4-24, precision: int4, tier: gpu, gpusPerReplica: 2, reason: "TPOT 71 ms > SLO 60 ms"}
  conditions:
    - {type: Valid, status: "True", reason: Valid, message: spec is valid,
       lastTransitionTime: "2025-01-31T12:00:00Z", observedGeneration: 3}
    - {type: Placed, status: "True", reason: Placed, message: int4 on a100-80,
       lastTransitionTime: "2025-01-31T12:00:01Z", observedGeneration: 3}
"""

POOL = """
apiVersion: memplace.io/v1alpha1
kind: PlacementPool
metadata: {name: a100-80}
spec:
  nodeSelector: {cloud.google.com/gke-nodepool: a100-80}
  pricePerNodeHour: 29.39
  gpu: {model: A100-SXM4-80GB, count: 8}
  tolerations: []
  sharing: none
  spot: false
"""

GIB = 1024**3


def contract() -> dict:
    return yaml.safe_load(CONTRACT)


def test_the_contract_example_parses() -> None:
    mdep = ModelDeployment.model_validate(contract())
    assert mdep.spec.model.parameters == 8.2e9
    assert mdep.spec.model.variants[0].quality_loss == 0.03
    assert mdep.spec.slo.time_per_output_token_ms == 60
    assert mdep.spec.quality.precisions == ["bf16", "fp8", "int8", "int4", "nvfp4"]
    assert mdep.status is not None and mdep.status.placement is not None
    assert mdep.status.placement.precision == "int4"
    assert mdep.status.placement.variant is None
    assert mdep.status.alternatives is not None
    assert mdep.status.alternatives[0].reason == "TPOT 71 ms > SLO 60 ms"


def test_the_contract_example_round_trips_through_the_wire_form() -> None:
    mdep = ModelDeployment.model_validate(contract())
    wire = mdep.to_wire()
    assert ModelDeployment.model_validate(wire) == mdep
    assert wire["spec"]["workload"]["contextTokens"] == 8192
    assert wire["spec"]["model"]["configMapRef"] == {
        "name": "qwen3-8b-config",
        "key": "config.json",
    }
    assert wire["status"]["estimate"]["totalPerGpu"] == "14.9Gi"
    assert "variant" not in wire["status"]["placement"]  # null optionals stay off the wire


def test_the_status_example_parses_on_its_own() -> None:
    status = ModelDeploymentStatus.model_validate(contract()["status"])
    assert status.phase == "Placed"
    assert [c.type for c in status.conditions] == ["Valid", "Placed"]
    assert status.cost is not None and status.cost.per_hour == 7.4


def test_the_pool_example_parses_and_round_trips() -> None:
    pool = PlacementPool.model_validate(yaml.safe_load(POOL))
    assert pool.spec.gpu is not None and pool.spec.gpu.count == 8
    assert PlacementPool.model_validate(pool.to_wire()) == pool


@pytest.mark.parametrize(
    "model",
    [
        {"name": "Qwen/Qwen3-8B", "parameters": 8.2e9},
        {"name": "Qwen/Qwen3-8B", "config": {"model_type": "qwen3"}},
        {"name": "Qwen/Qwen3-8B", "source": "hf://Qwen/Qwen3-8B"},
        {"name": "Qwen/Qwen3-8B", "configMapRef": {"name": "qwen3"}},
    ],
)
def test_a_minimal_spec_validates_with_defaults(model: dict) -> None:
    spec = ModelDeploymentSpec.model_validate({"model": model})
    assert spec.workload == WorkloadSpec()
    assert spec.workload.min_replicas == 1
    assert spec.workload.max_replicas is None
    assert spec.slo.time_to_first_token_ms is None
    assert spec.quality.max_loss == 0
    assert spec.quality.precisions is None
    assert spec.placement.tiers == ["gpu", "offload", "cpu"]
    assert spec.placement.pools == []
    assert spec.placement.offload_to_disk is False
    assert spec.runtime.engine == "vllm"
    assert spec.runtime.port == 8000


def test_snake_case_names_work_in_python() -> None:
    spec = ModelDeploymentSpec(
        model=ModelSpec(name="m", parameters=1e9),
        workload=WorkloadSpec(context_tokens=2048, prompt_tokens=512),
    )
    assert spec.to_wire()["workload"]["contextTokens"] == 2048


def test_a_model_with_nothing_to_size_it_by_is_rejected_with_a_clear_message() -> None:
    with pytest.raises(ValidationError) as caught:
        ModelDeploymentSpec.model_validate({"model": {"name": "Qwen/Qwen3-8B"}})
    assert "at least one of config, configMapRef, source or parameters" in str(caught.value)


def test_a_variant_with_nothing_to_size_it_by_is_rejected() -> None:
    model = {"name": "m", "parameters": 1e9, "variants": [{"name": "v", "qualityLoss": 0.1}]}
    with pytest.raises(ValidationError, match="at least one of config"):
        ModelSpec.model_validate(model)


@pytest.mark.parametrize(
    ("section", "value"),
    [
        ("quality", {"precisions": ["fp4"]}),
        ("quality", {"kvCacheDtypes": ["int4"]}),
        ("quality", {"maxLoss": 1.5}),
        ("placement", {"tiers": ["tpu"]}),
        ("placement", {"tiers": []}),
        ("placement", {"tiers": ["gpu", "gpu"]}),
        ("runtime", {"engine": "sglang"}),
        ("runtime", {"port": 0}),
        ("runtime", {"port": 70000}),
        ("workload", {"concurrency": 0}),
        ("workload", {"minReplicas": -1}),
        ("workload", {"minReplicas": 3, "maxReplicas": 2}),
        ("workload", {"contextTokens": 1024, "promptTokens": 1024}),
        ("slo", {"timeToFirstTokenMs": 0}),
        ("slo", {"unknownField": 1}),
    ],
)
def test_out_of_contract_values_are_rejected(section: str, value: dict) -> None:
    with pytest.raises(ValidationError):
        ModelDeploymentSpec.model_validate(
            {"model": {"name": "m", "parameters": 1}, section: value}
        )


def test_status_enums_are_closed() -> None:
    with pytest.raises(ValidationError):
        ModelDeploymentStatus.model_validate({"phase": "Running"})
    with pytest.raises(ValidationError):
        ModelDeploymentStatus.model_validate({"alternatives": [{"reason": "x", "code": "Nope"}]})
    with pytest.raises(ValidationError):
        Condition.model_validate({"type": "Ready", "status": "true"})


def test_rejection_codes_are_a_closed_set_including_invalid() -> None:
    for code in ("DoesNotFit", "TooSlow", "QualityTooLow", "UnsupportedPrecision", "NoPrice"):
        assert code in REJECTION_CODES
    assert "Invalid" in REJECTION_CODES
    assert len(set(REJECTION_CODES)) == len(REJECTION_CODES)


def test_condition_types_are_unique() -> None:
    ready = {"type": "Ready", "status": "True"}
    with pytest.raises(ValidationError, match="duplicate"):
        ModelDeploymentStatus.model_validate({"conditions": [ready, ready]})


def test_timestamps_are_rfc3339_and_accept_aware_datetimes() -> None:
    when = datetime(2025, 1, 31, 12, 0, tzinfo=UTC)
    assert (
        Condition(type="Ready", status="True", last_transition_time=when).to_wire()[
            "lastTransitionTime"
        ]
        == "2025-01-31T12:00:00Z"
    )
    for bad in ("yesterday", "2025-01-31", "2025-01-31T12:00:00"):
        with pytest.raises(ValidationError, match="RFC 3339"):
            Condition(type="Ready", status="True", last_transition_time=bad)
    with pytest.raises(ValidationError):
        Condition(type="Ready", status="True", last_transition_time=datetime(2025, 1, 31))


def test_the_readable_memory_per_gpu_is_derived() -> None:
    assert EstimateStatus(total_bytes_per_gpu=16_000_000_000).total_per_gpu == "14.9Gi"
    assert EstimateStatus(total_bytes_per_gpu=80 * GIB, total_per_gpu="x").total_per_gpu == "80Gi"
    assert EstimateStatus().total_per_gpu is None


@pytest.mark.parametrize(
    ("count", "text"),
    [(0, "0"), (1023, "1023"), (1024, "1Ki"), (1536 * 1024**2, "1.5Gi"), (3 * 1024**4, "3Ti")],
)
def test_format_bytes(count: int, text: str) -> None:
    assert format_bytes(count) == text


def test_a_pool_needs_a_node_selector() -> None:
    with pytest.raises(ValidationError):
        PlacementPoolSpec.model_validate({})
    with pytest.raises(ValidationError):
        PlacementPoolSpec.model_validate({"nodeSelector": {}})
    with pytest.raises(ValidationError):
        PlacementPoolSpec.model_validate({"nodeSelector": {"a": "b"}, "sharing": "vgpu"})
    with pytest.raises(ValidationError, match="Exists"):
        PlacementPoolSpec.model_validate(
            {"nodeSelector": {"a": "b"}, "tolerations": [{"operator": "Exists", "value": "x"}]}
        )


def test_a_pool_takes_kubernetes_tolerations() -> None:
    spec = PlacementPoolSpec.model_validate(
        {
            "nodeSelector": {"pool": "a"},
            "tolerations": [
                {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},
                {"key": "k", "value": "v", "effect": "NoExecute", "tolerationSeconds": 30},
            ],
        }
    )
    assert spec.sharing == "none" and spec.spot is False
    assert spec.tolerations[1].operator == "Equal"


def test_a_node_memory_report_round_trips_and_summarises_its_gpus() -> None:
    gpu = {
        "index": 0,
        "uuid": "GPU-1",
        "name": "NVIDIA A100-SXM4-80GB",
        "memoryTotalBytes": 80 * GIB,
        "memoryUsedBytes": 10 * GIB,
        "memoryFreeBytes": 70 * GIB,
        "computeCapability": "8.0",
        "migMode": "disabled",
        "healthy": True,
        "processes": [
            {
                "pid": 42,
                "usedMemoryBytes": 10 * GIB,
                "podUid": "u",
                "podNamespace": "ml",
                "podName": "p",
                "containerId": "c",
            }
        ],
    }
    report = NodeMemoryReport.model_validate(
        {
            "metadata": {"name": "node-1"},
            "spec": {"nodeName": "node-1"},
            "status": {
                "observedAt": "2025-01-31T12:00:00Z",
                "agentVersion": "0.1.0",
                "heartbeatSeconds": 30,
                "nvml": {
                    "available": True,
                    "driverVersion": "570.133.20",
                    "cudaDriverVersion": 12080,
                },
                "gpus": [gpu, {**gpu, "index": 1, "uuid": "GPU-2"}],
                "host": {
                    "memTotalBytes": 1024 * GIB,
                    "memAvailableBytes": 900 * GIB,
                    "offloadPath": "/var/lib/memplace",
                    "offloadTotalBytes": 3000 * GIB,
                    "offloadFreeBytes": 2000 * GIB,
                },
            },
        }
    )
    assert report.status is not None
    assert report.status.gpu_count == 2
    assert report.status.memory_free_bytes == 140 * GIB
    assert report.status.memory_free == "140Gi/160Gi"
    assert NodeMemoryReport.model_validate(report.to_wire()) == report


def test_a_node_without_nvml_reports_why() -> None:
    report = NodeMemoryReport.model_validate(
        {
            "spec": {"nodeName": "cpu-1"},
            "status": {"nvml": {"available": False, "error": "NVML Shared Library Not Found"}},
        }
    )
    assert report.status is not None and report.status.gpu_count == 0
    assert report.status.memory_free is None
    with pytest.raises(ValidationError):
        NodeMemoryReport.model_validate(
            {"spec": {"nodeName": "n"}, "status": {"gpus": [{"index": 0, "migMode": "on"}]}}
        )


def test_metadata_from_kubectl_is_kept() -> None:
    doc = contract()
    doc["metadata"]["managedFields"] = [{"manager": "kubectl"}]
    doc["metadata"]["generation"] = 3
    mdep = ModelDeployment.model_validate(doc)
    assert mdep.metadata.generation == 3
    assert mdep.to_wire()["metadata"]["managedFields"] == [{"manager": "kubectl"}]


def test_resource_identities() -> None:
    assert MODEL_DEPLOYMENT.crd_name == "modeldeployments.memplace.io"
    assert MODEL_DEPLOYMENT.api_version == "memplace.io/v1alpha1"
    assert MODEL_DEPLOYMENT.namespaced and MODEL_DEPLOYMENT.short_names == ("mdep",)
    assert not PLACEMENT_POOL.namespaced and PLACEMENT_POOL.short_names == ("mpool",)
    assert not NODE_MEMORY_REPORT.namespaced and NODE_MEMORY_REPORT.short_names == ("nmr",)
    assert NODE_MEMORY_REPORT.scope == "Cluster"


def test_models_are_frozen() -> None:
    spec = ModelDeploymentSpec.model_validate({"model": {"name": "m", "parameters": 1}})
    with pytest.raises(ValidationError):
        spec.model = ModelSpec(name="other", parameters=1)  # type: ignore[misc]


@pytest.mark.parametrize("name", ["qwen3.5-chat", "8b-chat", "Chat", "a" * 64, "chat-"])
def test_a_model_deployment_name_must_be_able_to_name_its_service(name):
    with pytest.raises(ValidationError, match="DNS-1035"):
        ModelDeployment.model_validate(
            {"metadata": {"name": name}, "spec": {"model": {"name": "m", "parameters": 1e9}}}
        )


def test_a_good_model_deployment_name_passes_and_the_crd_carries_the_same_rule():
    from memplace.api.crds import RESOURCES, build_crd

    ModelDeployment.model_validate(
        {"metadata": {"name": "qwen3-chat"}, "spec": {"model": {"name": "m", "parameters": 1e9}}}
    )
    crd = build_crd(RESOURCES[0])
    rules = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["x-kubernetes-validations"]
    assert "self.metadata.name.matches" in rules[0]["rule"] and "DNS-1035" in rules[0]["message"]


def test_a_pool_name_must_fit_a_label_value():
    with pytest.raises(ValidationError, match="memplace.io/pool"):
        PlacementPool.model_validate(
            {"metadata": {"name": "p" * 64}, "spec": {"nodeSelector": {"a": "b"}}}
        )


PROFILE = """
apiVersion: memplace.io/v1alpha1
kind: PerformanceProfile
metadata: {name: 3f2a9c01b7de-a100-sxm4-80gb-int4-kvfp8-vllm-x1}
spec:
  architecture: 3f2a9c01b7de
  gpuModel: A100-SXM4-80GB
  precision: int4
  kvCacheDtype: fp8
  engine: vllm
  gpusPerReplica: 1
  model: Qwen/Qwen3-8B
status:
  decode: {factor: 1.8, samples: 7, recentRatios: [1.7, 1.8, 1.9],
           lastUpdated: "2026-12-01T22:00:00Z"}
"""


def test_a_performance_profile_parses_and_round_trips():
    profile = PerformanceProfile.model_validate(yaml.safe_load(PROFILE))
    assert profile.spec.tier == "gpu"
    assert profile.status is not None and profile.status.decode is not None
    assert profile.status.decode.factor == 1.8 and profile.status.prefill is None
    assert PerformanceProfile.model_validate(profile.to_wire()) == profile


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"spec": {"architecture": "Qwen3-8B"}}, "pattern"),
        ({"spec": {"tier": "cpu"}}, "tier"),
        ({"spec": {"gpusPerReplica": 0}}, "greater than 0"),
        ({"status": {"decode": {"factor": 1.0, "samples": 1, "recentRatios": [1, 1]}}}, "samples"),
        ({"status": {"decode": {"factor": 0, "samples": 0}}}, "greater than 0"),
        ({"metadata": {"name": "Not_A_Label"}}, "DNS-1123"),
    ],
)
def test_a_performance_profile_rejects_what_the_crd_forbids(change, message):
    body = yaml.safe_load(PROFILE)
    for section, fields in change.items():
        body[section] = {**body[section], **fields}
    with pytest.raises(ValidationError, match=message):
        PerformanceProfile.model_validate(body)

"""inputs: model and variant configs from inline, ConfigMap or source, through a fake API."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from hub_server import hub_fixture  # noqa: F401 (the `hub` fixture)
from memplace.operator import inputs
from memplace.operator.settings import Settings

HUB = Path(__file__).parents[1] / "fixtures" / "hub"

SMALL = {"model_type": "qwen3", "hidden_size": 2560, "num_hidden_layers": 36,
         "num_attention_heads": 32, "num_key_value_heads": 8, "head_dim": 128,
         "intermediate_size": 9728, "vocab_size": 151936}


class FakeKube:
    """Answers GETs from a dict of ConfigMaps by URL; records what was asked."""

    def __init__(self, configmaps: dict[str, dict[str, str]]) -> None:
        self.configmaps = configmaps
        self.asked: list[str] = []

    async def get(self, url: str) -> dict[str, Any] | None:
        self.asked.append(url)
        name = url.rsplit("/", 1)[-1]
        data = self.configmaps.get(name)
        return None if data is None else {"data": data}


def spec(*variants: dict[str, Any]) -> Any:
    return inputs.parse_spec({
        "model": {"name": "Qwen/Qwen3-8B", "parameters": 8e9, "variants": list(variants)},
    })


async def test_a_variant_given_by_configmap_gets_its_config_and_inline_ones_stay_in_the_spec():
    api = FakeKube({"small-config": {"config.json": json.dumps(SMALL)}})
    found = await inputs.variant_configs(
        spec({"name": "small", "configMapRef": {"name": "small-config"}, "qualityLoss": 0.02},
             {"name": "inline", "config": SMALL, "qualityLoss": 0.02},
             {"name": "sized", "parameters": 1e9, "qualityLoss": 0.05}),
        "ml", api, Settings())
    assert found == {"small": SMALL}
    assert api.asked == ["/api/v1/namespaces/ml/configmaps/small-config"]


async def test_a_missing_variant_configmap_is_waited_for_and_a_missing_key_is_invalid():
    waiting = spec({"name": "small", "configMapRef": {"name": "later"}, "qualityLoss": 0.02})
    with pytest.raises(inputs.Waiting) as caught:
        await inputs.variant_configs(waiting, "ml", FakeKube({}), Settings())
    assert caught.value.waiting_for == "ConfigMap ml/later"

    wrong_key = spec({"name": "small", "configMapRef": {"name": "cm", "key": "cfg.json"},
                      "qualityLoss": 0.02})
    with pytest.raises(inputs.InvalidSpec, match="has no key 'cfg.json'"):
        await inputs.variant_configs(wrong_key, "ml", FakeKube({"cm": {"config.json": "{}"}}),
                                     Settings())


async def test_the_model_and_its_variants_resolve_the_same_way():
    api = FakeKube({"cm": {"config.json": json.dumps(SMALL)}})
    model = inputs.parse_spec({"model": {"name": "m", "configMapRef": {"name": "cm"}}}).model
    variant = spec({"name": "v", "configMapRef": {"name": "cm"}, "qualityLoss": 0.1}).model
    assert await inputs.sized_config(model, "ml", api, Settings()) == SMALL
    assert await inputs.sized_config(variant.variants[0], "ml", api, Settings()) == SMALL


def test_own_replicas_memory_is_given_back_to_free_and_nothing_else_is():
    from memplace.api import NodeMemoryReportStatus

    gib = 1 << 30
    report = NodeMemoryReportStatus.model_validate({"gpus": [
        {"index": 0, "memoryTotalBytes": 80 * gib, "memoryUsedBytes": 76 * gib,
         "memoryFreeBytes": 4 * gib, "processes": [
             {"pid": 1, "podUid": "ours", "usedMemoryBytes": 72 * gib},
             {"pid": 2, "podUid": "theirs", "usedMemoryBytes": 4 * gib}]},
        {"index": 1, "memoryTotalBytes": 80 * gib, "memoryFreeBytes": 80 * gib},
    ]})
    [(node, adjusted)] = inputs.without_own_use([("n1", report)], ["ours"])
    assert node == "n1"
    assert adjusted.gpus[0].memory_free_bytes == 76 * gib
    assert adjusted.gpus[0].memory_used_bytes == 4 * gib
    assert adjusted.gpus[1] == report.gpus[1]
    assert inputs.without_own_use([("n1", report)], ["nobody"])[0][1] is report


def _report(*processes: tuple[str | None, int]) -> Any:
    from memplace.api import NodeMemoryReportStatus

    return NodeMemoryReportStatus.model_validate({"gpus": [{"index": 0, "processes": [
        {"pid": 100 + n, "podUid": uid, "usedMemoryBytes": used}
        for n, (uid, used) in enumerate(processes)]}]})


def test_a_report_that_cannot_say_whose_memory_it_is_is_dropped_only_where_replicas_run():
    unattributed, attributed = _report((None, 70), ("pod-b", 5)), _report(("pod-a", 70))
    reports = [("runs-a", unattributed), ("runs-b", attributed), ("idle", _report((None, 3)))]
    kept = inputs.without_unattributed(reports, ["runs-a", "runs-b"])
    assert [node for node, _ in kept] == ["runs-b", "idle"]


def _profile_body(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "memplace.io/v1alpha1", "kind": "PerformanceProfile",
        "metadata": {"name": "p", "uid": "u", "resourceVersion": "7"},
        "spec": {"architecture": "0123456789ab", "gpuModel": "L4", "precision": "fp8",
                 "kvCacheDtype": "fp8", "engine": "vllm", "gpusPerReplica": 1, **spec},
        "status": {"decode": {"factor": 2.0, "samples": 5, "recentRatios": [2.0] * 5}},
    }


def test_a_profile_is_indexed_for_the_planner_and_a_malformed_one_is_skipped_with_a_log():
    from memplace.operator import indexed
    from memplace.planning.calibration import ProfileKey

    class Log:
        lines: list[str] = []

        def warning(self, text: str) -> None:
            self.lines.append(text)

    good = inputs.profile_entry(_profile_body())
    assert good is not None and good.status.decode.factor == 2.0
    log = Log()
    assert inputs.profile_entry(_profile_body(gpusPerReplica=0), log) is None
    assert log.lines == ["PerformanceProfile p skipped: spec.gpusPerReplica: "
                         "Input should be greater than 0"]
    calibration = indexed.calibration({"profiles": {"p": [good]}})
    assert calibration.factors(ProfileKey.of(good.spec)).decode == 2.0
    assert len(indexed.calibration({})) == 0


class Log:
    def __init__(self) -> None:
        self.warnings: list[str] = []

    def warning(self, text: str) -> None:
        self.warnings.append(text)


async def test_checkpoints_are_read_beside_the_config_of_the_model_and_its_variants(hub):
    config = json.loads((HUB / "openai/gpt-oss-20b/config.json").read_text())
    parsed = inputs.parse_spec({"model": {
        "name": "openai/gpt-oss-20b", "source": "hf://openai/gpt-oss-20b",
        "variants": [
            {"name": "small", "source": "hf://Qwen/Qwen3-0.6B", "qualityLoss": 0.1},
            {"name": "bare", "source": "hf://constructed/config-only", "qualityLoss": 0.1},
        ],
    }})
    log = Log()
    found = await inputs.model_checkpoints(
        parsed, config, {"small": SMALL, "bare": SMALL}, Settings(hf_endpoint=hub.url), log
    )
    assert set(found) == {None, "small"}  # config-only has no safetensors: not an error
    assert found[None].precision == "mxfp4" and found["small"].precision == "bf16"
    assert log.warnings == []


async def test_an_unreadable_checkpoint_falls_back_to_the_config_and_says_so(hub):
    hub.status["openai/gpt-oss-20b"] = 500
    parsed = inputs.parse_spec({"model": {"name": "m", "source": "hf://openai/gpt-oss-20b"}})
    log = Log()
    found = await inputs.model_checkpoints(
        parsed, SMALL, {}, Settings(hf_endpoint=hub.url), log
    )
    assert found == {}
    assert len(log.warnings) == 1 and "computed from config.json" in log.warnings[0]
    assert "HTTP 500" in log.warnings[0]


async def test_a_model_without_a_source_reads_no_checkpoint(hub):
    parsed = inputs.parse_spec({"model": {"name": "m", "config": SMALL}})
    assert await inputs.model_checkpoints(parsed, None, {}, Settings(hf_endpoint=hub.url)) == {}
    assert hub.requests == []

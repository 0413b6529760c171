"""Bad objects are isolated: through the real operator, each ends Invalid with a Warning that
names the field, gets no Deployment, and is not retried in a loop; the others are served.

The 18 objects of issue 15 that a real API server's schema let through (the emulator validates
no schema, so the operator's own checks are what stands here), a missing ConfigMap (Pending
with a Warning naming it, Invalid after ``--input-timeout``), and API errors retrying may not
fix (shown in status and a Warning with the API server's words while the retries go on).
"""

from __future__ import annotations

import asyncio
import copy
from typing import Any

import pytest
from operator_support import (
    DEPLOYMENTS,
    NS,
    add_pool,
    condition,
    events_for,
    eventually,
    md_url,
    model_deployment,
    status_of,
)

CONFIG = {
    "architectures": ["Qwen3ForCausalLM"], "model_type": "qwen3", "hidden_size": 4096,
    "intermediate_size": 12288, "num_attention_heads": 32, "num_key_value_heads": 8,
    "num_hidden_layers": 36, "vocab_size": 151936, "head_dim": 128,
    "max_position_embeddings": 40960, "torch_dtype": "bfloat16",
}


def with_config(**fields: Any) -> dict[str, Any]:
    return {"name": "Qwen/Qwen3-8B", "config": {**CONFIG, **fields}}


# name → (spec.model, extra spec sections, a word the message must contain)
BAD: dict[str, tuple[dict[str, Any], dict[str, Any], str]] = {
    "heads-0": (with_config(num_attention_heads=0), {}, "num_attention_heads"),
    "kv-heads-0": (with_config(num_key_value_heads=0), {}, "num_key_value_heads"),
    "kv-heads-neg": (with_config(num_key_value_heads=-8), {}, "num_key_value_heads"),
    "layers-0": (with_config(num_hidden_layers=0), {}, "num_hidden_layers"),
    "layers-neg": (with_config(num_hidden_layers=-4), {}, "num_hidden_layers"),
    "layers-huge": (with_config(num_hidden_layers=10**18), {}, "num_hidden_layers"),
    "hidden-0": (with_config(hidden_size=0), {}, "hidden_size"),
    "hidden-neg": (with_config(hidden_size=-1024), {}, "hidden_size"),
    "hidden-huge": (with_config(hidden_size=1e300), {}, "hidden_size"),
    "vocab-neg": (with_config(vocab_size=-1), {}, "vocab_size"),
    "hidden-text": (with_config(hidden_size="big"), {}, "hidden_size"),
    "layers-list": (with_config(num_hidden_layers=[1, 2]), {}, "num_hidden_layers"),
    "params-huge": ({"name": "Qwen/Qwen3-8B", "parameters": 1e308}, {}, "parameters"),
    "context-huge": (with_config(), {"workload": {"contextTokens": 10**12}}, "contextTokens"),
    "long-name": ({"name": "x" * 1000, "parameters": 8e9}, {}, "name"),
    "long-variant": ({"name": "Qwen/Qwen3-8B", "parameters": 8e9, "variants": [
        {"name": "v" * 1000, "parameters": 4e9, "qualityLoss": 0.01}]}, {}, "variants"),
    "long-pool": ({"name": "Qwen/Qwen3-8B", "parameters": 8e9},
                  {"placement": {"pools": ["p" * 1000]}}, "pools"),
    "bad-configmap": ({"name": "Qwen/Qwen3-8B", "configMapRef": {"name": "No_Such/Name"}}, {},
                      "configMapRef"),
}


def bad_deployment(name: str) -> dict[str, Any]:
    model, extra, _ = BAD[name]
    md = model_deployment(name)
    md["spec"]["model"] = copy.deepcopy(model)
    for section, fields in extra.items():
        md["spec"].setdefault(section, {}).update(fields)
    return md


def resource_version(cluster, name: str) -> str:
    return cluster.stored("memplace.io/v1alpha1/modeldeployments", NS, name)["metadata"][
        "resourceVersion"]


async def test_each_bad_object_ends_invalid_with_a_warning_naming_its_field(cluster, operator):
    await add_pool(cluster, "a100", 30.0, nodes=2)
    for name in BAD:
        await cluster.create(md_url(), bad_deployment(name))
    await cluster.create(md_url(), model_deployment("good"))

    for name, (_, _, field) in BAD.items():
        status = await eventually(lambda n=name: (s := status_of(cluster, n)).get("phase") and s,
                                  what=f"a phase for {name}")
        assert status["phase"] == "Invalid", (name, status.get("message"))
        assert field in status["message"], (name, status["message"])
        warnings = await eventually(lambda n=name: events_for(cluster, n, "Invalid"))
        assert warnings[0]["type"] == "Warning" and field in warnings[0]["message"]
        assert cluster.stored(DEPLOYMENTS, NS, name) is None
    await eventually(lambda: status_of(cluster, "good").get("phase") == "Placed")

    # No retry loop: several resync passes (0.2 s each) later nothing was rewritten or reposted.
    versions = {name: resource_version(cluster, name) for name in BAD}
    await asyncio.sleep(2.0)
    assert {name: resource_version(cluster, name) for name in BAD} == versions
    assert all(len(events_for(cluster, name, "Invalid")) == 1 for name in BAD)


async def test_a_missing_configmap_is_pending_with_a_warning_then_invalid(cluster,
                                                                          start_operator):
    await add_pool(cluster, "a100", 30.0)
    md = model_deployment("waits")
    md["spec"]["model"] = {"name": "Qwen/Qwen3-8B", "configMapRef": {"name": "qwen-config"}}
    async with start_operator(input_timeout_seconds=3.0):
        await cluster.create(md_url(), md)
        pending = await eventually(
            lambda: (s := status_of(cluster, "waits")).get("phase") == "Pending" and s)
        assert f"ConfigMap {NS}/qwen-config" in pending["message"]
        waiting = await eventually(lambda: events_for(cluster, "waits", "Waiting"))
        assert waiting[0]["type"] == "Warning"
        assert f"ConfigMap {NS}/qwen-config" in waiting[0]["message"]
        invalid = await eventually(
            lambda: (s := status_of(cluster, "waits")).get("phase") == "Invalid" and s,
            timeout=30)
        assert "qwen-config" in invalid["message"] and "--input-timeout" in invalid["message"]
        assert condition(invalid, "Valid")["status"] == "False"
        invalid_events = await eventually(lambda: events_for(cluster, "waits", "Invalid"))
        assert invalid_events[0]["type"] == "Warning"  # Kopf posts events after the status
        assert len(events_for(cluster, "waits", "Waiting")) == 1  # once, not every retry


@pytest.mark.parametrize(("status", "reason", "words"), [
    (500, "InternalError", "failed to allocate a serviceIP: range is full"),
    (400, "BadRequest", 'admission webhook "policy.example.com" denied the request: no GPUs'),
])
async def test_an_api_error_shows_in_status_and_a_warning_while_retries_go_on(
        cluster, operator, status, reason, words):
    await add_pool(cluster, "a100", 30.0)
    cluster.refuse("services", "refused", words, status=status, reason=reason)
    await cluster.create(md_url(), model_deployment("refused"))
    await cluster.create(md_url(), model_deployment("fine"))

    # Kopf's client retries a 500 itself (1 + 2 + 5 + 10 s) before the operator sees it.
    shown = await eventually(lambda: words in ((s := status_of(cluster, "refused"))
                                               .get("message") or "") and s, timeout=60)
    assert shown["phase"] == "Pending"
    assert condition(shown, "Placed")["reason"] == "ApiError"
    warning = await eventually(lambda: events_for(cluster, "refused", "ApiError"))
    assert warning[0]["type"] == "Warning" and words in warning[0]["message"]
    await eventually(lambda: status_of(cluster, "fine").get("phase") == "Placed")

    cluster._refused.pop(("services", "refused"))  # the range has room again
    await eventually(lambda: status_of(cluster, "refused").get("phase") == "Placed", timeout=90)
    assert cluster.stored(DEPLOYMENTS, NS, "refused") is not None

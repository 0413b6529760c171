"""LoRA adapters through the real operator (Kopf, KopfRunner) against KMock's emulator: a
ModelAdapter changes its base's Deployment and is told so; one too large for any placement is
Rejected and the base left as it was; one whose base is deleted is Orphaned, never deleted."""

from __future__ import annotations

import json
from pathlib import Path

from operator_support import (
    DEPLOYMENTS,
    NS,
    add_pool,
    eventually,
    md_url,
    model_deployment,
    status_of,
)

LLAMA = json.loads(
    (Path(__file__).parents[1] / "fixtures" / "configs" / "llama-3.1-8b.json").read_text()
)
MAS = "memplace.io/v1alpha1/modeladapters"


def ma_url(name: str | None = None) -> str:
    url = f"/apis/memplace.io/v1alpha1/namespaces/{NS}/modeladapters"
    return url + (f"/{name}" if name else "")


def model_adapter(name: str, base: str, rank: int = 16) -> dict:
    return {
        "apiVersion": "memplace.io/v1alpha1",
        "kind": "ModelAdapter",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "baseDeployment": base,
            "source": f"hf://org/{name}",
            "rank": rank,
            "targetModules": ["q_proj", "k_proj", "v_proj", "o_proj"],
        },
    }


def base(name: str = "chat") -> dict:
    body = model_deployment(name)
    body["spec"]["model"] = {"name": "meta-llama/Llama-3.1-8B-Instruct", "config": LLAMA}
    body["spec"]["workload"]["maxConcurrentAdapters"] = 64
    body["spec"]["placement"] = {"tiers": ["gpu"]}
    body["spec"]["adapters"] = [
        {
            "name": "support",
            "source": "hf://org/support",
            "rank": 16,
            "targetModules": ["all-linear"],
        }
    ]  # nothing to fetch
    return body


def args_of(cluster, name: str = "chat") -> list[str]:
    deployment = cluster.stored(DEPLOYMENTS, NS, name) or {}
    containers = deployment.get("spec", {}).get("template", {}).get("spec", {}).get("containers")
    return containers[0]["args"] if containers else []


def adapter_status(cluster, name: str) -> dict:
    return (cluster.stored(MAS, NS, name) or {}).get("status") or {}


def lora_modules(args: list[str]) -> list[str]:
    at = args.index("--lora-modules")
    return [a for a in args[at + 1 :] if "=" in a and not a.startswith("--")]


async def test_a_model_adapter_is_loaded_into_its_base_and_a_too_large_one_is_rejected(
    cluster, operator
):
    await add_pool(cluster, "a100", 30.0)
    await cluster.create(md_url(), base())
    first = await eventually(
        lambda: "--enable-lora" in args_of(cluster) and args_of(cluster),
        what="the base's LoRA arguments",
    )
    assert lora_modules(first) == ["support=org/support"]
    assert first[first.index("--max-loras") + 1] == "64"

    await cluster.create(ma_url(), model_adapter("legal", "chat"))
    second = await eventually(
        lambda: "legal=org/legal" in args_of(cluster) and args_of(cluster),
        what="the Deployment to load the ModelAdapter",
        timeout=15,
    )
    assert lora_modules(second) == ["support=org/support", "legal=org/legal"]
    listed = await eventually(
        lambda: (
            {a["name"]: a for a in status_of(cluster, "chat").get("adapters") or []}.get("legal")
            and status_of(cluster, "chat")["adapters"]
        )
    )
    assert [(a["name"], a["origin"], a["state"]) for a in listed] == [
        ("support", "spec", "Loaded"),
        ("legal", "ModelAdapter", "Loaded"),
    ]
    assert listed[1]["memory"] == "26Mi"  # rank 16 on q, k, v, o of Llama-3.1-8B
    legal = await eventually(
        lambda: (
            adapter_status(cluster, "legal").get("phase") == "Loaded"
            and adapter_status(cluster, "legal")
        )
    )
    assert legal["baseDeployment"] == "chat" and legal["memoryBytes"] == 26 * 2**20

    await cluster.create(ma_url(), model_adapter("huge", "chat", rank=512))
    huge = await eventually(
        lambda: (
            adapter_status(cluster, "huge").get("phase") == "Rejected"
            and adapter_status(cluster, "huge")
        ),
        timeout=15,
        what="the too-large adapter to be rejected",
    )
    assert huge["reason"] == "DoesNotFit" and "rank 512" in huge["message"]
    assert args_of(cluster) == second, "the base is untouched"


async def test_removing_a_model_adapter_rolls_the_base_without_it(cluster, operator):
    await add_pool(cluster, "a100", 30.0)
    await cluster.create(md_url(), base())
    await cluster.create(ma_url(), model_adapter("legal", "chat"))
    await eventually(lambda: "legal=org/legal" in args_of(cluster), timeout=15)
    await cluster.remove(ma_url("legal"))
    after = await eventually(
        lambda: "legal=org/legal" not in args_of(cluster) and args_of(cluster), timeout=15
    )
    assert lora_modules(after) == ["support=org/support"]


async def test_deleting_the_base_orphans_its_model_adapters_and_keeps_them(cluster, operator):
    await add_pool(cluster, "a100", 30.0)
    await cluster.create(md_url(), base())
    await cluster.create(ma_url(), model_adapter("legal", "chat"))
    await eventually(lambda: adapter_status(cluster, "legal").get("phase") == "Loaded", timeout=15)
    await cluster.remove(md_url(name="chat"))
    orphan = await eventually(
        lambda: (
            adapter_status(cluster, "legal").get("phase") == "Orphaned"
            and adapter_status(cluster, "legal")
        ),
        timeout=15,
    )
    assert orphan["reason"] == "BaseNotFound"
    assert cluster.stored(MAS, NS, "legal") is not None, "never deleted"


async def test_a_model_adapter_without_its_base_is_orphaned(cluster, operator):
    await add_pool(cluster, "a100", 30.0)
    await cluster.create(md_url(), model_deployment("other"))  # starts the resync loop
    await cluster.create(ma_url(), model_adapter("lonely", "missing"))
    lonely = await eventually(lambda: adapter_status(cluster, "lonely").get("phase"), timeout=15)
    assert lonely == "Orphaned"

"""The operator weighs a hub model by its checkpoint's headers, and says so in status.

The operator reads hf:// sources from the fake hub (``hub`` marker: tests/hub_server.py);
status.estimate.weightsSource tells a user which figure the placement stands on.
"""

from __future__ import annotations

import pytest
from operator_support import add_pool, eventually, md_url, model_deployment, status_of

from hub_server import hub_fixture  # noqa: F401 (the `hub` fixture)

pytestmark = pytest.mark.hub


def gpt_oss(name: str) -> dict:
    body = model_deployment(name, quality={"maxLoss": 0.05})
    body["spec"]["model"] = {"name": "openai/gpt-oss-20b", "source": "hf://openai/gpt-oss-20b"}
    return body


async def test_a_hub_model_is_placed_on_its_checkpoint_bytes(cluster, hub, operator):
    await add_pool(cluster, "a100", 30.0)
    await cluster.create(md_url(), gpt_oss("oss"))
    status = await eventually(
        lambda: (s := status_of(cluster, "oss")).get("estimate") and s, what="an estimate"
    )
    assert status["placement"]["precision"] == "mxfp4"
    assert status["estimate"]["weightsSource"] == "checkpoint"
    assert status["estimate"]["weightsBytes"] == 13_761_264_768
    assert any(path.endswith(".safetensors") for path, _ in hub.requests)


async def test_an_unreadable_checkpoint_leaves_the_weights_to_the_config(cluster, hub, operator):
    hub.files["openai/gpt-oss-20b/model.safetensors.index.json"] = b"not json"
    await add_pool(cluster, "a100", 30.0)
    await cluster.create(md_url(), gpt_oss("oss"))
    status = await eventually(
        lambda: (s := status_of(cluster, "oss")).get("estimate") and s, what="an estimate"
    )
    assert status["phase"] in ("Placed", "Ready")
    assert status["estimate"]["weightsSource"] == "quantizationConfig"

"""Publishing the report through the official client against KMock's emulator (real HTTP).

The kubernetes client is synchronous and the emulator runs on this test's event loop, so every
client call goes through ``asyncio.to_thread``.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import kmock
import pytest
from kubernetes import client

from memplace.agent.errors import PublishError
from memplace.agent.host import HostSample
from memplace.agent.loop import Agent
from memplace.agent.metrics import AgentMetrics
from memplace.agent.nvml import PynvmlSampler
from memplace.agent.publish import Backoff, Publisher, is_transient, merge_patch_body
from memplace.agent.report import PublishPolicy

REPORTS = "memplace.io/v1alpha1/nodememoryreports"
NODE = "gpu-node-1"
NODE_UID = "6a2b1c4d-0000-4000-8000-000000000001"


def publisher_for(url: str, sleeps: list[float]) -> Publisher:
    configuration = client.Configuration(host=url.rstrip("/"))
    api = client.ApiClient(configuration)
    return Publisher(
        NODE,
        client.CustomObjectsApi(api),
        client.CoreV1Api(api),
        backoff=Backoff(initial=0.5, factor=2, cap=2, attempts=5),
        sleep=sleeps.append,
    )


@pytest.fixture()
async def node_cluster(cluster: Any) -> Any:
    cluster.objects["v1/nodes", None, NODE] = {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": NODE, "uid": NODE_UID},
    }
    return cluster


def agent_for(publisher: Publisher, fake: Any, now: list[float]) -> Agent:
    return Agent(
        node_name=NODE,
        sampler=PynvmlSampler(fake),
        policy=PublishPolicy(heartbeat_seconds=60),
        publisher=publisher,
        metrics=AgentMetrics(NODE),
        read_host=lambda _path: HostSample(mem_total_bytes=1 << 30),
        clock=lambda: now[0],
        sleep=lambda _s: None,
    )


async def test_the_report_is_created_owned_by_the_node_and_its_status_patched(
    node_cluster: Any, nvml_fixture: Any
) -> None:
    sleeps: list[float] = []
    agent = agent_for(publisher_for(str(node_cluster.url), sleeps), nvml_fixture("h100x2"), [0.0])

    assert await asyncio.to_thread(agent.step) == "FirstReport"

    stored = node_cluster.stored(REPORTS, None, NODE)
    assert stored["spec"] == {"nodeName": NODE}
    assert stored["metadata"]["ownerReferences"] == [
        {"apiVersion": "v1", "kind": "Node", "name": NODE, "uid": NODE_UID}
    ]
    status = stored["status"]
    assert status["nvml"]["available"] is True
    assert [gpu["uuid"] for gpu in status["gpus"]] == [
        "GPU-6f1e2a3b-4c5d-6e7f-8091-a2b3c4d5e6f7",
        "GPU-0a1b2c3d-4e5f-6071-8293-a4b5c6d7e8f9",
    ]
    assert status["heartbeatSeconds"] == 60
    assert sleeps == []


async def test_an_unchanged_sample_is_not_written_until_the_heartbeat(
    node_cluster: Any, nvml_fixture: Any
) -> None:
    now = [0.0]
    fake = nvml_fixture("h100x2")
    agent = agent_for(publisher_for(str(node_cluster.url), []), fake, now)
    await asyncio.to_thread(agent.step)

    now[0] = 10.0
    assert await asyncio.to_thread(agent.step) is None
    fake.gpus[1].used_bytes = 8 << 30
    assert (await asyncio.to_thread(agent.step)).startswith("MemoryChanged: GPU 1")
    now[0] = 80.0
    assert await asyncio.to_thread(agent.step) == "Heartbeat"
    assert node_cluster.stored(REPORTS, None, NODE)["status"]["gpus"][1]["memoryUsedBytes"] == (
        8 << 30
    )


async def test_a_500_on_the_status_patch_is_retried_with_backoff(
    node_cluster: Any, nvml_fixture: Any
) -> None:
    failing = node_cluster["patch", kmock.resource(REPORTS), kmock.subresource("status")][:2] << 500
    sleeps: list[float] = []
    agent = agent_for(publisher_for(str(node_cluster.url), sleeps), nvml_fixture("h100x2"), [0.0])

    assert await asyncio.to_thread(agent.step) == "FirstReport"

    assert len(list(failing)) == 2
    assert sleeps == [0.5, 1.0]
    assert node_cluster.stored(REPORTS, None, NODE)["status"]["gpus"]


async def test_an_existing_report_answers_409_and_is_taken_over(
    node_cluster: Any, nvml_fixture: Any
) -> None:
    node_cluster.objects[REPORTS, None, NODE] = {
        "apiVersion": "memplace.io/v1alpha1",
        "kind": "NodeMemoryReport",
        "metadata": {"name": NODE},
        "spec": {"nodeName": "stale"},
    }
    agent = agent_for(publisher_for(str(node_cluster.url), []), nvml_fixture("h100x2"), [0.0])

    assert await asyncio.to_thread(agent.step) == "FirstReport"

    stored = node_cluster.stored(REPORTS, None, NODE)
    assert stored["spec"] == {"nodeName": NODE}
    assert stored["metadata"]["ownerReferences"][0]["uid"] == NODE_UID
    assert stored["status"]["gpus"]


async def test_publish_errors_are_counted_and_the_agent_keeps_going(
    node_cluster: Any, nvml_fixture: Any
) -> None:
    node_cluster["patch", kmock.resource(REPORTS)] << 503
    sleeps: list[float] = []
    agent = agent_for(publisher_for(str(node_cluster.url), sleeps), nvml_fixture("h100x2"), [0.0])

    assert await asyncio.to_thread(agent.step) is None
    assert sleeps == [0.5, 1.0, 2.0, 2.0]  # capped
    assert "memplace_agent_publish_errors_total 1.0" in agent.metrics.text()
    assert agent.published is None  # so the next pass tries again


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_connection_refused_is_retried_then_raised_as_publish_error() -> None:
    sleeps: list[float] = []
    publisher = publisher_for(f"http://127.0.0.1:{_closed_port()}", sleeps)
    publisher.core_api.api_client.configuration.retries = 0

    with pytest.raises(PublishError, match="gave up after 5 tries") as caught:
        publisher.node_uid()
    assert caught.value.status is None
    assert sleeps == [0.5, 1.0, 2.0, 2.0]


def test_a_forbidden_answer_is_not_retried() -> None:
    from kubernetes.client.exceptions import ApiException

    class Forbidden:
        calls = 0

        def read_node(self, name: str) -> Any:
            self.calls += 1
            raise ApiException(status=403, reason="Forbidden")

    sleeps: list[float] = []
    core = Forbidden()
    publisher = Publisher(NODE, object(), core, sleep=sleeps.append)
    with pytest.raises(PublishError) as caught:
        publisher.node_uid()
    assert caught.value.status == 403 and core.calls == 1 and sleeps == []


def test_transient_errors_are_told_apart() -> None:
    from kubernetes.client.exceptions import ApiException
    from urllib3.exceptions import NewConnectionError

    assert is_transient(ApiException(status=409))
    assert is_transient(ApiException(status=500))
    assert is_transient(ApiException(status=429))
    assert is_transient(NewConnectionError(None, "refused"))
    assert not is_transient(ApiException(status=404))
    assert not is_transient(ValueError("bug"))


def test_merge_patch_body_deletes_unset_keys_but_keeps_lists_clean() -> None:
    status = {"nvml": {"available": True, "error": None}, "gpus": [{"index": 0, "error": None}]}
    assert merge_patch_body(status) == {
        "nvml": {"available": True, "error": None},
        "gpus": [{"index": 0}],
    }


def test_backoff_grows_and_is_capped() -> None:
    assert list(Backoff(initial=1, factor=2, cap=5, attempts=6).delays()) == [1, 2, 4, 5, 5]

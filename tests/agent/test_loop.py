"""The run loop: it samples every interval, retries NVML, and survives anything transient."""

from __future__ import annotations

from typing import Any

import pytest

from memplace.agent.host import HostSample
from memplace.agent.loop import Agent
from memplace.agent.metrics import AgentMetrics
from memplace.agent.nvml import PynvmlSampler


class Stop(Exception):
    """Raised by the injected sleep to end a test's loop."""


def stop_after(passes: int, sleeps: list[float]) -> Any:
    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        if len(sleeps) >= passes:
            raise Stop

    return sleep


def test_the_loop_survives_an_exception_and_keeps_going(nvml_fixture: Any) -> None:
    class Flaky(PynvmlSampler):
        calls = 0

        def sample(self):
            self.calls += 1
            if self.calls == 2:
                raise RuntimeError("something unexpected")
            return super().sample()

    sampler = Flaky(nvml_fixture("h100x2"))
    sleeps: list[float] = []
    metrics = AgentMetrics("n")
    agent = Agent(
        node_name="n",
        sampler=sampler,
        interval=10,
        metrics=metrics,
        read_host=lambda _p: HostSample(),
        sleep=stop_after(4, sleeps),
    )

    with pytest.raises(Stop):
        agent.run()

    assert sampler.calls == 4
    assert sleeps == [10, 10, 10, 10]
    assert "memplace_gpu_memory_total_bytes{" in metrics.text()


def test_the_loop_retries_nvml_init_every_pass_without_crashing(nvml_fixture: Any) -> None:
    fake = nvml_fixture("no-driver")
    agent = Agent(
        node_name="n",
        sampler=PynvmlSampler(fake),
        metrics=AgentMetrics("n"),
        read_host=lambda _p: HostSample(mem_total_bytes=1),
        sleep=lambda _s: None,
    )

    agent.run(max_passes=3)

    assert fake.calls.count("nvmlInit") == 3
    assert 'memplace_nvml_errors_total{kind="NVMLError_LibraryNotFound"} 3.0' in (
        agent.metrics.text()
    )


def test_without_a_publisher_the_loop_only_samples(nvml_fixture: Any) -> None:
    fake = nvml_fixture("h100x2")
    agent = Agent(
        node_name="n",
        sampler=PynvmlSampler(fake),
        read_host=lambda _p: HostSample(),
        sleep=lambda _s: None,
    )
    agent.run(max_passes=2)
    assert agent.passes == 2 and agent.published is None
    assert fake.calls[-1] == "nvmlShutdown"  # closed at the end

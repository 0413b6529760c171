"""The agent's run loop: sample → metrics → maybe publish → sleep, forever.

Nothing transient ends it: NVML missing is a report (and ``nvmlInit`` is tried again next pass),
a lost GPU is a report, a failed write is a counted ``PublishError``, and anything unexpected is
logged and the loop goes on. Clocks and sleep are injected, so tests run it for N passes.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime

from memplace.agent.errors import PublishError
from memplace.agent.host import HostSample, read_host
from memplace.agent.metrics import AgentMetrics
from memplace.agent.nvml import GpuSample, Sampler
from memplace.agent.publish import Publisher
from memplace.agent.report import NodeSample, PublishPolicy, publish_reason, to_report, to_status

__all__ = ["Agent"]

logger = logging.getLogger(__name__)


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclasses.dataclass
class Agent:
    node_name: str
    sampler: Sampler
    policy: PublishPolicy = dataclasses.field(default_factory=PublishPolicy)
    interval: float = 10.0
    offload_path: str | None = None
    metrics: AgentMetrics | None = None
    publisher: Publisher | None = None
    read_host: Callable[[str | None], HostSample] = read_host
    clock: Callable[[], float] = time.monotonic
    wall_clock: Callable[[], datetime] = _utcnow
    sleep: Callable[[float], None] = time.sleep

    published: NodeSample | None = dataclasses.field(default=None, init=False)
    published_at: float | None = dataclasses.field(default=None, init=False)
    passes: int = dataclasses.field(default=0, init=False)

    def take_sample(self) -> NodeSample:
        sampling = self.sampler.sample()
        return NodeSample.of(self.wall_clock(), sampling, self.read_host(self.offload_path))

    def report(self, sample: NodeSample, node_uid: str | None = None) -> dict:
        return to_report(
            self.node_name,
            sample,
            heartbeat_seconds=self.policy.heartbeat_seconds,
            node_uid=node_uid,
        )

    def step(self) -> str | None:
        """One pass; returns why it published, or None when it did not."""
        sample = self.take_sample()
        if self.metrics is not None:
            self.metrics.observe(sample)
        if self.publisher is None:
            return None
        reason = publish_reason(
            self.published,
            sample,
            published_at=self.published_at,
            now=self.clock(),
            policy=self.policy,
        )
        if reason is None:
            return None
        try:
            self.publish(sample)
        except PublishError as error:
            logger.warning("publishing the report failed: %s", error)
            if self.metrics is not None:
                self.metrics.publish_failed()
            return None
        logger.info("published the report (%s)", reason)
        return reason

    def publish(self, sample: NodeSample) -> None:
        """Write ``sample`` now (retrying transient errors); raises ``PublishError``."""
        if self.publisher is None:
            raise RuntimeError("this agent has no publisher (--no-publish)")
        now = self.clock()
        sample = self._with_pod_names(sample)
        status = to_status(sample, heartbeat_seconds=self.policy.heartbeat_seconds)
        self.publisher.publish(self.report(sample), status.model_dump(by_alias=True, mode="json"))
        self.published, self.published_at = sample, now

    def _with_pod_names(self, sample: NodeSample) -> NodeSample:
        if self.publisher is None or not any(
            process.pod_uid for gpu in sample.gpus for process in gpu.processes
        ):
            return sample
        names = self.publisher.pod_names()

        def named(gpu: GpuSample) -> GpuSample:
            processes = tuple(
                dataclasses.replace(
                    process,
                    pod_namespace=names[process.pod_uid][0],
                    pod_name=names[process.pod_uid][1],
                )
                if process.pod_uid in names
                else process
                for process in gpu.processes
            )
            return dataclasses.replace(gpu, processes=processes)

        return dataclasses.replace(sample, gpus=tuple(named(gpu) for gpu in sample.gpus))

    def run(self, max_passes: int | None = None) -> None:
        """Sample every ``interval`` seconds until ``max_passes`` (None: forever)."""
        try:
            while max_passes is None or self.passes < max_passes:
                self.passes += 1
                try:
                    self.step()
                except Exception:
                    logger.exception("agent pass %d failed; carrying on", self.passes)
                self.sleep(self.interval)
        finally:
            self.sampler.close()

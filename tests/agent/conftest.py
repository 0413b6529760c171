"""Fixtures for the agent: fake NVML modules from tests/fixtures/nvml, and fixed samples."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from memplace.agent.fake import FakeNvml, load_fixture

EXAMPLES = Path(__file__).resolve().parents[1] / "fixtures" / "nvml"


def fake_nvml(name: str) -> FakeNvml:
    """A fresh fake NVML module from ``tests/fixtures/nvml/<name>.yaml``."""
    return load_fixture(EXAMPLES / f"{name}.yaml")


@pytest.fixture()
def nvml_fixture() -> Callable[[str], FakeNvml]:
    """``nvml_fixture("a100-mig")``: a fresh fake module from that example."""
    return fake_nvml


@pytest.fixture()
def h100x2() -> FakeNvml:
    return fake_nvml("h100x2")

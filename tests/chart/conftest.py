"""Fixtures for the chart tests: each test runs against defaults and every main variation."""

from __future__ import annotations

from typing import Any

import pytest

from .rendering import VARIATIONS, render_chart


@pytest.fixture(params=sorted(VARIATIONS), ids=sorted(VARIATIONS))
def variation(request: pytest.FixtureRequest) -> tuple[str, dict[str, Any]]:
    return request.param, VARIATIONS[request.param]


@pytest.fixture
def rendered(variation: tuple[str, dict[str, Any]]) -> list[dict]:
    return render_chart(variation[1])


@pytest.fixture(scope="module")
def default_objects() -> list[dict]:
    return render_chart()

"""Helpers for the operator's integration tests."""

from __future__ import annotations

import asyncio
from typing import Any


async def eventually(
    check: Any, *, timeout: float = 10.0, interval: float = 0.05, what: str = "condition"
) -> Any:
    """Poll ``check()`` (sync or async) until it returns something truthy; fail after timeout."""
    deadline = asyncio.get_running_loop().time() + timeout
    last_error: BaseException | None = None
    while True:
        try:
            result = check()
            if asyncio.iscoroutine(result):
                result = await result
            if result:
                return result
        except (AssertionError, KeyError, TypeError, IndexError) as error:
            last_error = error
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}") from last_error
        await asyncio.sleep(interval)

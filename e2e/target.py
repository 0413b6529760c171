"""Which cluster e2e runs against, and whether its absence skips or fails.

A cluster is *required* when the run asks for e2e: ``E2E_KUBECONFIG`` names one, or an e2e
setting (``E2E_FAKE_NODES``, ``E2E_OPERATOR``, ``E2E_NAMESPACE``) is given. Then a cluster that
cannot be reached, or a kubeconfig that cannot be read, fails every test: a broken environment
must not pass as "skipped". A plain ``KUBECONFIG`` (a developer's default) does not require one:
if it is unreachable the tests skip and say how to make that a failure.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping

__all__ = ["Target", "target"]

REQUIRING = ("E2E_KUBECONFIG", "E2E_FAKE_NODES", "E2E_OPERATOR", "E2E_NAMESPACE")


@dataclasses.dataclass(frozen=True)
class Target:
    kubeconfig: str | None
    """The kubeconfig named by the environment; None: none is (kind may make a cluster)."""
    required: bool
    """Whether a missing or unreachable cluster fails rather than skips."""
    source: str
    """Which variable named it, for messages."""

    def unavailable(self, why: str) -> str:
        hint = (
            ""
            if self.required or not self.kubeconfig
            else (
                f" ({self.source} is not a request for e2e: set E2E_KUBECONFIG to make this fail)"
            )
        )
        return f"{why}{hint}"


def target(env: Mapping[str, str] = os.environ) -> Target:
    required = any(env.get(name) for name in REQUIRING)
    for name in ("E2E_KUBECONFIG", "KUBECONFIG"):
        if env.get(name):
            return Target(env[name].split(os.pathsep)[0], required, name)
    return Target(None, required, "")

"""CLI tests drive `memplace run` with Kopf's loop stubbed out; what `run` registers in Kopf's
process-wide registry (a kubeconfig login, the peering lifetime) must not reach the
integration tests that run the real operator later in the same process."""

from __future__ import annotations

import kopf
import pytest


@pytest.fixture(autouse=True)
def isolated_kopf_registry():
    """Each CLI test gets a fresh default registry, and the previous one back afterwards.

    The operator's handlers are imported first, so that they register in the registry the
    integration tests use (a module registers its handlers once, on its first import)."""
    import memplace.operator.handlers  # noqa: F401

    before = kopf.get_default_registry()
    kopf.set_default_registry(kopf.OperatorRegistry())
    try:
        yield
    finally:
        kopf.set_default_registry(before)

"""Objects e2e creates for one run, and their removal, on a real API server.

Everything a run creates is named with the run's id (``run_id``) and labelled
``memplace.io/e2e-run``, so that a rerun on the same cluster never meets a leftover of an
earlier one (a namespace still Terminating, a pool with another selector). A namespace is
deleted at the end and awaited: the namespace controller deletes what is in it, the operator
(still running) releases its finalizers, the fake kubelet finishes the pods' deletions.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Iterator

from fakes import wait_for
from kubeapi import Api

__all__ = ["RUN_LABEL", "namespace", "new_run_id"]

RUN_LABEL = "memplace.io/e2e-run"
NAMESPACE_GONE_S = 240


def new_run_id() -> str:
    return secrets.token_hex(3)


def _left_in(api: Api, name: str) -> str:
    found = api.get(f"/api/v1/namespaces/{name}") or {}
    conditions = [
        f"{c.get('type')}: {c.get('message')}"
        for c in (found.get("status") or {}).get("conditions") or []
        if c.get("status") == "True"
    ]
    return "; ".join(conditions) or "no condition says why"


@contextlib.contextmanager
def namespace(api: Api, name: str, run_id: str) -> Iterator[str]:
    """A new namespace ``name`` for the duration; deleted and awaited afterwards."""
    api.create(
        "/api/v1/namespaces",
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": name, "labels": {RUN_LABEL: run_id}},
        },
    )
    wait_for(
        lambda: api.get(f"/api/v1/namespaces/{name}/serviceaccounts/default"),
        timeout=60,
        what=f"the default ServiceAccount of {name} (the ReplicaSet controller "
        "cannot create pods before the serviceaccount controller made it)",
    )
    try:
        yield name
    finally:
        api.delete(f"/api/v1/namespaces/{name}")
        wait_for(
            lambda: api.get(f"/api/v1/namespaces/{name}") is None,
            timeout=NAMESPACE_GONE_S,
            interval=2,
            what=f"namespace {name} to be deleted",
            state=lambda: _left_in(api, name),
        )

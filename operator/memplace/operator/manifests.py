"""The Deployment and Service one plan runs as: what the operator applies and what ``memplace
plan -o manifests`` prints, from the same code. Pure.

The plan's status fields (``Plan.status_fields``) and the planning cluster's pool give the
placement, the estimate and the pool's selector, tolerations and sharing; ``render.render``
turns them into manifests (``lora``: the plan's ``adapters.LoraSlots``, loaded beside the
model). Offline there is no ModelDeployment uid to own them: ``owner_uid=None`` renders no
ownerReferences (the operator sets them when it applies).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from memplace.api import PlacementPoolSpec

from . import inputs, render

__all__ = ["desired"]


def desired(
    owner_name: str,
    namespace: str,
    owner_uid: str | None,
    spec_model: Any,
    fields: Mapping[str, Any],
    cluster: Any,
    config: Any,
    lora: Any = None,
    *,
    name: str | None = None,
    serving: str | None = None,
    pod_annotations: Mapping[str, str] | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(Deployment, Service) for the placed plan ``fields``; ``render.RenderError`` if none.

    ``name``: the Deployment's (default: the owner's); ``serving``: the Deployment the Service
    selects (default: this one); ``pod_annotations``: added to the pod template; as
    ``render.render`` takes them."""
    placed_now = inputs.placed_entry({**fields, "phase": "Placed"})
    if placed_now is None:
        raise render.RenderError("the plan has no usable placement")
    pool = cluster.pool(placed_now.placement.pool) if cluster is not None else None
    if pool is None:
        raise render.RenderError(f"pool {placed_now.placement.pool} is gone")
    pool_spec = PlacementPoolSpec.model_validate(
        {
            "nodeSelector": dict(pool.node_selector) or {"kubernetes.io/os": "linux"},
            "tolerations": [_wire(t) for t in pool.tolerations],
            "sharing": pool.sharing,
        }
    )
    owner = render.Owner(name=owner_name, namespace=namespace, uid=owner_uid or "")
    deployment, service = render.render(
        owner,
        spec_model,
        placed_now.placement,
        placed_now.estimate,
        pool_spec,
        name=name,
        serving=serving,
        gpu_memory_bytes=pool.gpu_memory_bytes or None,
        model_config=config,
        lora=lora,
        pod_annotations=pod_annotations,
    )
    if owner_uid is None:
        for manifest in (deployment, service):
            manifest["metadata"].pop("ownerReferences", None)
    return deployment, service


def _wire(value: Any) -> Any:
    return value.to_wire() if hasattr(value, "to_wire") else dict(value)

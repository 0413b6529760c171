"""Planning a base model with its LoRA adapters: one Deployment, sized with every adapter.

``decide`` wraps the planner's one-deployment decision (``decide._decide``):

1. collect the adapters: ``spec.adapters`` first, then the ModelAdapters naming the deployment
   (``Listed``); a ModelAdapter whose name the spec already uses is Rejected (``NameTaken``),
   and so is an adapter the engine cannot load (``EngineUnsupported``:
   ``adapters.adapter_refusal``);
2. plan the base with the rest (``DeploymentRequest.lora``): every candidate's memory carries
   the engine's LoRA reservation (``with_adapters``), its decode the active adapters' bytes
   (``slowed``), its demand the adapters' demand, and no variant serves (a distilled student
   cannot serve adapters trained on the base: ``AdaptersNeedBase``);
3. while nothing places, drop adapters and plan again: when memory emptied the candidates,
   those of the highest rank (they set vLLM's ``--max-lora-rank``, and so every slot's size);
   when speed or room did, the one with the most demand. Those are Rejected
   with the reason the base did not place with them (``DoesNotFit``, ``TooSlow`` or
   ``NoCapacity``: the check that emptied the candidates). If the base does not
   place even alone, every adapter is Pending.

Cost: ``CostStatus.separatePerHour`` is what one deployment per fine-tune would cost: the base
alone for its own demand, plus one copy of the base per loaded adapter for that adapter's
demand (a fine-tune merged into its own copy of the weights). Pure, like the planner.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from memplace.api import AdapterFields, AdapterStatus, Alternative

from .adapters import (
    ALL_TARGETS,
    Adapter,
    LoraSlots,
    ModuleShape,
    adapter_refusal,
    shapes_from_architecture,
    shapes_from_config,
)
from .architecture import ConfigError, architecture_from_config, architecture_from_parameters

__all__ = [
    "Listed",
    "decide",
    "has_adapters",
    "requirements",
    "shapes_for",
    "slowed",
    "variant_problem",
    "with_adapters",
]


@dataclass(frozen=True)
class Listed:
    """A ModelAdapter as the planner sees it: its name and its spec."""

    name: str
    spec: AdapterFields


def has_adapters(request: Any) -> bool:
    return bool(request.spec.adapters or request.model_adapters)


def with_adapters(mem: Any, slots: LoraSlots, gpus: int) -> Any:
    """``mem`` with the engine's LoRA reservation on each GPU of the replica."""
    per_gpu = slots.gpu_bytes_per_gpu(gpus)
    if not per_gpu:
        return mem
    return dataclasses.replace(
        mem, adapter_bytes=per_gpu * max(gpus, 1), adapter_bytes_per_gpu=per_gpu
    )


def slowed(speed: Any, slots: LoraSlots, base_weight_bytes: int) -> Any:
    """``speed`` with every slot's adapter active in a decode step (``decode_slowdown``)."""
    factor = slots.decode_factor(base_weight_bytes)
    if factor == 1.0:
        return speed
    return dataclasses.replace(
        speed,
        time_per_output_token_ms=speed.time_per_output_token_ms * factor,
        output_tokens_per_second_per_replica=speed.output_tokens_per_second_per_replica / factor,
    )


def requirements(r: Any, slots: LoraSlots | None) -> Any:
    """The spec's requirements with the adapters: their slots and their demand."""
    if slots is None:
        return r
    return dataclasses.replace(
        r,
        lora=slots,
        demand_tokens_per_second=r.demand_tokens_per_second + slots.demand_tokens_per_second,
    )


def variant_problem(variant: str) -> Alternative:
    return Alternative(
        variant=variant,
        reason="LoRA adapters were trained on the base model: a variant cannot serve them",
        code="AdaptersNeedBase",
    )


def shapes_for(spec: Any, resolved: Mapping[str, Any] | None) -> tuple[ModuleShape, ...] | None:
    """The base's module shapes: from its config.json, else from its parameter count; None
    when neither can size it (the planner then says why the base is Invalid)."""
    config = spec.model.config if spec.model.config is not None else resolved
    try:
        if config is not None:
            try:
                return shapes_from_config(config)
            except (KeyError, TypeError, ValueError, ZeroDivisionError):
                return shapes_from_architecture(architecture_from_config(config))
        if spec.model.parameters is not None:
            arch = architecture_from_parameters(spec.model.parameters, spec.model.active_parameters)
            return shapes_from_architecture(arch)
    except ConfigError:
        return None
    return None


def _adapter(name: str, fields: AdapterFields) -> Adapter:
    return Adapter(
        name=name,
        rank=fields.rank,
        targets=tuple(fields.target_modules) if fields.target_modules else ALL_TARGETS,
        output_tokens_per_second=fields.output_tokens_per_second or 0.0,
        quality_loss=fields.quality_loss or 0.0,
        source=fields.source,
        targets_given=bool(fields.target_modules),
    )


def _status(
    adapter: Adapter, origin: str, state: str, slots: LoraSlots | None, reason=None, message=None
) -> AdapterStatus:
    return AdapterStatus(
        name=adapter.name,
        origin=origin,
        rank=adapter.rank,
        memory_bytes=slots.bytes_of(adapter) if slots is not None else None,
        state=state,
        reason=reason,
        message=message,
    )


def decide(request: Any, plan_one: Callable[[Any], Any], separately: Callable[[Any], Any]) -> Any:
    """The plan of ``request`` with its adapters (see the module docstring)."""
    spec = request.spec
    engine = spec.runtime.engine
    shapes = shapes_for(spec, request.model_config)
    listed: list[tuple[Adapter, str]] = [(_adapter(a.name, a), "spec") for a in spec.adapters]
    taken = {a.name for a, _ in listed}
    statuses: dict[str, AdapterStatus] = {}
    order: list[str] = []
    for m in sorted(request.model_adapters, key=lambda m: m.name):
        adapter = _adapter(m.name, m.spec)
        if m.name in taken:
            order.append(f"ModelAdapter/{m.name}")
            statuses[f"ModelAdapter/{m.name}"] = _status(
                adapter,
                "ModelAdapter",
                "Rejected",
                None,
                "NameTaken",
                f"spec.adapters of {request.name} already has an adapter named {m.name}",
            )
            continue
        taken.add(m.name)
        listed.append((adapter, "ModelAdapter"))
    if shapes is None:  # the base cannot be sized: its plan says why
        plan = plan_one(dataclasses.replace(request, lora=LoraSlots.plan(engine, (), [])))
        pending = [_status(a, o, "Pending", None, message=plan.message) for a, o in listed]
        return dataclasses.replace(plan, adapters=tuple(pending))
    empty = LoraSlots.plan(engine, shapes, [])
    origin = {a.name: o for a, o in listed}
    loadable: list[Adapter] = []
    for adapter, o in listed:
        refusal = adapter_refusal(adapter, engine, shapes)
        if refusal is not None:
            order.append(adapter.name)
            statuses[adapter.name] = _status(
                adapter, o, "Rejected", empty, "EngineUnsupported", refusal.reason
            )
        else:
            loadable.append(adapter)
    dropped: list[tuple[Adapter, str, str]] = []
    concurrent = spec.workload.max_concurrent_adapters
    while True:
        slots = LoraSlots.plan(engine, shapes, loadable, concurrent)
        plan = plan_one(dataclasses.replace(request, lora=slots))
        if plan.phase == "Placed" or not loadable:
            break
        code = _code(plan.funnel)
        if code == "DoesNotFit":  # memory: the top rank sizes every slot
            top = max(a.rank for a in loadable)
            out = [a for a in loadable if a.rank == top]
            why = f"with rank {top} the base does not place: {plan.message}"
        else:  # speed or room: the busiest adapter's demand
            out = [max(loadable, key=lambda a: (a.output_tokens_per_second, a.rank, a.name))]
            why = (
                f"with its {out[0].output_tokens_per_second:g} tok/s the base does not place: "
                f"{plan.message}"
            )
        dropped += [(a, why, code) for a in out]
        loadable = [a for a in loadable if a not in out]
    placed = plan.phase == "Placed"
    for adapter in loadable:
        statuses[adapter.name] = _status(
            adapter,
            origin[adapter.name],
            "Loaded" if placed else "Pending",
            slots,
            "Loaded" if placed else None,
            None if placed else plan.message,
        )
    for adapter, why, code in dropped:
        state, reason = ("Rejected", code) if placed else ("Pending", None)
        statuses[adapter.name] = _status(
            adapter, origin[adapter.name], state, slots, reason, why if placed else plan.message
        )
    names = [a.name for a, _ in listed] + [k for k in order if k not in origin]
    ordered = tuple(statuses[n] for n in dict.fromkeys(names) if n in statuses)
    plan = dataclasses.replace(plan, adapters=ordered, lora=slots if placed else None)
    if placed and loadable:
        plan = _with_separate_cost(plan, request, loadable, empty, separately)
    return plan


STAGE_CODES = {"fit in memory": "DoesNotFit", "meet the SLO": "TooSlow"}
"""The check that emptied the candidates with an adapter, as the adapter's rejection code."""


def _code(funnel: Sequence[tuple[str, int]]) -> str:
    for name, count in funnel[1:]:
        if count == 0:
            return STAGE_CODES.get(name, "NoCapacity")
    return "NoCapacity"


def _with_separate_cost(
    plan: Any,
    request: Any,
    loaded: Sequence[Adapter],
    empty: LoraSlots,
    separately: Callable[[Any], Any],
) -> Any:
    """``cost.separatePerHour``: the base alone, plus a copy of it per loaded fine-tune."""
    workload = request.spec.workload
    total = 0.0
    for demand in [
        workload.output_tokens_per_second,
        *(a.output_tokens_per_second for a in loaded),
    ]:
        spec = request.spec.model_copy(
            update={
                "workload": workload.model_copy(update={"output_tokens_per_second": demand}),
                "adapters": [],
            }
        )
        alone = separately(
            dataclasses.replace(request, spec=spec, model_adapters=(), lora=empty, current=None)
        )
        if alone.phase != "Placed" or alone.cost is None or alone.cost.per_hour is None:
            return plan
        total += alone.cost.per_hour
    cost = plan.cost.model_copy(update={"separate_per_hour": round(total, 4)})
    return dataclasses.replace(plan, cost=cost)

"""Step 1, sizing: the model and its variants as architectures, or why the spec is Invalid.

The inline ``spec.model.config``, else the config.json the shell resolved
(``DeploymentRequest.model_config``, ``variant_configs``), else ``parameters``; a published
checkpoint's headers (``checkpoint``) set the weights and their native precision. A variant
that cannot be sized is listed as an Invalid alternative; the model itself failing makes the
whole plan Invalid (``_Invalid``). ``_applicable``: the PerformanceProfiles' factors that
apply to these architectures (``Calibration.relevant``), part of every later memo key.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from memplace.api import (
    Alternative,
)

from . import lora
from .architecture import ConfigError, architecture_from_config, architecture_from_parameters
from .calibration import (
    Calibration,
)
from .candidates import Variant
from .checkpoint import Checkpoint, native_precision, with_checkpoint
from .memo import PARAMETER_MODELS_KEPT, _fingerprint, _table
from .plan_types import DeploymentRequest


class _Invalid(Exception):
    pass


def _size(
    sized: Any,
    resolved: Mapping[str, Any] | None,
    what: str,
    memo: dict,
    checkpoint: Checkpoint | None = None,
) -> tuple[Any, str | None]:
    config = sized.config if sized.config is not None else resolved
    try:
        if config is not None:
            arch = architecture_from_config(config)
            if checkpoint is not None:
                return with_checkpoint(arch, checkpoint), checkpoint.native
            return arch, native_precision(config)
        if sized.parameters is not None:
            key = (sized.parameters, sized.active_parameters)
            by_parameters = _table(memo, "parameters", PARAMETER_MODELS_KEPT)
            arch = by_parameters.get(key)
            if arch is None:
                arch = by_parameters.put(key, architecture_from_parameters(*key))
            return arch, None
    except ConfigError as error:
        raise _Invalid(f"{what}: {error}") from error
    if sized.config_map_ref is not None:
        raise _Invalid(
            f"{what}: config.json from ConfigMap {sized.config_map_ref.name!r} "
            f"(key {sized.config_map_ref.key!r}) was not resolved"
        )
    raise _Invalid(
        f"{what}: config.json from {sized.source} was not resolved; "
        "give spec.model.parameters to plan without it"
    )


def _variants(request: DeploymentRequest, memo: dict) -> tuple[list[Variant], list[Alternative]]:
    model = request.spec.model
    checkpoints = request.checkpoints
    arch, native = _size(
        model, request.model_config, f"model {model.name}", memo, checkpoints.get(None)
    )
    if (why := _context_refusal(arch, request)) is not None:
        raise _Invalid(f"model {model.name}: {why}")
    variants = [Variant(None, arch, 0.0, native)]
    problems = []
    if request.lora is not None and request.lora.adapters:
        return variants, [lora.variant_problem(v.name) for v in model.variants]
    for v in model.variants:
        try:
            varch, vnative = _size(
                v,
                request.variant_configs.get(v.name),
                f"variant {v.name}",
                memo,
                checkpoints.get(v.name),
            )
        except _Invalid as error:
            problems.append(Alternative(variant=v.name, reason=str(error), code="Invalid"))
            continue
        if (why := _context_refusal(varch, request)) is not None:
            reason = f"variant {v.name}: {why}"
            problems.append(Alternative(variant=v.name, reason=reason, code="Invalid"))
            continue
        variants.append(Variant(v.name, varch, v.quality_loss, vnative))
    return variants, problems


def _context_refusal(arch: Any, request: DeploymentRequest) -> str | None:
    """contextTokens beyond what the model serves: vLLM refuses a ``--max-model-len`` above the
    derived maximum ("User-specified max_model_len … is greater than the derived
    max_model_len", vllm/config/model.py), so the deployment cannot start anywhere."""
    longest = getattr(arch, "max_context_tokens", None)
    asked = request.spec.workload.context_tokens
    if longest is None or asked <= longest:
        return None
    return (
        f"contextTokens {asked} is above the {longest} tokens the model serves "
        "(max_position_embeddings and rope scaling in config.json)"
    )


_Applicable = tuple
"""``Calibration.relevant``: the (key, factors) that apply to a deployment; () = none."""


def _applicable(
    variants: Sequence[Variant], engine: str, calibration: Calibration | None, memo: dict
) -> _Applicable:
    if calibration is None or not len(calibration):
        return ()
    prints = [_fingerprint(memo, v.architecture) for v in variants]
    return calibration.relevant(prints, engine)

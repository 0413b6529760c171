"""The engine arguments that load a base's LoRA adapters beside it. Pure.

==========  ================================================================================
engine      what the plan sets (for the adapters the plan Loaded, ``adapters.LoraSlots``)
==========  ================================================================================
vllm        --enable-lora --max-loras N --max-lora-rank R --max-cpu-loras C
            --lora-modules name=source … (vLLM docs, "LoRA Adapters", "Serving LoRA
            Adapters": a source is a local path or a Hugging Face repository id)
llamacpp    --lora-init-without-apply and --lora FILE per adapter (tools/server/README.md:
            loaded at start, applied per request through the request's ``lora`` field, so one
            tenant's adapter never applies to another's requests)
tgi         LORA_ADAPTERS=name=source,… (TGI docs, "Multi-LoRA": ``LORA_ADAPTERS`` accepts
            repository ids and ``name=path`` pairs)
==========  ================================================================================

Other engines never get here: the planner rejects their adapters (``EngineUnsupported``).
Adapter order is the plan's, so the same plan renders the same arguments (the plan hash).
"""

from __future__ import annotations

from typing import Any

__all__ = ["engine_args", "model_source"]


def model_source(source: str) -> str:
    """What an engine reads: ``hf://org/name`` as the repository id ``org/name``."""
    return source.removeprefix("hf://")


def engine_args(engine: str, slots: Any) -> tuple[list[str], list[dict[str, str]]]:
    """(arguments, environment variables) that load ``slots.adapters`` on ``engine``."""
    if slots is None or not slots.adapters:
        return [], []
    adapters = slots.adapters
    if engine == "vllm":
        args = ["--enable-lora", "--max-loras", str(slots.max_loras)]
        args += ["--max-lora-rank", str(slots.max_rank)]
        args += ["--max-cpu-loras", str(slots.cpu_loras)]
        args += ["--lora-modules", *(f"{a.name}={model_source(a.source)}" for a in adapters)]
        return args, []
    if engine == "llamacpp":
        args = ["--lora-init-without-apply"]
        for a in adapters:
            args += ["--lora", a.source]
        return args, []
    if engine == "tgi":
        value = ",".join(f"{a.name}={model_source(a.source)}" for a in adapters)
        return [], [{"name": "LORA_ADAPTERS", "value": value}]
    return [], []

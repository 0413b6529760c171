"""The engine arguments that load LoRA adapters (``render_lora``), per engine."""

import json
from pathlib import Path

from memplace.operator.render_lora import engine_args
from memplace.planning.adapters import Adapter, LoraSlots, shapes_from_config

LLAMA = json.loads(
    (Path(__file__).parents[1] / "fixtures" / "configs" / "llama-3.1-8b.json").read_text()
)
SHAPES = shapes_from_config(LLAMA)


def slots(engine, *adapters, concurrent=None):
    return LoraSlots.plan(engine, SHAPES, list(adapters), concurrent)


def test_no_adapters_no_arguments():
    assert engine_args("vllm", None) == ([], [])
    assert engine_args("vllm", slots("vllm")) == ([], [])


def test_vllm_gets_the_slots_the_plan_sized_and_every_adapter_by_name():
    args, env = engine_args(
        "vllm",
        slots("vllm", Adapter("a", 8, source="hf://o/a"), Adapter("b", 40, source="/m/b"),
              concurrent=1),
    )
    assert env == []
    assert args == [
        "--enable-lora", "--max-loras", "1", "--max-lora-rank", "64", "--max-cpu-loras", "2",
        "--lora-modules", "a=o/a", "b=/m/b",
    ]


def test_custom_engines_get_nothing():
    assert engine_args("custom", slots("custom", Adapter("a", 8))) == ([], [])

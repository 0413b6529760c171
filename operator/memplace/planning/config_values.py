"""Reading and validating the values of a Hugging Face ``config.json``.

A config is user input: a ConfigMap, an inline object, a file fetched from a hub. Every number
the sizing reads goes through ``ConfigValues.int``, which accepts only whole, positive (or, where
zero means "none", non-negative) numbers below a stated bound, and names the field when it
refuses. So ``"num_attention_heads": 0`` is a ``ConfigError`` naming the field, never a
ZeroDivisionError; ``"num_hidden_layers": 1e18`` is refused before a list of 10^18 layers is
built; ``"hidden_size": -1024`` never yields a negative parameter count.

Multimodal configs nest the language model under ``text_config`` (``llm_config`` for some):
its fields are read first, then the top level, then the defaults of the config class, for the
fields transformers leaves out of config.json because the class has them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

__all__ = ["BOUNDS", "CLASS_DEFAULTS", "ConfigError", "ConfigValues"]


class ConfigError(ValueError):
    """The config cannot be sized: a field is missing, not a number, out of range, or
    inconsistent with another. The message names the field."""


BOUNDS: dict[str, int] = {
    "num_hidden_layers": 10_000,
    "hidden_size": 1_000_000,
    "intermediate_size": 10_000_000,
    "num_attention_heads": 100_000,
    "num_key_value_heads": 100_000,
    "head_dim": 100_000,
    "vocab_size": 100_000_000,
    "experts": 1_000_000,
    "max_position_embeddings": 1 << 40,
}
"""Upper bounds, far above any published model, so that a typo or an attack is refused before it
allocates: the deepest published decoders have 126 layers (Llama-3.1-405B) to 160; the widest
hidden size is 16,384 (Llama-3.1-405B); vocabularies reach 262,208 (Gemma 3); MoE models have
up to 512 experts (Qwen3-Next) per layer; contexts reach 10,485,760 tokens (Llama 4 Scout).
Any other count is bounded by ``DEFAULT_BOUND``."""

DEFAULT_BOUND = 100_000_000
"""Bound for counts without their own entry (LoRA ranks, state sizes, windows, group counts)."""

_GEMMA3_TEXT_DEFAULTS = {
    "vocab_size": 262_208,
    "head_dim": 256,
    "num_attention_heads": 8,
    "num_key_value_heads": 4,
    "sliding_window": 4096,
    "sliding_window_pattern": 6,
    "tie_word_embeddings": True,
}

CLASS_DEFAULTS: dict[str, dict[str, Any]] = {
    "gemma3": _GEMMA3_TEXT_DEFAULTS,
    "gemma3_text": _GEMMA3_TEXT_DEFAULTS,
}
"""Fields Hugging Face leaves out of config.json because the config class has them as defaults
(google/gemma-3-12b-it's config.json names neither head_dim nor vocab_size). Values:
transformers' ``Gemma3TextConfig.__init__`` defaults (vocab_size 262_208, head_dim 256, …)."""

_EXPERT_COUNT = ("num_experts", "num_local_experts", "n_routed_experts", "moe_num_experts")


class ConfigValues:
    """A config.json with the text model's fields first, then the class defaults."""

    def __init__(self, raw: Mapping, family: str):
        self.family = family
        text = raw.get("text_config") or raw.get("llm_config") or {}
        if not isinstance(text, Mapping):
            raise ConfigError("config.json text_config must be an object")
        self._layers: list[Mapping] = [text, raw, CLASS_DEFAULTS.get(family, {})]

    def get(self, key: str, default: Any = None) -> Any:
        for layer in self._layers:
            if key in layer and layer[key] is not None:
                return layer[key]
        return default

    def has(self, key: str) -> bool:
        return self.get(key) is not None

    def flag(self, key: str, default: bool = False) -> bool:
        value = self.get(key, default)
        if not isinstance(value, bool | int):
            raise ConfigError(f"config.json field {key!r} must be true or false, not {value!r}")
        return bool(value)

    def int(
        self,
        key: str,
        default: int | None = None,
        *,
        minimum: int = 1,
        maximum: int | None = None,
    ) -> int:
        """A whole number in [minimum, maximum]; ``default`` when absent (None: required)."""
        value = self.get(key)
        if value is None:
            if default is None:
                raise ConfigError(f"config.json has no {key!r}, which {self.family} models need")
            return default
        return whole(key, value, minimum, maximum or BOUNDS.get(key, DEFAULT_BOUND))

    def first(self, keys: tuple[str, ...], default: int | None = None, *, minimum: int = 1) -> int:
        """The first of several synonyms that is present (e.g. ``n_routed_experts``)."""
        for key in keys:
            if self.has(key):
                return self.int(key, minimum=minimum)
        if default is None:
            raise ConfigError(f"config.json has none of {', '.join(map(repr, keys))}")
        return default

    def experts(self) -> int:
        """Routed experts per MoE layer, under any of the common names; 0 for a dense model."""
        return self.first(_EXPERT_COUNT, 0, minimum=0)


def whole(key: str, value: Any, minimum: int = 1, maximum: int = DEFAULT_BOUND) -> int:
    """``value`` as an int, or a ConfigError naming ``key`` (bools, fractions, NaN, ∞ refused)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"config.json field {key!r} is not a number: {value!r}")
    if isinstance(value, float) and (not math.isfinite(value) or value != int(value)):
        raise ConfigError(f"config.json field {key!r} must be a whole number, not {value!r}")
    if value < minimum:
        what = "positive" if minimum == 1 else f"at least {minimum}"
        raise ConfigError(f"config.json field {key!r} must be {what}, not {value:g}")
    if value > maximum:
        raise ConfigError(
            f"config.json field {key!r} is {value:g}, above the bound of {maximum:,} "
            "(far beyond any published model)"
        )
    return int(value)

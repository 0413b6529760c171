"""The checkpoint's own bytes: safetensors headers → weight bytes by tensor group and dtype.

A safetensors file starts with an 8-byte little-endian length N and N bytes of JSON that give
every tensor's dtype, shape and byte range (``data_offsets``); a sharded checkpoint adds
``model.safetensors.index.json`` (``metadata.total_size`` and a ``weight_map`` from tensor to
shard). The shell (``operator/sources.py``) fetches those bytes with HTTP range requests; this
module only reads them, so it stays pure.

What it yields, per checkpoint: the bytes of every tensor as published, grouped as
``architecture`` groups them (embeddings, lm_head, norms, attention, mlp, experts, …; vision and
audio towers apart), the bytes an engine loads (less what it skips: an MTP head, an
``lm_head`` tied to the embeddings), and the precision it is published in, from
``quantization_config`` when config.json has one, else from the dtypes. Quantisation metadata
(fp8 ``weight_scale``/``weight_scale_inv``, GPTQ/AWQ ``qzeros``/``scales``, bitsandbytes
``absmax``/``SCB``, nvfp4 block scales, mxfp4 ``_scales``) belongs to the group of the weight it
scales, since its name carries the weight's module path.

Worked example, Qwen/Qwen3-0.6B (one ``model.safetensors``, 311 bf16 tensors, 751,632,384
values = 1,503,264,768 bytes): the file carries ``lm_head.weight`` although config.json says
``tie_word_embeddings: true``; vLLM's Qwen3 loader skips it, so 1,192,099,840 bytes load.

Errors::

    CheckpointError (ValueError)   an index or header that is not what the format says; the
                                   message names the file and the field
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .architecture import Architecture

__all__ = [
    "DTYPE_BITS",
    "Checkpoint",
    "CheckpointError",
    "Index",
    "PublishedArchitecture",
    "Tensor",
    "format_from_quantization_config",
    "native_precision",
    "header_length",
    "parse_header",
    "parse_index",
    "read_checkpoint",
    "tensor_group",
    "with_checkpoint",
]


class CheckpointError(ValueError):
    """An index or a safetensors header that cannot be read; the message says which and why."""


DTYPE_BITS: dict[str, int] = {
    "BOOL": 8,
    "U8": 8,
    "I8": 8,
    "F8_E4M3": 8,
    "F8_E5M2": 8,
    "F8_E8M0": 8,
    "I16": 16,
    "U16": 16,
    "F16": 16,
    "BF16": 16,
    "I32": 32,
    "U32": 32,
    "F32": 32,
    "I64": 64,
    "U64": 64,
    "F64": 64,
    "F4": 4,
    "F6_E2M3": 6,
    "F6_E3M2": 6,
}
"""Bits per element of every dtype safetensors defines (the ``Dtype`` enum of safetensors 0.6,
huggingface/safetensors ``safetensors/src/tensor.rs``: ``bitsize()``; F4/F6 are packed)."""

SIXTEEN_BIT = frozenset({"bf16", "fp16"})
FLOAT_DTYPES = frozenset({"F16", "BF16", "F32", "F64"})


@dataclass(frozen=True)
class Tensor:
    """One entry of a safetensors header."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    nbytes: int
    """``data_offsets`` end − begin: the bytes the file holds for it."""

    @property
    def elements(self) -> int:
        return math.prod(self.shape)


@dataclass(frozen=True)
class Index:
    """``model.safetensors.index.json``: which shard holds which tensor."""

    total_size: int | None
    """``metadata.total_size``: tensor bytes over all shards, as the writer counted them."""
    weight_map: Mapping[str, str]

    @property
    def shards(self) -> tuple[str, ...]:
        return tuple(sorted(set(self.weight_map.values())))


def parse_index(value: Any, where: str = "model.safetensors.index.json") -> Index:
    """An index from its parsed JSON; shard names must be plain file names (no paths)."""
    if not isinstance(value, Mapping) or not isinstance(value.get("weight_map"), Mapping):
        raise CheckpointError(f"{where}: no weight_map object")
    weight_map = value["weight_map"]
    for tensor, shard in weight_map.items():
        if not isinstance(shard, str) or not shard.endswith(".safetensors") or "/" in shard:
            raise CheckpointError(f"{where}: {tensor!r} maps to {shard!r}, not a shard file")
    total = (value.get("metadata") or {}).get("total_size")
    if total is not None and (not isinstance(total, int | float) or total < 0):
        raise CheckpointError(f"{where}: metadata.total_size {total!r} is not a byte count")
    return Index(None if total is None else int(total), dict(weight_map))


def header_length(first8: bytes, where: str) -> int:
    """N from a file's first 8 bytes (little-endian u64)."""
    if len(first8) != 8:
        raise CheckpointError(f"{where}: {len(first8)} bytes where the 8-byte header length is")
    return struct.unpack("<Q", first8)[0]


def parse_header(raw: bytes, where: str) -> list[Tensor]:
    """The tensors of a safetensors JSON header (the N bytes after the length)."""
    try:
        value = json.loads(raw.decode("utf-8").rstrip(" "))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CheckpointError(f"{where}: the safetensors header is not JSON: {error}") from error
    if not isinstance(value, Mapping):
        raise CheckpointError(f"{where}: the safetensors header is not a JSON object")
    tensors = []
    for name, info in value.items():
        if name == "__metadata__":
            continue
        try:
            dtype, shape = info["dtype"], tuple(int(d) for d in info["shape"])
            begin, end = (int(x) for x in info["data_offsets"])
        except (KeyError, TypeError, ValueError) as error:
            raise CheckpointError(
                f"{where}: tensor {name!r} lacks dtype, shape or data_offsets"
            ) from error
        bits = DTYPE_BITS.get(dtype)
        if bits is None:
            raise CheckpointError(f"{where}: tensor {name!r} has unknown dtype {dtype!r}")
        if end < begin or min(shape, default=0) < 0:
            raise CheckpointError(f"{where}: tensor {name!r} has a negative size")
        if end - begin != math.ceil(math.prod(shape) * bits / 8):
            raise CheckpointError(
                f"{where}: tensor {name!r} holds {end - begin} bytes, but {dtype} × "
                f"{list(shape)} is {math.ceil(math.prod(shape) * bits / 8)}"
            )
        tensors.append(Tensor(name, dtype, shape, end - begin))
    return tensors


# --- naming ----------------------------------------------------------------------------------

_VISION = re.compile(
    r"(^|\.)(visual|vision_tower|vision_model|vision_encoder|vision_backbone|vision_embed_tokens|"
    r"multi_modal_projector|mm_projector|image_newline|vit|siglip|patch_merger)(\.|$)"
)
_AUDIO = re.compile(r"(^|\.)(audio_tower|audio_model|audio_encoder|audio)(\.|$)")
_MTP = re.compile(r"(^|\.)(mtp|mtp_layers|nextn)(\.|$)")
_LAYER = re.compile(r"(?:^|\.)(?:layers|blocks|h)\.(\d+)\.")
_ROUTER = re.compile(
    r"\.(router|gate|shared_expert_gate|e_score_correction_bias)\.(weight|bias)$"
    r"|\.e_score_correction_bias$|\.router\.layer\.weight$"
)


def tensor_group(name: str, layers: int | None = None) -> str:
    """The ``architecture`` group a tensor belongs to, from its name.

    Names follow the Hugging Face module paths (``model.layers.3.mlp.experts.7.down_proj.qweight``,
    ``model.layers.0.mlp.experts.gate_up_proj_blocks`` in gpt-oss); a layer index ≥ ``layers``
    (``num_hidden_layers``) is an MTP layer, as DeepSeek-V3 stores its layer 61."""
    lower = name.lower()
    if _VISION.search(lower):
        return "vision"
    if _AUDIO.search(lower):
        return "audio"
    if _MTP.search(lower):
        return "mtp"
    layer = _LAYER.search(lower)
    if layers is not None and layer and int(layer.group(1)) >= layers:
        return "mtp"
    if any(k in lower for k in ("embed_tokens", ".wte.", "tok_embeddings", "word_embeddings")):
        return "embeddings"
    if lower.startswith("backbone.embeddings") or lower.endswith("embedding.weight"):
        return "embeddings"
    if lower.startswith(("lm_head.", "output.", "embed_out.", "model.transformer.ff_out.")):
        return "lm_head"
    parts = lower.split(".")
    module = parts[-2] if len(parts) > 1 else parts[-1]
    if "norm" in module or module.startswith("ln_") or module == "ln":
        return "norms"
    if _ROUTER.search(lower):
        return "moe_router"
    if "shared_expert" in lower:
        return "shared_experts"
    if ".experts." in lower or ".block_sparse_moe." in lower:
        return "experts"
    if "linear_attn" in lower:
        return "linear_attention"
    if any(k in lower for k in ("self_attn", ".attn.", ".attention.", ".att_proj", ".attn_out")):
        return "attention"
    if module in _ATTENTION_MODULES:
        return "attention"
    if ".mixer." in lower and (module in _MAMBA_MODULES or parts[-1] in _MAMBA_MODULES):
        return "mamba"
    if any(k in lower for k in (".mlp.", ".feed_forward.", ".ffn.", ".ff_proj.", ".ff_out.")):
        return "mlp"
    if module in _MLP_MODULES:
        return "mlp"
    return "other"


_ATTENTION_MODULES = frozenset({"q_proj", "k_proj", "v_proj", "o_proj", "qkv_proj", "wqkv"})
_MAMBA_MODULES = frozenset({"in_proj", "out_proj", "x_proj", "dt_proj", "conv1d"})
_MAMBA_MODULES |= frozenset({"a_log", "d", "dt_bias"})
_MLP_MODULES = frozenset({"gate_proj", "up_proj", "down_proj", "fc1", "fc2", "w1", "w2", "w3"})


# --- the published format --------------------------------------------------------------------


@dataclass(frozen=True)
class NativeFormat:
    """How a checkpoint is quantised, as ``quantization_config`` (or its dtypes) say."""

    precision: str
    """The catalogue precision it serves as: bf16, fp16, fp8, int8, int4, nvfp4, mxfp4."""
    method: str | None = None
    """``quant_method`` (gptq, awq, fp8, compressed-tensors, modelopt, bitsandbytes, mxfp4)."""
    bits: int | None = None
    group_size: int | None = None


def format_from_quantization_config(quant: Any) -> NativeFormat | None:
    """The native format ``quantization_config`` declares, or None (none, or not understood).

    Keys as the quantisers write them: GPTQ/AWQ ``bits`` and ``group_size``; fp8 ``fmt``
    (e4m3) and ``weight_block_size``; compressed-tensors ``config_groups.*.weights`` with
    ``num_bits``/``type``/``group_size`` and ``format`` (``nvfp4-pack-quantized``,
    ``pack-quantized``, ``float-quantized``, ``int-quantized``); modelopt ``quant_algo`` (FP8,
    NVFP4); bitsandbytes ``load_in_4bit``/``load_in_8bit``; gpt-oss ``quant_method: mxfp4``."""
    if not isinstance(quant, Mapping):
        return None
    method = str(quant.get("quant_method") or "").lower() or None
    bits = _int(quant.get("bits") or quant.get("w_bit"))
    group = _int(quant.get("group_size") or quant.get("q_group_size"))
    if method in ("gptq", "awq", "autoround", "auto-round", "gptq_marlin", "awq_marlin"):
        return NativeFormat("int4" if (bits or 4) == 4 else "int8", method, bits or 4, group)
    if method in ("fp8", "fbgemm_fp8"):
        block = quant.get("weight_block_size")
        return NativeFormat("fp8", method, 8, _int(block[-1]) if block else None)
    if method == "mxfp4":
        return NativeFormat("mxfp4", method, 4, 32)
    if method == "bitsandbytes":
        if quant.get("load_in_4bit") or quant.get("_load_in_4bit"):
            return NativeFormat("int4", method, 4, 64)
        if quant.get("load_in_8bit") or quant.get("_load_in_8bit"):
            return NativeFormat("int8", method, 8, None)
        return None
    if method == "modelopt":
        algo = str(quant.get("quant_algo") or "").upper()
        if "NVFP4" in algo or "FP4" in algo:
            return NativeFormat("nvfp4", method, 4, _int(quant.get("group_size")) or 16)
        if "FP8" in algo:
            return NativeFormat("fp8", method, 8, None)
        return None
    if method == "compressed-tensors":
        return _compressed_tensors(quant)
    return None


def native_precision(config: Mapping[str, Any] | None) -> str | None:
    """The precision config.json's ``quantization_config`` declares when it is not 16-bit
    (the checkpoint then serves only in it), else None; the text config's for multimodal."""
    config = config or {}
    text = config.get("text_config") if isinstance(config.get("text_config"), Mapping) else {}
    found = format_from_quantization_config(
        config.get("quantization_config") or text.get("quantization_config")
    )
    return None if found is None or found.precision in SIXTEEN_BIT else found.precision


def _compressed_tensors(quant: Mapping[str, Any]) -> NativeFormat | None:
    fmt = str(quant.get("format") or "").lower()
    for group in (quant.get("config_groups") or {}).values():
        weights = (group or {}).get("weights") or {}
        bits = _int(weights.get("num_bits"))
        kind = str(weights.get("type") or "int").lower()
        size = _int(weights.get("group_size"))
        gfmt = str((group or {}).get("format") or fmt).lower()
        if bits == 4 and (kind == "float" or "nvfp4" in gfmt):
            return NativeFormat("nvfp4", "compressed-tensors", 4, size or 16)
        if bits == 4:
            return NativeFormat("int4", "compressed-tensors", 4, size)
        if bits == 8 and kind == "float":
            return NativeFormat("fp8", "compressed-tensors", 8, size)
        if bits == 8:
            return NativeFormat("int8", "compressed-tensors", 8, size)
    return None


def _int(value: Any) -> int | None:
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _format_from_dtypes(tensors: Iterable[Tensor]) -> NativeFormat:
    """The format when config.json declares none: the dtype of most matmul-weight bytes."""
    by_dtype: dict[str, int] = {}
    names = []
    for t in tensors:
        names.append(t.name)
        if len(t.shape) >= 2 and tensor_group(t.name) not in ("embeddings", "lm_head", "vision"):
            by_dtype[t.dtype] = by_dtype.get(t.dtype, 0) + t.nbytes
    if not by_dtype:
        return NativeFormat("bf16")
    top = max(sorted(by_dtype), key=by_dtype.__getitem__)
    if top == "F16":
        return NativeFormat("fp16")
    if top in ("BF16", "F32", "F64"):
        return NativeFormat("bf16")
    if top.startswith("F8"):
        return NativeFormat("fp8", None, 8)
    if top == "I8":
        return NativeFormat("int8", None, 8)
    if any(n.endswith("_blocks") for n in names):
        return NativeFormat("mxfp4", None, 4, 32)
    if any(n.endswith("weight_scale_2") for n in names):
        return NativeFormat("nvfp4", None, 4, 16)
    if any(n.endswith((".qweight", ".weight_packed")) for n in names):
        return NativeFormat("int4", None, 4)
    raise CheckpointError(
        f"cannot tell the checkpoint's format from its dtypes ({top} matmul weights) without "
        "a quantization_config in config.json"
    )


# --- the checkpoint --------------------------------------------------------------------------


@dataclass(frozen=True)
class Checkpoint:
    """What a published checkpoint holds, and what an engine loads of it (hashable)."""

    format: NativeFormat
    stored_bytes_by_group: tuple[tuple[str, int], ...]
    """Bytes per group as the files hold them, every tensor counted (sorted by group)."""
    loaded_bytes_by_group: tuple[tuple[str, int], ...]
    """Bytes per group an engine puts on the GPU at the native precision: less ``skipped``;
    fp32 tensors of a float checkpoint count 2 bytes (vLLM loads them in 16 bits)."""
    bytes_by_dtype: tuple[tuple[str, int], ...]
    skipped: tuple[tuple[str, int], ...] = ()
    """(why, bytes) of tensors an engine does not load."""
    tensors: int = 0
    shards: int = 1
    index_total_size: int | None = None
    """``metadata.total_size`` of the index, to compare (None: single file or not given)."""
    revision: str | None = None
    """The commit the hub served (``X-Repo-Commit``) or the revision asked for."""

    @property
    def precision(self) -> str:
        return self.format.precision

    @property
    def native(self) -> str | None:
        """The precision the planner must serve it in, None for a 16-bit checkpoint."""
        return None if self.precision in SIXTEEN_BIT else self.precision

    @property
    def stored_bytes(self) -> int:
        return sum(b for _, b in self.stored_bytes_by_group)

    @property
    def loaded_bytes(self) -> int:
        return sum(b for _, b in self.loaded_bytes_by_group)

    def serves(self, precision: str) -> bool:
        """Whether ``loaded_bytes_by_group`` are the weights at ``precision``: the native one, or
        either 16-bit precision for a 16-bit checkpoint (bf16 and fp16 have equal sizes)."""
        if self.precision in SIXTEEN_BIT:
            return precision in SIXTEEN_BIT
        return precision == self.precision


def read_checkpoint(
    headers: Mapping[str, list[Tensor]],
    config: Mapping[str, Any] | None = None,
    *,
    index: Index | None = None,
    revision: str | None = None,
) -> Checkpoint:
    """The checkpoint from each shard's parsed header (and config.json, for what it declares:
    ``quantization_config``, ``tie_word_embeddings``, ``num_hidden_layers``)."""
    config = config or {}
    text = config.get("text_config") if isinstance(config.get("text_config"), Mapping) else {}
    layers = _int(text.get("num_hidden_layers") or config.get("num_hidden_layers"))
    tied = bool(text.get("tie_word_embeddings", config.get("tie_word_embeddings", False)))
    quant = config.get("quantization_config") or text.get("quantization_config")
    tensors = [t for shard in sorted(headers) for t in headers[shard]]
    if not tensors:
        raise CheckpointError("the checkpoint's headers list no tensors")
    seen: set[str] = set()
    for t in tensors:
        if t.name in seen:
            raise CheckpointError(f"tensor {t.name!r} is in more than one shard")
        seen.add(t.name)
    fmt = format_from_quantization_config(quant) or _format_from_dtypes(tensors)
    stored: dict[str, int] = {}
    loaded: dict[str, int] = {}
    dtypes: dict[str, int] = {}
    skipped: dict[str, int] = {}
    has_embeddings = any(tensor_group(t.name, layers) == "embeddings" for t in tensors)
    for t in tensors:
        group = tensor_group(t.name, layers)
        stored[group] = stored.get(group, 0) + t.nbytes
        dtypes[t.dtype] = dtypes.get(t.dtype, 0) + t.nbytes
        why = _skipped(group, tied and has_embeddings)
        if why:
            skipped[why] = skipped.get(why, 0) + t.nbytes
            continue
        size = t.nbytes
        if fmt.precision in SIXTEEN_BIT and t.dtype in ("F32", "F64"):
            size = t.elements * 2
        loaded[group] = loaded.get(group, 0) + size
    return Checkpoint(
        format=fmt,
        stored_bytes_by_group=tuple(sorted(stored.items())),
        loaded_bytes_by_group=tuple(sorted(loaded.items())),
        bytes_by_dtype=tuple(sorted(dtypes.items())),
        skipped=tuple(sorted(skipped.items())),
        tensors=len(tensors),
        shards=len(headers),
        index_total_size=index.total_size if index is not None else None,
        revision=revision,
    )


def _skipped(group: str, tied: bool) -> str | None:
    """Why an engine leaves a tensor of ``group`` unloaded, or None.

    vLLM skips ``lm_head.weight`` when ``tie_word_embeddings`` is set (the ``load_weights`` of
    its Llama/Qwen2/Qwen3 models: ``if self.config.tie_word_embeddings and "lm_head.weight" in
    name: continue``), and loads MTP layers only for speculative decoding (DeepSeek-V3's
    ``get_spec_layer_idx_from_weight_name`` skips them in the main model)."""
    if group == "mtp":
        return "MTP layers (loaded only for speculative decoding)"
    if group == "lm_head" and tied:
        return "lm_head tied to the embeddings"
    return None


@dataclass(frozen=True)
class PublishedArchitecture(Architecture):
    """An ``Architecture`` that also knows its published checkpoint: ``memory`` takes the
    weights at the native precision from it (``checkpoint.loaded_bytes_by_group``)."""

    checkpoint: Checkpoint | None = None


def with_checkpoint(arch: Architecture, checkpoint: Checkpoint) -> PublishedArchitecture:
    """``arch`` with ``checkpoint`` attached (every other field unchanged)."""
    values = {f.name: getattr(arch, f.name) for f in dataclasses.fields(arch) if f.init}
    values["checkpoint"] = checkpoint
    return PublishedArchitecture(**values)

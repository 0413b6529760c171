"""GPU, instance and precision facts, read once from the YAML files in `data/`.

The numbers live in YAML, next to the document each came from, so a reviewer can check a figure
without reading code; this module only gives them types. It reads package data (no network, no
clock) and caches the result, so the planner stays pure.

Lookups accept what a cluster shows: `Catalogue.gpu("NVIDIA-H100-80GB-HBM3")` (the label GPU
Feature Discovery writes), `"NVIDIA H100 80GB HBM3"` (the NVML name the agent reports),
`"nvidia-h100-80gb"` (GKE's label) or the catalogue id `"H100-SXM5-80GB"`, in any case.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from types import MappingProxyType
from typing import Any

import yaml

__all__ = [
    "Catalogue",
    "Gpu",
    "InstanceType",
    "KvDtype",
    "Precision",
    "default_catalogue",
    "load_catalogue",
]


@dataclass(frozen=True)
class Gpu:
    """One GPU model. Rates are vendor peaks: dense TFLOPS (int8 in TOPS), bytes per second."""

    id: str
    name: str
    product_labels: tuple[str, ...]
    memory_bytes: int
    """What the driver reports (NVML / nvidia-smi total), not the marketed figure: 23034 MiB on
    an L4 sold as 24 GB. A node's GFD label or NVML report supersedes it (``inventory``)."""
    memory_bandwidth_bytes_per_s: float
    dense_tflops: Mapping[str, float]
    compute_capability: tuple[int, int]
    host_link: str
    host_link_bytes_per_s: float
    interconnect_bytes_per_s: float
    source: str
    notes: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    memory_source: str = ""
    """Where ``memory_bytes`` was seen reported by a driver."""


@dataclass(frozen=True)
class InstanceType:
    """A cloud machine type: its GPUs (or none), host, on-demand price and where that came from."""

    id: str
    cloud: str
    region: str
    gpu: str | None
    gpu_count: int
    vcpus: int
    memory_bytes: int
    local_nvme_bytes: int
    price_per_hour: float
    price_date: str
    cpu_memory_bandwidth_bytes_per_s: float
    cpu_bf16_tflops: float
    source: str
    cpu: str = ""


@dataclass(frozen=True)
class Precision:
    """A weight format: its storage cost, the math it runs at, the GPUs that run it, its loss."""

    id: str
    weight_bits: int
    block_size: int | None
    scale_bits: int
    zero_point_bits: int
    compute: str
    min_compute_capability: tuple[int, int]
    kept_16bit: tuple[str, ...]
    vllm_quantization: str | None
    quality_loss: float
    quality_source: str

    @property
    def bits_per_weight(self) -> float:
        """Stored bits per quantized weight, block scales included.

        int4 with group 128, fp16 scale and fp16 zero point: 4 + 32/128 = 4.25; nvfp4: 4 + 8/16
        = 4.5; mxfp4: 4 + 8/32 = 4.25 (the gpt-oss model card's "4.25 bits per parameter").
        Per-channel formats (fp8, int8) return weight_bits: one scale per output row is a
        rounding error per weight, and the memory model adds it per channel.
        """
        if not self.block_size:
            return float(self.weight_bits)
        return self.weight_bits + (self.scale_bits + self.zero_point_bits) / self.block_size


@dataclass(frozen=True)
class KvDtype:
    """A KV-cache element type and the vLLM `--kv-cache-dtype` value that selects it."""

    id: str
    bits: int
    min_compute_capability: tuple[int, int]
    quality_loss: float
    vllm_kv_cache_dtype: str
    source: str


def _key(text: str) -> str:
    """Normalise a GPU name for lookup: case-folded, spaces as dashes, sharing suffixes dropped.

    GFD writes the NVML name with spaces replaced by dashes, then appends `-SHARED` under
    time-slicing and `-MIG-<profile>` under MIG; those name the same silicon.
    """
    key = re.sub(r"\s+", "-", text.strip()).casefold()
    key = re.sub(r"-mig-.*$", "", key)
    return key.removesuffix("-shared")


@dataclass(frozen=True)
class Catalogue:
    """Everything the planner knows about hardware and formats, indexed for lookup."""

    gpus: Mapping[str, Gpu]
    instances: Mapping[str, InstanceType]
    precisions: Mapping[str, Precision]
    kv_dtypes: Mapping[str, KvDtype]
    _gpu_index: Mapping[str, str] = field(
        default_factory=lambda: MappingProxyType({}), repr=False, compare=False
    )

    def __post_init__(self) -> None:
        index: dict[str, str] = {}
        for gpu in self.gpus.values():
            for alias in (gpu.id, gpu.name, *gpu.product_labels):
                known = index.setdefault(_key(alias), gpu.id)
                if known != gpu.id:
                    raise ValueError(f"GPU alias {alias!r} names both {known} and {gpu.id}")
        object.__setattr__(self, "_gpu_index", MappingProxyType(index))

    def find_gpu(self, key: str) -> Gpu | None:
        """The GPU named by id, product label, NVML or GKE name (any case); None if unknown."""
        gpu_id = self._gpu_index.get(_key(key))
        return self.gpus[gpu_id] if gpu_id else None

    def gpu(self, key: str) -> Gpu:
        """Like `find_gpu`, but an unknown name raises KeyError listing the known ids."""
        found = self.find_gpu(key)
        if found is None:
            raise KeyError(f"unknown GPU {key!r}; known: {', '.join(sorted(self.gpus))}")
        return found

    def instance(self, key: str) -> InstanceType | None:
        """The instance type by id (exact, then case-insensitive); None if unknown."""
        if key in self.instances:
            return self.instances[key]
        folded = key.casefold()
        return next((i for i in self.instances.values() if i.id.casefold() == folded), None)


def _cc(value: Any) -> tuple[int, int]:
    major, minor = value
    return int(major), int(minor)


def _gpu(raw: Mapping[str, Any], links: Mapping[str, Any]) -> Gpu:
    link = links[raw["host_link"]]
    return Gpu(
        id=raw["id"],
        name=raw["name"],
        product_labels=tuple(raw["product_labels"]),
        memory_bytes=int(raw["memory_mib"]) << 20,
        memory_bandwidth_bytes_per_s=float(raw["memory_bandwidth_bytes_per_s"]),
        dense_tflops=MappingProxyType({k: float(v) for k, v in raw["dense_tflops"].items()}),
        compute_capability=_cc(raw["compute_capability"]),
        host_link=link["name"],
        host_link_bytes_per_s=float(link["practical_bytes_per_s"]),
        interconnect_bytes_per_s=float(raw["interconnect_bytes_per_s"]),
        source=raw["source"],
        notes=MappingProxyType({k: str(v) for k, v in (raw.get("notes") or {}).items()}),
        memory_source=raw["memory_source"],
    )


def _instance(raw: Mapping[str, Any], cpus: Mapping[str, Any]) -> InstanceType:
    """Build an instance, deriving host bandwidth and bf16 peak from its CPU family.

    Worked example, m7i.8xlarge (32 vCPU, Sapphire Rapids): 16 cores of a 48-core socket at
    307.2 GB/s get 102.4 GB/s; 16 cores x 2.0 GHz x 1024 AMX FLOPs/cycle = 32.8 TFLOPS bf16.
    """
    cpu = cpus[raw["cpu"]]
    cores = int(raw["vcpus"]) / int(cpu["threads_per_core"])
    bandwidth = raw.get("cpu_memory_bandwidth_bytes_per_s") or (
        float(cpu["socket_bandwidth_bytes_per_s"]) * cores / int(cpu["cores_per_socket"])
    )
    tflops = raw.get("cpu_bf16_tflops") or (
        cores * float(cpu["ghz"]) * int(cpu["bf16_flops_per_cycle"]) / 1000
    )
    return InstanceType(
        id=raw["id"],
        cloud=raw["cloud"],
        region=raw["region"],
        gpu=raw.get("gpu"),
        gpu_count=int(raw["gpu_count"]),
        vcpus=int(raw["vcpus"]),
        memory_bytes=int(raw["memory_bytes"]),
        local_nvme_bytes=int(raw["local_nvme_bytes"]),
        price_per_hour=float(raw["price_per_hour"]),
        price_date=str(raw["price_date"]),
        cpu_memory_bandwidth_bytes_per_s=float(bandwidth),
        cpu_bf16_tflops=round(float(tflops), 3),
        source=f"{raw['source']} Host CPU ({cpu['model']}): {cpu['source']}",
        cpu=raw["cpu"],
    )


def _precision(raw: Mapping[str, Any]) -> Precision:
    return Precision(
        id=raw["id"],
        weight_bits=int(raw["weight_bits"]),
        block_size=int(raw["block_size"]) if raw.get("block_size") else None,
        scale_bits=int(raw["scale_bits"]),
        zero_point_bits=int(raw["zero_point_bits"]),
        compute=raw["compute"],
        min_compute_capability=_cc(raw["min_compute_capability"]),
        kept_16bit=tuple(raw.get("kept_16bit") or ()),
        vllm_quantization=raw.get("vllm_quantization"),
        quality_loss=float(raw["quality_loss"]),
        quality_source=raw["quality_source"],
    )


def _kv(raw: Mapping[str, Any]) -> KvDtype:
    return KvDtype(
        id=raw["id"],
        bits=int(raw["bits"]),
        min_compute_capability=_cc(raw["min_compute_capability"]),
        quality_loss=float(raw["quality_loss"]),
        vllm_kv_cache_dtype=raw["vllm_kv_cache_dtype"],
        source=raw["source"],
    )


def _by_id(items: list[Any]) -> Mapping[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        if item.id in out:
            raise ValueError(f"duplicate catalogue id {item.id!r}")
        out[item.id] = item
    return MappingProxyType(out)


def load_catalogue(gpus: str, instances: str, precisions: str) -> Catalogue:
    """Build a catalogue from the three YAML documents' text (tests pass their own)."""
    g, i, p = yaml.safe_load(gpus), yaml.safe_load(instances), yaml.safe_load(precisions)
    catalogue = Catalogue(
        gpus=_by_id([_gpu(raw, g["links"]) for raw in g["gpus"]]),
        instances=_by_id([_instance(raw, i["cpus"]) for raw in i["instances"]]),
        precisions=_by_id([_precision(raw) for raw in p["precisions"]]),
        kv_dtypes=_by_id([_kv(raw) for raw in p["kv_dtypes"]]),
    )
    for inst in catalogue.instances.values():
        if inst.gpu is not None and inst.gpu not in catalogue.gpus:
            raise ValueError(f"instance {inst.id} names unknown GPU {inst.gpu!r}")
    return catalogue


@functools.cache
def default_catalogue() -> Catalogue:
    """The catalogue shipped in `memplace/planning/data/`, read once per process."""
    data = resources.files("memplace.planning") / "data"
    return load_catalogue(
        (data / "gpus.yaml").read_text(encoding="utf-8"),
        (data / "instances.yaml").read_text(encoding="utf-8"),
        (data / "precisions.yaml").read_text(encoding="utf-8"),
    )

"""How much memory a pool's GPUs have, and which source said so. Pure.

Three sources, in order of trust (DESIGN.md, "Where the numbers come from"):

* ``nvml``: a fresh NodeMemoryReport, the agent's NVML ``memory.total`` per GPU;
* ``gfd-label``: GPU Feature Discovery's node label ``nvidia.com/gpu.memory``, in MiB (NVIDIA
  k8s-device-plugin, docs/gpu-feature-discovery/README.md, "Generated Labels"). Under MIG the
  label gives one MIG device's memory, not the GPU's (same README, "MIG 'single' strategy":
  ``nvidia.com/gpu.memory=4864`` on an A100-SXM4-40GB-MIG-1g.5gb), so it is not read there;
* ``catalogue``: what the driver reports for that GPU model (``data/gpus.yaml``).

Each node gets the most trusted figure it has; the pool plans with the smallest of its nodes',
because pods land on any node of the pool: a pool of L4 nodes where one node reports 23034 MiB
and another 22000 MiB is planned at 22000 MiB, and says so.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

__all__ = ["GPU_MEMORY_SOURCES", "GpuMemory", "node_gpu_memory", "parse_gfd_memory", "smallest"]

GPU_MEMORY_SOURCES = ("nvml", "gfd-label", "catalogue")
"""Where a GPU's memory figure came from, most trusted first."""

MiB = 1 << 20


@dataclass(frozen=True)
class GpuMemory:
    """The memory of one GPU on ``node``, and the source of that figure."""

    node: str
    total_bytes: int
    source: str


def parse_gfd_memory(labels: Mapping[str, str]) -> int | None:
    """``nvidia.com/gpu.memory`` in bytes; None when absent or on a MIG node.

    Raises ValueError naming the label when it is not a positive number of MiB."""
    text = labels.get("nvidia.com/gpu.memory")
    if text is None or "-MIG-" in labels.get("nvidia.com/gpu.product", ""):
        return None
    try:
        mib = int(text)
    except ValueError:
        mib = 0
    if mib <= 0:
        raise ValueError(f"label nvidia.com/gpu.memory={text!r} is not a positive number of MiB")
    return mib * MiB


def node_gpu_memory(
    node: str, reported_totals: Iterable[int | None], label_bytes: int | None, catalogue_bytes: int
) -> GpuMemory:
    """One node's GPU memory: the smallest NVML total of a fresh report, else the GFD label,
    else the catalogue."""
    totals = [t for t in reported_totals if t]
    if totals:
        return GpuMemory(node, min(totals), "nvml")
    if label_bytes:
        return GpuMemory(node, label_bytes, "gfd-label")
    return GpuMemory(node, catalogue_bytes, "catalogue")


def smallest(pool: str, figures: Iterable[GpuMemory]) -> tuple[GpuMemory | None, str | None]:
    """The figure the pool plans with (the smallest; at equal bytes the most trusted source),
    and a note when its nodes disagree."""
    listed = sorted(figures, key=lambda f: (f.total_bytes, GPU_MEMORY_SOURCES.index(f.source)))
    if not listed:
        return None, None
    low, high = listed[0], listed[-1]
    if low.total_bytes == high.total_bytes:
        return low, None
    note = (
        f"pool {pool}: nodes disagree on GPU memory ({_mib(low)} on {low.node}, {_mib(high)} on "
        f"{high.node}); planning with the smallest, {_mib(low)}"
    )
    return low, note


def _mib(figure: GpuMemory) -> str:
    return f"{figure.total_bytes // MiB} MiB ({figure.source})"

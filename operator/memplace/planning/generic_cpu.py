"""The instance type assumed for a CPU-only pool whose instance type the catalogue lacks.

Such a pool is priced by its PlacementPool and sized from its nodes' allocatable CPU and memory;
its speed comes from the per-vCPU figures of a generic server below, and the plan says that it
was assumed ("CPU speed assumed: instance type not in the catalogue").
"""

from __future__ import annotations

from typing import Any

GENERIC_CPU = "generic"
"""The ``InstanceType.cpu`` of a CPU-only pool whose instance type the catalogue lacks."""
GENERIC_BANDWIDTH_PER_VCPU = 204.8e9 / 96
"""DRAM bandwidth per vCPU of a generic server (bytes/s): the catalogue's slowest per-core
class, AMD EPYC Rome/Milan (``data/instances.yaml`` ``cpus:``): 8 channels × DDR4-3200 × 8
bytes = 204.8 GB/s per 48-core socket, 2 threads per core (AMD EPYC 7002/7003 product pages).
About 2.1 GB/s per vCPU: a low but safe figure; name the instance type in the catalogue, or its
pool's price alone cannot tell a faster CPU."""
GENERIC_BF16_FLOPS_PER_VCPU = 2.5e9 * 32 / 2
"""Peak bf16 FLOP/s per vCPU of a generic server: EPYC Rome's AVX2 rate (2 FMA units × 8 fp32
lanes × 2 = 32 FLOPs per cycle per core, no bf16 units) at 2.5 GHz, 2 threads per core
(the catalogue's ``epyc-rome`` entry and its source)."""


def generic_cpu_instance(name: str, vcpus: float, memory: int, price: float) -> Any:
    """An ``InstanceType`` for a CPU-only pool the catalogue does not know, sized from its nodes'
    allocatable CPU and memory with the generic per-vCPU constants above."""
    from .catalogue import InstanceType

    return InstanceType(
        id=name,
        cloud="unknown",
        region="unknown",
        gpu=None,
        gpu_count=0,
        vcpus=int(vcpus),
        memory_bytes=int(memory),
        local_nvme_bytes=0,
        price_per_hour=price,
        price_date="",
        cpu_memory_bandwidth_bytes_per_s=vcpus * GENERIC_BANDWIDTH_PER_VCPU,
        cpu_bf16_tflops=round(vcpus * GENERIC_BF16_FLOPS_PER_VCPU / 1e12, 3),
        source=(
            "generic server: instance type not in the catalogue; "
            "GENERIC_BANDWIDTH_PER_VCPU and GENERIC_BF16_FLOPS_PER_VCPU (planning/generic_cpu.py)"
        ),
        cpu=GENERIC_CPU,
    )

"""The shipped catalogue loads, is internally consistent, and matches the datasheets it cites."""

from __future__ import annotations

import dataclasses
import re

import pytest

from memplace.planning.catalogue import default_catalogue

GiB = 2**30
MiB = 2**20


@pytest.fixture(scope="module")
def catalogue():
    return default_catalogue()


def test_catalogue_is_read_once(catalogue):
    assert default_catalogue() is catalogue


def test_catalogue_has_enough_gpus_and_instances(catalogue):
    assert len(catalogue.gpus) >= 15
    assert len(catalogue.instances) >= 30
    assert sum(1 for i in catalogue.instances.values() if i.gpu is None) >= 4


def test_every_entry_names_its_source(catalogue):
    for gpu in catalogue.gpus.values():
        assert gpu.source.strip(), gpu.id
    for inst in catalogue.instances.values():
        assert inst.source.strip(), inst.id
    for precision in catalogue.precisions.values():
        assert precision.quality_source.strip(), precision.id
    for kv in catalogue.kv_dtypes.values():
        assert kv.source.strip(), kv.id


def test_every_instance_gpu_is_in_the_gpu_catalogue(catalogue):
    for inst in catalogue.instances.values():
        if inst.gpu is None:
            assert inst.gpu_count == 0, inst.id
        else:
            assert inst.gpu in catalogue.gpus, inst.id
            assert inst.gpu_count >= 1, inst.id


def test_instances_have_plausible_prices_and_hosts(catalogue):
    for inst in catalogue.instances.values():
        assert inst.cloud in {"aws", "gcp", "azure"}, inst.id
        assert inst.price_per_hour > 0, inst.id
        assert len(inst.price_date) == 7 and inst.price_date[4] == "-", inst.id
        assert inst.memory_bytes >= 4 * GiB, inst.id
        assert inst.cpu_memory_bandwidth_bytes_per_s > 1e9, inst.id
        assert inst.cpu_bf16_tflops > 0, inst.id


def test_gpu_figures_are_consistent(catalogue):
    for gpu in catalogue.gpus.values():
        assert gpu.memory_bytes >= 15 * GiB, gpu.id
        assert gpu.memory_bandwidth_bytes_per_s >= 300e9, gpu.id
        assert set(gpu.dense_tflops) <= {"fp32", "tf32", "bf16", "fp16", "fp8", "int8", "fp4"}
        assert gpu.interconnect_bytes_per_s >= gpu.host_link_bytes_per_s, gpu.id
        if "fp8" in gpu.dense_tflops:
            assert gpu.compute_capability >= (8, 9), gpu.id
            assert gpu.dense_tflops["fp8"] == pytest.approx(2 * gpu.dense_tflops["bf16"], rel=0.02)
        if "fp4" in gpu.dense_tflops:
            assert gpu.compute_capability >= (10, 0), gpu.id


def test_gpu_frozen_and_its_tflops_read_only(catalogue):
    gpu = catalogue.gpu("L4")
    with pytest.raises(dataclasses.FrozenInstanceError):
        gpu.memory_bytes = 1  # type: ignore[misc]
    with pytest.raises(TypeError):
        gpu.dense_tflops["bf16"] = 1.0  # type: ignore[index]


@pytest.mark.parametrize(
    ("key", "gpu_id"),
    [
        ("NVIDIA-H100-80GB-HBM3", "H100-SXM5-80GB"),  # GFD node label
        ("NVIDIA H100 80GB HBM3", "H100-SXM5-80GB"),  # NVML name
        ("nvidia-h100-80gb", "H100-SXM5-80GB"),  # GKE accelerator label
        ("Tesla T4", "T4"),
        ("Tesla-T4", "T4"),
        ("NVIDIA-A10G", "A10G"),
        ("NVIDIA-A100-SXM4-80GB", "A100-SXM4-80GB"),
        ("NVIDIA-A100-SXM4-80GB-SHARED", "A100-SXM4-80GB"),  # GFD time-slicing suffix
        ("NVIDIA-A100-SXM4-80GB-MIG-1g.10gb", "A100-SXM4-80GB"),  # GFD MIG suffix
        ("nvidia-l4", "L4"),
        ("NVIDIA-GeForce-RTX-4090", "RTX-4090"),
        ("h200-sxm-141gb", "H200-SXM-141GB"),  # catalogue id, any case
    ],
)
def test_gpu_lookup_by_label_nvml_name_or_id(catalogue, key, gpu_id):
    assert catalogue.gpu(key).id == gpu_id
    assert catalogue.find_gpu(key) is catalogue.gpu(key)


def test_unknown_gpu_raises_naming_the_known_ids(catalogue):
    assert catalogue.find_gpu("NVIDIA-Voodoo-2") is None
    with pytest.raises(KeyError, match="H100-SXM5-80GB"):
        catalogue.gpu("NVIDIA-Voodoo-2")


@pytest.mark.parametrize(
    ("gpu_id", "mib"),
    # the totals nvidia-smi prints, as issue 9 lists them
    [("L4", 23034), ("A10G", 23028), ("L40S", 46068), ("T4", 15360), ("H100-SXM5-80GB", 81559)],
)
def test_memory_is_what_the_driver_reports(catalogue, gpu_id, mib):
    assert catalogue.gpu(gpu_id).memory_bytes == mib * MiB


def test_every_memory_figure_names_a_source_that_shows_it(catalogue):
    for gpu in catalogue.gpus.values():
        mib = gpu.memory_bytes // MiB
        assert gpu.memory_bytes == mib * MiB, gpu.id
        shown = {int(m) for m in re.findall(r"(\d{4,6}) ?MiB", gpu.memory_source)}
        assert mib in shown, (gpu.id, mib, gpu.memory_source)


def test_driver_totals_are_below_the_marketed_binary_capacity(catalogue):
    """ECC and driver reservations only ever take memory away: no part reports more than the
    GiB its name promises (the next multiple of 8 GiB above it)."""
    for gpu in catalogue.gpus.values():
        marketed = -(-gpu.memory_bytes // (8 * GiB)) * 8 * GiB
        assert marketed - 8 * GiB < gpu.memory_bytes <= marketed, gpu.id


def test_a10_and_a10g_are_different_entries(catalogue):
    assert catalogue.gpu("NVIDIA A10").id == "A10"
    assert catalogue.gpu("NVIDIA A10G").id == "A10G"


def test_h100_sxm_matches_its_datasheet(catalogue):
    h100 = catalogue.gpu("H100-SXM5-80GB")
    assert h100.memory_bytes == 81559 * MiB
    assert h100.memory_bandwidth_bytes_per_s == 3.35e12
    assert h100.dense_tflops["bf16"] == pytest.approx(1979 / 2, rel=1e-3)  # sparse / 2
    assert h100.dense_tflops["fp8"] == pytest.approx(3958 / 2, rel=1e-3)
    assert h100.compute_capability == (9, 0)
    assert h100.interconnect_bytes_per_s == 450e9  # 900 GB/s NVLink, one direction


def test_l4_matches_its_datasheet(catalogue):
    l4 = catalogue.gpu("L4")
    assert l4.memory_bytes == 23034 * MiB  # what the driver reports, not "24 GB"
    assert l4.memory_bandwidth_bytes_per_s == 300e9
    assert l4.dense_tflops["fp8"] == pytest.approx(485 / 2)
    assert l4.compute_capability == (8, 9)
    assert l4.host_link == "PCIe 4.0 x16"


def test_other_spot_checks(catalogue):
    assert catalogue.gpu("A100-SXM4-80GB").memory_bandwidth_bytes_per_s == 2039e9
    assert catalogue.gpu("A100-SXM4-80GB").dense_tflops["bf16"] == 312
    assert catalogue.gpu("H200-SXM-141GB").memory_bytes == 143771 * MiB
    assert catalogue.gpu("H200-SXM-141GB").memory_bandwidth_bytes_per_s == 4.8e12
    assert catalogue.gpu("B200").dense_tflops["fp4"] == 9000
    assert "bf16" not in catalogue.gpu("T4").dense_tflops
    assert catalogue.gpu("T4").dense_tflops["fp16"] == 65


def test_instances_spot_checks(catalogue):
    p5 = catalogue.instance("p5.48xlarge")
    assert p5 is not None
    assert (p5.gpu, p5.gpu_count, p5.vcpus) == ("H100-SXM5-80GB", 8, 192)
    assert p5.memory_bytes == 2048 * GiB
    assert catalogue.instance("g5.xlarge").price_per_hour == 1.006
    assert catalogue.instance("G4DN.XLARGE").id == "g4dn.xlarge"
    assert catalogue.instance("no-such-type") is None


def test_cpu_figures_are_derived_as_documented(catalogue):
    m7i = catalogue.instance("m7i.8xlarge")
    # 16 of 48 Sapphire Rapids cores, 8 x DDR5-4800: 307.2 GB/s x 16/48
    assert m7i.cpu_memory_bandwidth_bytes_per_s == pytest.approx(102.4e9)
    # 16 cores x 2.0 GHz x 1024 AMX bf16 FLOPs/cycle
    assert m7i.cpu_bf16_tflops == pytest.approx(32.768)
    assert "Sapphire Rapids" in m7i.source or "8488C" in m7i.source

"""The sampler against the fake NVML module: the same code path a driver runs."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import pynvml
import pytest

from memplace.agent.fake import FakeGpu, FakeNvml
from memplace.agent.host import HostSample
from memplace.agent.nvml import PynvmlSampler
from memplace.agent.report import NodeSample, to_status

GiB = 1024**3


def test_a_healthy_two_gpu_node_reports_both_gpus_with_v2_memory(h100x2: FakeNvml) -> None:
    sampling = PynvmlSampler(h100x2).sample()

    assert sampling.nvml.available
    assert sampling.nvml.driver_version == "550.54.15"
    assert sampling.nvml.cuda_driver_version == 12040
    assert sampling.error_kinds == ()
    first, second = sampling.gpus
    assert (first.index, second.index) == (0, 1)
    assert first.uuid == "GPU-6f1e2a3b-4c5d-6e7f-8091-a2b3c4d5e6f7"
    assert first.name == "NVIDIA H100 80GB HBM3"
    assert first.compute_capability == "9.0"
    assert first.mig_mode == "disabled"
    assert first.healthy and first.error is None
    assert first.memory_total_bytes == 85520809984
    assert first.memory_reserved_bytes == 560529408
    assert first.memory_used_bytes == 73014444032
    assert first.memory_free_bytes == 85520809984 - 560529408 - 73014444032
    assert [(p.pid, p.used_memory_bytes) for p in first.processes] == [(4242, 73014444032)]
    assert second.memory_used_bytes == 0 and second.processes == ()


def test_a_mig_gpu_reports_each_instance_s_own_memory_not_the_parent_s(nvml_fixture) -> None:
    sampling = PynvmlSampler(nvml_fixture("a100-mig")).sample()

    mig_gpu = sampling.gpus[0]
    assert mig_gpu.mig_mode == "enabled"
    assert [m.index for m in mig_gpu.mig_devices] == [0, 2, 3]  # slot 1 is empty
    big = mig_gpu.mig_devices[0]
    assert big.uuid == "MIG-aaaaaaaa-0000-0000-0000-000000000000"
    assert big.memory_total_bytes == 42144366592 != mig_gpu.memory_total_bytes
    assert big.memory_used_bytes == 10 * GiB
    assert big.memory_free_bytes == 42144366592 - 10 * GiB
    assert mig_gpu.mig_devices[2].memory_used_bytes == 5 * GiB
    assert sampling.gpus[1].mig_mode == "disabled" and sampling.gpus[1].mig_devices == ()


def test_a_lost_gpu_is_unhealthy_with_its_error_and_the_others_are_still_reported(
    nvml_fixture,
) -> None:
    sampling = PynvmlSampler(nvml_fixture("gpu-lost")).sample()

    good, lost = sampling.gpus
    assert good.healthy and good.memory_used_bytes == 2 * GiB
    assert not lost.healthy
    assert lost.uuid == "GPU-aaaa0000-bbbb-cccc-dddd-eeeeffff0001"  # read before the failure
    assert lost.memory_total_bytes is None
    assert lost.error == "nvmlDeviceGetMemoryInfo: GPU is lost (NVMLError_GpuIsLost)"
    assert sampling.error_kinds == ("NVMLError_GpuIsLost",)
    assert sampling.nvml.available


def test_a_gpu_failing_at_its_handle_is_reported_by_index_alone(h100x2: FakeNvml) -> None:
    h100x2.gpus[0].errors["nvmlDeviceGetHandleByIndex"] = "NVML_ERROR_UNKNOWN"

    first, second = PynvmlSampler(h100x2).sample().gpus

    assert (first.index, first.uuid, first.healthy) == (0, None, False)
    assert "NVMLError_Unknown" in first.error
    assert second.healthy


def test_a_missing_library_reports_nvml_unavailable_and_init_is_retried_next_pass(
    nvml_fixture,
) -> None:
    fake = nvml_fixture("no-driver")
    sampler = PynvmlSampler(fake)

    first = sampler.sample()
    assert not first.nvml.available
    assert first.nvml.error == "nvmlInit: NVML Shared Library Not Found (NVMLError_LibraryNotFound)"
    assert first.gpus == ()
    assert first.error_kinds == ("NVMLError_LibraryNotFound",)

    fake.library_missing = False  # the driver got installed
    fake.gpus.append(FakeGpu(name="NVIDIA L4", uuid="GPU-l4", total_bytes=24 * GiB))
    second = sampler.sample()
    assert second.nvml.available
    assert [gpu.uuid for gpu in second.gpus] == ["GPU-l4"]
    assert fake.calls.count("nvmlInit") == 2


def test_the_driver_going_away_shuts_nvml_down_and_starts_over(h100x2: FakeNvml) -> None:
    sampler = PynvmlSampler(h100x2)
    assert sampler.sample().nvml.available

    h100x2.errors["nvmlDeviceGetCount"] = "NVML_ERROR_DRIVER_NOT_LOADED"
    broken = sampler.sample()
    assert not broken.nvml.available
    assert "NVMLError_DriverNotLoaded" in broken.nvml.error

    del h100x2.errors["nvmlDeviceGetCount"]
    assert sampler.sample().nvml.available
    assert h100x2.calls.count("nvmlInit") == 2


def test_memory_falls_back_to_v1_when_the_driver_lacks_v2_and_remembers_it(nvml_fixture) -> None:
    fake = nvml_fixture("old-driver")
    sampler = PynvmlSampler(fake)

    gpu = sampler.sample().gpus[0]
    assert gpu.memory_reserved_bytes is None  # v1 cannot tell
    assert gpu.memory_used_bytes == 1 * GiB + 262144000  # v1 counts the reserve as used
    assert gpu.memory_free_bytes == 16106127360 - 1 * GiB - 262144000

    calls_before = fake.calls.count("nvmlDeviceGetMemoryInfo")
    sampler.sample()
    assert fake.calls.count("nvmlDeviceGetMemoryInfo") == calls_before + 1  # no second v2 probe


def test_v2_memory_failing_with_function_not_found_falls_back_to_v1() -> None:
    calls: list[object] = []

    class OldDriver(FakeNvml):
        def nvmlDeviceGetMemoryInfo(self, handle, version=None):  # noqa: N802 — pynvml's name
            calls.append(version)
            if version:
                raise pynvml.NVMLError(pynvml.NVML_ERROR_FUNCTION_NOT_FOUND)
            return super().nvmlDeviceGetMemoryInfo(handle)

    fake = OldDriver([FakeGpu(name="T4", uuid="GPU-t4", total_bytes=16 * GiB, used_bytes=GiB)])
    gpu = PynvmlSampler(fake).sample().gpus[0]

    assert calls == [pynvml.nvmlMemory_v2, None]
    assert gpu.healthy and gpu.memory_used_bytes == GiB and gpu.memory_reserved_bytes is None


def test_the_fake_raises_the_real_pynvml_error_classes(h100x2: FakeNvml) -> None:
    with pytest.raises(pynvml.NVMLError_Uninitialized):
        h100x2.nvmlDeviceGetCount()
    h100x2.nvmlInit()
    h100x2.gpus[1].errors["nvmlDeviceGetName"] = pynvml.NVML_ERROR_GPU_IS_LOST
    handle = h100x2.nvmlDeviceGetHandleByIndex(1)
    with pytest.raises(pynvml.NVMLError_GpuIsLost) as caught:
        h100x2.nvmlDeviceGetName(handle)
    assert caught.value.value == pynvml.NVML_ERROR_GPU_IS_LOST


def test_a_failing_process_list_is_counted_but_leaves_the_gpu_healthy(h100x2: FakeNvml) -> None:
    h100x2.gpus[0].errors["nvmlDeviceGetComputeRunningProcesses"] = "NVML_ERROR_NO_PERMISSION"

    sampling = PynvmlSampler(h100x2).sample()

    assert sampling.gpus[0].healthy and sampling.gpus[0].processes == ()
    assert sampling.error_kinds == ("NVMLError_NoPermission",)


def test_an_old_driver_without_v3_process_listing_falls_back_to_v2_and_remembers_it(
    nvml_fixture,
) -> None:
    fake = nvml_fixture("old-driver")  # r470: nvidia-ml-py 13 raises NVMLLibraryMismatchError
    sampler = PynvmlSampler(fake)

    sampling = sampler.sample()

    gpu = sampling.gpus[0]
    assert gpu.healthy and gpu.error is None
    assert [(p.pid, p.used_memory_bytes) for p in gpu.processes] == [(3131, GiB)]
    assert sampling.error_kinds == ()
    assert fake.calls.count("nvmlDeviceGetComputeRunningProcesses") == 1
    assert fake.calls.count("nvmlDeviceGetComputeRunningProcesses_v2") == 1

    sampler.sample()
    assert fake.calls.count("nvmlDeviceGetComputeRunningProcesses") == 1  # no second v3 probe
    assert fake.calls.count("nvmlDeviceGetComputeRunningProcesses_v2") == 2


def test_a_driver_with_no_process_listing_reports_no_processes_counts_it_and_stays_healthy(
    nvml_fixture, caplog: pytest.LogCaptureFixture
) -> None:
    fake = nvml_fixture("old-driver")
    fake.compute_processes_v2 = False
    sampler = PynvmlSampler(fake)

    with caplog.at_level(logging.WARNING, logger="memplace.agent.nvml"):
        first = sampler.sample()
        second = sampler.sample()

    for sampling in (first, second):
        assert sampling.nvml.available
        gpu = sampling.gpus[0]
        assert gpu.healthy and gpu.processes == () and gpu.memory_used_bytes is not None
        assert sampling.error_kinds == ("NVMLError_FunctionNotFound",)  # every pass, for metrics
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 1  # said once
    assert fake.calls.count("nvmlDeviceGetComputeRunningProcesses_v2") == 1  # not asked again


def test_a_library_mismatch_from_the_unversioned_call_is_not_an_nvml_error() -> None:
    """pynvml 13 wraps v3 in @throwOnVersionMismatch: a plain Exception the sampler must catch."""
    raised: list[BaseException] = []

    class NoListing(FakeNvml):
        def nvmlDeviceGetComputeRunningProcesses(self, handle):  # noqa: N802 — pynvml's name
            error = pynvml.NVMLLibraryMismatchError("use a versioned function")
            raised.append(error)
            raise error

    fake = NoListing([FakeGpu(name="T4", uuid="GPU-t4", total_bytes=16 * GiB)])
    fake.compute_processes_v2 = False

    sampling = PynvmlSampler(fake).sample()

    assert not isinstance(raised[0], pynvml.NVMLError)
    assert sampling.gpus[0].healthy and sampling.gpus[0].processes == ()
    assert sampling.error_kinds == ("NVMLError_FunctionNotFound",)


def test_the_fake_old_driver_raises_what_nvidia_ml_py_13_raises(nvml_fixture) -> None:
    fake = nvml_fixture("old-driver")
    fake.nvmlInit()
    handle = fake.nvmlDeviceGetHandleByIndex(0)

    with pytest.raises(pynvml.NVMLLibraryMismatchError) as caught:
        fake.nvmlDeviceGetComputeRunningProcesses(handle)
    assert not isinstance(caught.value, pynvml.NVMLError)
    with pytest.raises(pynvml.NVMLError_FunctionNotFound):
        fake.nvmlDeviceGetComputeRunningProcesses_v3(handle)
    assert [p.pid for p in fake.nvmlDeviceGetComputeRunningProcesses_v2(handle)] == [3131]


def test_mig_processes_are_read_per_instance_without_an_error_from_the_parent(
    nvml_fixture,
) -> None:
    fake = nvml_fixture("a100-mig")  # not privileged: the parent answers NoPermission
    pods = {7003: ("0b4f7a2e-1c2d-4e5f-8a9b-0c1d2e3f4a5b", None)}

    sampling = PynvmlSampler(fake, pid_to_pod=pods.get).sample()

    mig_gpu = sampling.gpus[0]
    assert mig_gpu.healthy
    assert [(p.pid, p.mig_device_index, p.used_memory_bytes) for p in mig_gpu.processes] == [
        (7001, 0, 10 * GiB),
        (7003, 3, 5 * GiB),
    ]
    assert mig_gpu.processes[1].pod_uid == "0b4f7a2e-1c2d-4e5f-8a9b-0c1d2e3f4a5b"
    assert sampling.error_kinds == ()
    plain = sampling.gpus[1]
    assert plain.processes == () and plain.mig_devices == ()


def test_mig_processes_are_listed_on_the_parent_gpu_in_the_report(nvml_fixture) -> None:
    sampling = PynvmlSampler(nvml_fixture("a100-mig")).sample()
    sample = NodeSample.of(datetime(2025, 1, 1, tzinfo=UTC), sampling, HostSample())

    status = to_status(sample, heartbeat_seconds=60)

    assert [p.pid for p in status.gpus[0].processes] == [7001, 7003]


def test_the_fake_refuses_a_mig_parent_s_processes_unless_privileged(nvml_fixture) -> None:
    fake = nvml_fixture("a100-mig")
    fake.nvmlInit()
    parent = fake.nvmlDeviceGetHandleByIndex(0)

    with pytest.raises(pynvml.NVMLError_NoPermission):
        fake.nvmlDeviceGetComputeRunningProcesses(parent)
    with pytest.raises(pynvml.NVMLError_NoPermission):
        fake.nvmlDeviceGetComputeRunningProcesses_v2(parent)
    big = fake.nvmlDeviceGetMigDeviceHandleByIndex(parent, 0)
    assert [p.pid for p in fake.nvmlDeviceGetComputeRunningProcesses(big)] == [7001]

    fake.privileged = True  # root: the aggregate over every instance
    assert [p.pid for p in fake.nvmlDeviceGetComputeRunningProcesses(parent)] == [7001, 7003]


def test_gpu_processes_are_mapped_to_pods_through_the_pid_lookup(h100x2: FakeNvml) -> None:
    pods = {4242: ("0b4f7a2e-1c2d-4e5f-8a9b-0c1d2e3f4a5b", "ab" * 32)}
    sampler = PynvmlSampler(h100x2, pid_to_pod=pods.get)

    process = sampler.sample().gpus[0].processes[0]

    assert process.pod_uid == "0b4f7a2e-1c2d-4e5f-8a9b-0c1d2e3f4a5b"
    assert process.container_id == "ab" * 32


def test_close_shuts_nvml_down_once(h100x2: FakeNvml) -> None:
    sampler = PynvmlSampler(h100x2)
    sampler.sample()
    sampler.close()
    sampler.close()
    assert h100x2.calls.count("nvmlShutdown") == 1


def _nvml_initialises() -> bool:
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError:
        return False
    pynvml.nvmlShutdown()
    return True


@pytest.mark.skipif(
    not _nvml_initialises(),
    reason="no NVIDIA driver on this machine: pynvml.NVMLError_LibraryNotFound",
)
def test_the_real_backend_reads_positive_totals_from_the_driver() -> None:
    sampler = PynvmlSampler()
    try:
        sampling = sampler.sample()
    finally:
        sampler.close()
    assert sampling.nvml.available and sampling.nvml.driver_version
    assert sampling.gpus
    for gpu in sampling.gpus:
        assert gpu.healthy, gpu.error
        assert gpu.memory_total_bytes > 0
        assert gpu.memory_free_bytes <= gpu.memory_total_bytes
        assert gpu.uuid.startswith(("GPU-", "MIG-"))

"""A stand-in for the few ``pynvml`` functions the sampler calls, driven by a fixture.

It raises the real ``pynvml.NVMLError`` subclasses (``pynvml.NVMLError(code)`` maps a code to
its class, as the library does), so ``PynvmlSampler`` runs the same code over it as over a driver.

The fixture (YAML or JSON; see ``tests/fixtures/nvml/``)::

    library: present               # missing: nvmlInit raises NVMLError_LibraryNotFound
    driverVersion: "550.54.15"
    cudaDriverVersion: "12.4"      # or NVML's integer, 12040
    memoryInfoV2: true             # false: a pre-r510 driver, v2 raises FunctionNotFound
    computeProcessesV3: true       # false: a pre-r510 driver (e.g. r470), see below
    computeProcessesV2: true       # false: no nvmlDeviceGetComputeRunningProcesses_v2 either
    privileged: false              # true: root, MIG parents list every instance's processes
    errors: {nvmlDeviceGetCount: NVML_ERROR_DRIVER_NOT_LOADED}     # system-wide calls
    gpus:
      - name: NVIDIA H100 80GB HBM3
        uuid: GPU-…
        memoryTotalBytes: 85520809984
        memoryUsedBytes: 1073741824     # allocated by processes (v2 "used")
        memoryReservedBytes: 560529408  # held by the driver; v1 counts it as used
        computeCapability: "9.0"
        migMode: disabled               # enabled | disabled | unsupported
        migDevices: [{uuid: MIG-…, memoryTotalBytes: …, memoryUsedBytes: …}]
        processes: [{pid: 4242, usedMemoryBytes: 1073741824}]
        errors: {nvmlDeviceGetMemoryInfo: NVML_ERROR_GPU_IS_LOST}   # per call, this GPU

An error is a ``pynvml`` constant name or its integer code. Tests may change the fake's
``gpus`` between samples (e.g. ``fake.gpus[0].used_bytes += …``).

Process listings, as nvidia-ml-py 13 over a driver behaves:

- ``nvmlDeviceGetComputeRunningProcesses`` is v3 behind ``pynvml.throwOnVersionMismatch``: without
  the v3 symbol it raises ``pynvml.NVMLLibraryMismatchError`` (a plain ``Exception``).
  ``…_v3`` and ``…_v2`` raise ``NVMLError_FunctionNotFound`` when their symbol is missing.
- On a MIG-enabled GPU the parent handle's aggregate is for privileged callers only: others get
  ``NVMLError_NoPermission``. MIG device handles list their own instance's processes.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pynvml
import yaml

__all__ = ["FakeGpu", "FakeMigDevice", "FakeNvml", "load_fixture"]


def _error(spec: str | int) -> pynvml.NVMLError:
    code = spec if isinstance(spec, int) else getattr(pynvml, str(spec))
    return pynvml.NVMLError(code)


def _cuda_version(value: Any) -> int:
    if value is None:
        return 12040
    if isinstance(value, int):
        return value
    major, _, minor = str(value).partition(".")
    return int(major) * 1000 + int(minor or 0) * 10


@dataclasses.dataclass
class FakeMigDevice:
    uuid: str
    total_bytes: int
    used_bytes: int = 0
    processes: list[dict[str, int]] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class FakeGpu:
    name: str
    uuid: str
    total_bytes: int
    used_bytes: int = 0
    reserved_bytes: int = 0
    compute_capability: tuple[int, int] = (9, 0)
    mig_mode: str = "disabled"
    mig_devices: list[FakeMigDevice | None] = dataclasses.field(default_factory=list)
    processes: list[dict[str, int]] = dataclasses.field(default_factory=list)
    errors: dict[str, str | int] = dataclasses.field(default_factory=dict)

    @classmethod
    def from_fixture(cls, data: dict[str, Any], index: int) -> FakeGpu:
        major, _, minor = str(data.get("computeCapability", "9.0")).partition(".")
        return cls(
            name=data.get("name", "NVIDIA H100 80GB HBM3"),
            uuid=data.get("uuid", f"GPU-00000000-0000-0000-0000-{index:012d}"),
            total_bytes=int(data["memoryTotalBytes"]),
            used_bytes=int(data.get("memoryUsedBytes", 0)),
            reserved_bytes=int(data.get("memoryReservedBytes", 0)),
            compute_capability=(int(major), int(minor or 0)),
            mig_mode=data.get("migMode", "disabled"),
            mig_devices=[
                None
                if mig is None
                else FakeMigDevice(
                    uuid=mig["uuid"],
                    total_bytes=int(mig["memoryTotalBytes"]),
                    used_bytes=int(mig.get("memoryUsedBytes", 0)),
                    processes=list(mig.get("processes", [])),
                )
                for mig in data.get("migDevices", [])
            ],
            processes=list(data.get("processes", [])),
            errors=dict(data.get("errors") or {}),
        )


@dataclasses.dataclass(frozen=True)
class _Handle:
    gpu: int
    mig: int | None = None


class FakeNvml:
    """The pynvml module surface the sampler uses; state in plain, mutable attributes."""

    # The constants the sampler reads from the module it is given.
    nvmlMemory_v2 = pynvml.nvmlMemory_v2
    NVML_DEVICE_MIG_ENABLE = pynvml.NVML_DEVICE_MIG_ENABLE
    NVML_DEVICE_MIG_DISABLE = pynvml.NVML_DEVICE_MIG_DISABLE
    NVMLError = pynvml.NVMLError

    def __init__(
        self,
        gpus: list[FakeGpu],
        *,
        library_missing: bool = False,
        driver_version: str = "550.54.15",
        cuda_driver_version: int = 12040,
        memory_info_v2: bool = True,
        compute_processes_v3: bool = True,
        compute_processes_v2: bool = True,
        privileged: bool = False,
        errors: dict[str, str | int] | None = None,
    ) -> None:
        self.gpus = gpus
        self.library_missing = library_missing
        self.driver_version = driver_version
        self.cuda_driver_version = cuda_driver_version
        self.memory_info_v2 = memory_info_v2
        self.compute_processes_v3 = compute_processes_v3
        self.compute_processes_v2 = compute_processes_v2
        self.privileged = privileged
        self.errors = dict(errors or {})
        self.initialised = False
        self.calls: list[str] = []

    @classmethod
    def from_fixture(cls, data: dict[str, Any]) -> FakeNvml:
        return cls(
            [FakeGpu.from_fixture(gpu, i) for i, gpu in enumerate(data.get("gpus") or [])],
            library_missing=data.get("library", "present") == "missing",
            driver_version=str(data.get("driverVersion", "550.54.15")),
            cuda_driver_version=_cuda_version(data.get("cudaDriverVersion")),
            memory_info_v2=bool(data.get("memoryInfoV2", True)),
            compute_processes_v3=bool(data.get("computeProcessesV3", True)),
            compute_processes_v2=bool(data.get("computeProcessesV2", True)),
            privileged=bool(data.get("privileged", False)),
            errors=data.get("errors"),
        )

    # -- plumbing ---------------------------------------------------------------------------

    def _enter(self, call: str, handle: _Handle | None = None) -> FakeGpu | None:
        self.calls.append(call)
        if call not in {"nvmlInit", "nvmlInitWithFlags"} and not self.initialised:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_UNINITIALIZED)
        if call in self.errors:
            raise _error(self.errors[call])
        if handle is None:
            return None
        if handle.gpu >= len(self.gpus):
            raise pynvml.NVMLError(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        gpu = self.gpus[handle.gpu]
        if call in gpu.errors:
            raise _error(gpu.errors[call])
        return gpu

    def _mig(self, gpu: FakeGpu, handle: _Handle) -> FakeMigDevice | None:
        return None if handle.mig is None else gpu.mig_devices[handle.mig]

    # -- system -----------------------------------------------------------------------------

    def nvmlInit(self) -> None:
        self._enter("nvmlInit")
        if self.library_missing:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_LIBRARY_NOT_FOUND)
        self.initialised = True

    def nvmlShutdown(self) -> None:
        self._enter("nvmlShutdown")
        self.initialised = False

    def nvmlSystemGetDriverVersion(self) -> str:
        self._enter("nvmlSystemGetDriverVersion")
        return self.driver_version

    def nvmlSystemGetCudaDriverVersion(self) -> int:
        self._enter("nvmlSystemGetCudaDriverVersion")
        return self.cuda_driver_version

    def nvmlDeviceGetCount(self) -> int:
        self._enter("nvmlDeviceGetCount")
        return len(self.gpus)

    # -- devices ----------------------------------------------------------------------------

    def nvmlDeviceGetHandleByIndex(self, index: int) -> _Handle:
        self._enter("nvmlDeviceGetHandleByIndex", _Handle(index))
        return _Handle(index)

    def nvmlDeviceGetUUID(self, handle: _Handle) -> str:
        gpu = self._enter("nvmlDeviceGetUUID", handle)
        mig = self._mig(gpu, handle)
        return mig.uuid if mig else gpu.uuid

    def nvmlDeviceGetName(self, handle: _Handle) -> str:
        return self._enter("nvmlDeviceGetName", handle).name

    def nvmlDeviceGetMemoryInfo(self, handle: _Handle, version: int | None = None) -> Any:
        gpu = self._enter("nvmlDeviceGetMemoryInfo", handle)
        mig = self._mig(gpu, handle)
        if mig is not None:
            if version:
                raise pynvml.NVMLError(pynvml.NVML_ERROR_NOT_SUPPORTED)
            free = mig.total_bytes - mig.used_bytes
            return SimpleNamespace(total=mig.total_bytes, used=mig.used_bytes, free=free)
        free = gpu.total_bytes - gpu.used_bytes - gpu.reserved_bytes
        if not version:
            used = gpu.used_bytes + gpu.reserved_bytes
            return SimpleNamespace(total=gpu.total_bytes, used=used, free=free)
        if not self.memory_info_v2:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_FUNCTION_NOT_FOUND)
        if version != pynvml.nvmlMemory_v2:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_ARGUMENT_VERSION_MISMATCH)
        return SimpleNamespace(
            version=version,
            total=gpu.total_bytes,
            reserved=gpu.reserved_bytes,
            used=gpu.used_bytes,
            free=free,
        )

    def nvmlDeviceGetCudaComputeCapability(self, handle: _Handle) -> tuple[int, int]:
        return self._enter("nvmlDeviceGetCudaComputeCapability", handle).compute_capability

    def nvmlDeviceGetMigMode(self, handle: _Handle) -> list[int]:
        gpu = self._enter("nvmlDeviceGetMigMode", handle)
        if gpu.mig_mode == "unsupported":
            raise pynvml.NVMLError(pynvml.NVML_ERROR_NOT_SUPPORTED)
        mode = (
            pynvml.NVML_DEVICE_MIG_ENABLE
            if gpu.mig_mode == "enabled"
            else pynvml.NVML_DEVICE_MIG_DISABLE
        )
        return [mode, mode]

    def nvmlDeviceGetMaxMigDeviceCount(self, handle: _Handle) -> int:
        gpu = self._enter("nvmlDeviceGetMaxMigDeviceCount", handle)
        return 7 if gpu.mig_mode == "enabled" else 0

    def nvmlDeviceGetMigDeviceHandleByIndex(self, handle: _Handle, index: int) -> _Handle:
        gpu = self._enter("nvmlDeviceGetMigDeviceHandleByIndex", handle)
        if gpu.mig_mode != "enabled":
            raise pynvml.NVMLError(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        if index >= len(gpu.mig_devices) or gpu.mig_devices[index] is None:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_NOT_FOUND)
        return _Handle(handle.gpu, index)

    @pynvml.throwOnVersionMismatch
    def nvmlDeviceGetComputeRunningProcesses(self, handle: _Handle) -> list[Any]:
        # pynvml's own decorator: v3's FunctionNotFound becomes NVMLLibraryMismatchError.
        gpu = self._enter("nvmlDeviceGetComputeRunningProcesses", handle)
        return self._running_processes(gpu, handle, available=self.compute_processes_v3)

    def nvmlDeviceGetComputeRunningProcesses_v3(self, handle: _Handle) -> list[Any]:  # noqa: N802
        gpu = self._enter("nvmlDeviceGetComputeRunningProcesses_v3", handle)
        return self._running_processes(gpu, handle, available=self.compute_processes_v3)

    def nvmlDeviceGetComputeRunningProcesses_v2(self, handle: _Handle) -> list[Any]:  # noqa: N802
        gpu = self._enter("nvmlDeviceGetComputeRunningProcesses_v2", handle)
        return self._running_processes(gpu, handle, available=self.compute_processes_v2)

    def _running_processes(self, gpu: FakeGpu, handle: _Handle, *, available: bool) -> list[Any]:
        if not available:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_FUNCTION_NOT_FOUND)
        mig = self._mig(gpu, handle)
        if mig is not None:
            listed = mig.processes
        elif gpu.mig_mode == "enabled":
            # The parent's aggregate is for privileged callers only.
            if not self.privileged:
                raise pynvml.NVMLError(pynvml.NVML_ERROR_NO_PERMISSION)
            listed = [p for m in gpu.mig_devices if m is not None for p in m.processes]
        else:
            listed = gpu.processes
        return [
            SimpleNamespace(pid=int(p["pid"]), usedGpuMemory=p.get("usedMemoryBytes"))
            for p in listed
        ]


def load_fixture(path: str | Path) -> FakeNvml:
    """A ``FakeNvml`` from a YAML or JSON file (JSON is YAML, but be explicit for errors)."""
    text = Path(path).read_text()
    data = json.loads(text) if str(path).endswith(".json") else yaml.safe_load(text)
    if not isinstance(data, dict):
        raise ValueError(f"{path}: an NVML fixture is a mapping, not {type(data).__name__}")
    return FakeNvml.from_fixture(data)

"""Sample GPUs through NVML: one code path over a pynvml-like module, real or fake.

``PynvmlSampler(module)`` calls only a handful of NVML functions on ``module``: the real
``pynvml`` (the default) or ``memplace.agent.fake.FakeNvml``, which raises the same
``pynvml.NVMLError`` subclasses. So what the tests exercise against the fake is exactly what runs
against a driver.

What it reads per GPU, and why each way:

- memory through ``nvmlDeviceGetMemoryInfo(handle, version=nvmlMemory_v2)``: v2 splits out the
  memory the driver reserves (firmware, ECC), which v1 counts as used. Drivers before r510 raise
  ``NVMLError_FunctionNotFound`` there; the sampler then falls back to v1 (reserved unknown)
  and remembers it.
- MIG: on a MIG-enabled GPU NVML reports the whole parent, so each instance's own memory is read
  from its MIG device handle (``nvmlDeviceGetMaxMigDeviceCount`` slots, empty ones raise
  ``NVMLError_NotFound``).
- processes: ``nvmlDeviceGetComputeRunningProcesses``; a failure there is counted but does not
  make the GPU unhealthy (the memory figures stand). In nvidia-ml-py 13 that call is v3 behind
  ``@throwOnVersionMismatch``: a driver without the v3 symbol (before r510, e.g. r470) raises
  ``NVMLLibraryMismatchError``, a plain ``Exception``, not an ``NVMLError``. The sampler then
  uses ``nvmlDeviceGetComputeRunningProcesses_v2`` and remembers it; a driver with neither gives
  no processes, counted every pass under the error's class name (the GPU stays healthy).
- MIG processes: on a MIG-enabled GPU NVML gives the parent handle's aggregate only to
  privileged callers (others get ``NVMLError_NoPermission``), so the sampler never asks the
  parent: it asks each MIG device handle and tags each process with its instance
  (``ProcessSample.mig_device_index``). They are all listed on the parent GPU: the report's API
  has no per-instance process list.

Failures: ``nvmlInit`` failing gives ``nvml.available = False`` with the reason and no GPUs; the
next ``sample()`` tries ``nvmlInit`` again. A call failing on one GPU gives that GPU
``healthy = False`` with the error, and the others are still sampled.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from typing import Any, Literal, Protocol

import pynvml

from memplace.agent.errors import GpuFailed, NvmlUnavailable

__all__ = [
    "GpuSample",
    "GpuSampling",
    "MigDeviceSample",
    "NvmlStatus",
    "ProcessSample",
    "PynvmlSampler",
    "Sampler",
    "describe",
]

logger = logging.getLogger(__name__)

MigMode = Literal["enabled", "disabled", "unsupported"]


@dataclasses.dataclass(frozen=True)
class ProcessSample:
    """A compute process on a GPU; the pod fields are filled from /proc/PID/cgroup when known."""

    pid: int
    used_memory_bytes: int | None
    pod_uid: str | None = None
    container_id: str | None = None
    pod_namespace: str | None = None
    pod_name: str | None = None
    mig_device_index: int | None = None
    """The MIG instance (``MigDeviceSample.index``) it runs on; None off MIG. Not on the wire."""


@dataclasses.dataclass(frozen=True)
class MigDeviceSample:
    """One MIG instance: its own memory, not the parent GPU's."""

    index: int
    uuid: str
    memory_total_bytes: int
    memory_used_bytes: int
    memory_free_bytes: int


@dataclasses.dataclass(frozen=True)
class GpuSample:
    """One GPU as NVML saw it. Unhealthy GPUs carry ``error`` and whatever was read before it."""

    index: int
    uuid: str | None = None
    name: str | None = None
    memory_total_bytes: int | None = None
    memory_used_bytes: int | None = None
    memory_free_bytes: int | None = None
    memory_reserved_bytes: int | None = None
    compute_capability: str | None = None
    mig_mode: MigMode | None = None
    healthy: bool = True
    error: str | None = None
    mig_devices: tuple[MigDeviceSample, ...] = ()
    processes: tuple[ProcessSample, ...] = ()


@dataclasses.dataclass(frozen=True)
class NvmlStatus:
    """Whether NVML answered, and the driver it found (or why not)."""

    available: bool
    driver_version: str | None = None
    cuda_driver_version: int | None = None
    """NVML's encoding: 12040 is CUDA 12.4."""
    error: str | None = None


@dataclasses.dataclass(frozen=True)
class GpuSampling:
    """One pass over the GPUs. ``error_kinds``: NVML error class names met (for the metric)."""

    nvml: NvmlStatus
    gpus: tuple[GpuSample, ...] = ()
    error_kinds: tuple[str, ...] = ()


class Sampler(Protocol):
    """Anything that can measure the node's GPUs."""

    def sample(self) -> GpuSampling: ...

    def close(self) -> None: ...


def describe(error: BaseException) -> str:
    """``"GPU is lost (NVMLError_GPUIsLost)"``: NVML's words and the class to grep for."""
    return f"{error} ({type(error).__name__})"


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


# The capability probes: these errors mean "not on this GPU/driver", not "broken".
_NOT_SUPPORTED = (pynvml.NVMLError_NotSupported, pynvml.NVMLError_FunctionNotFound)

# The process listings, newest first. The unversioned call is v3; pynvml turns its missing
# symbol into NVMLLibraryMismatchError (not an NVMLError), a versioned call raises
# NVMLError_FunctionNotFound.
_PROCESS_CALLS = (
    "nvmlDeviceGetComputeRunningProcesses",
    "nvmlDeviceGetComputeRunningProcesses_v2",
)
_CALL_MISSING = (pynvml.NVMLLibraryMismatchError, pynvml.NVMLError_FunctionNotFound)


class PynvmlSampler:
    """The one sampler, over ``pynvml`` or anything with its surface (see ``fake.FakeNvml``).

    ``pid_to_pod`` maps a host PID to (pod UID, container id) or None; see ``host.pod_for_pid``.
    """

    def __init__(
        self,
        module: Any = pynvml,
        *,
        pid_to_pod: Callable[[int], tuple[str, str | None] | None] | None = None,
    ) -> None:
        self.nvml = module
        self.pid_to_pod = pid_to_pod
        self._initialised = False
        self._memory_v2: bool | None = None  # None: not probed yet
        # Index into _PROCESS_CALLS of the listing that works; None: not probed yet.
        self._process_call: int | None = None
        # The error class name when no listing exists on this driver (counted every pass).
        self._processes_missing: str | None = None

    # -- lifecycle --------------------------------------------------------------------------

    def _init(self) -> None:
        if self._initialised:
            return
        try:
            self.nvml.nvmlInit()
        except pynvml.NVMLError as error:
            raise NvmlUnavailable(
                f"nvmlInit: {describe(error)}", kind=type(error).__name__
            ) from error
        self._initialised = True
        self._memory_v2 = None
        self._process_call = None
        self._processes_missing = None

    def close(self) -> None:
        if self._initialised:
            self._initialised = False
            try:
                self.nvml.nvmlShutdown()
            except pynvml.NVMLError as error:
                logger.debug("nvmlShutdown: %s", describe(error))

    # -- sampling ---------------------------------------------------------------------------

    def sample(self) -> GpuSampling:
        try:
            self._init()
            driver, cuda = self._versions()
            try:
                count = self.nvml.nvmlDeviceGetCount()
            except pynvml.NVMLError as error:
                # The driver went away under us: start over next time.
                self.close()
                raise NvmlUnavailable(
                    f"nvmlDeviceGetCount: {describe(error)}", kind=type(error).__name__
                ) from error
        except NvmlUnavailable as error:
            return GpuSampling(
                nvml=NvmlStatus(available=False, error=str(error)), error_kinds=(error.kind,)
            )
        gpus: list[GpuSample] = []
        kinds: list[str] = []
        for index in range(count):
            found: dict[str, Any] = {"index": index}
            try:
                handle, mig_handles = self._read_gpu(index, found)
            except GpuFailed as failed:
                kinds.append(failed.kind)
                gpus.append(GpuSample(**found, healthy=False, error=str(failed)))
                continue
            if mig_handles is None:
                found["processes"] = self._processes(handle, kinds)
            else:
                # Not the parent: it answers non-root callers with NoPermission.
                found["processes"] = tuple(
                    process
                    for slot, mig in mig_handles
                    for process in self._processes(mig, kinds, mig_device_index=slot)
                )
            gpus.append(GpuSample(**found))
        return GpuSampling(
            nvml=NvmlStatus(available=True, driver_version=driver, cuda_driver_version=cuda),
            gpus=tuple(gpus),
            error_kinds=tuple(kinds),
        )

    def _versions(self) -> tuple[str | None, int | None]:
        try:
            driver: str | None = _text(self.nvml.nvmlSystemGetDriverVersion())
        except pynvml.NVMLError:
            driver = None
        try:
            cuda: int | None = int(self.nvml.nvmlSystemGetCudaDriverVersion())
        except pynvml.NVMLError:
            cuda = None
        return driver, cuda

    def _read_gpu(
        self, index: int, found: dict[str, Any]
    ) -> tuple[Any, list[tuple[int, Any]] | None]:
        """Fill ``found`` call by call; the first failing call raises ``GpuFailed``.

        Returns the GPU's handle and, when MIG is enabled, its MIG device handles by slot.
        """
        mig_handles: list[tuple[int, Any]] | None = None
        call = "nvmlDeviceGetHandleByIndex"
        try:
            handle = self.nvml.nvmlDeviceGetHandleByIndex(index)
            call = "nvmlDeviceGetUUID"
            found["uuid"] = _text(self.nvml.nvmlDeviceGetUUID(handle))
            call = "nvmlDeviceGetName"
            found["name"] = _text(self.nvml.nvmlDeviceGetName(handle))
            call = "nvmlDeviceGetMemoryInfo"
            found.update(self._memory(handle))
            call = "nvmlDeviceGetCudaComputeCapability"
            major, minor = self.nvml.nvmlDeviceGetCudaComputeCapability(handle)
            found["compute_capability"] = f"{major}.{minor}"
            call = "nvmlDeviceGetMigMode"
            found["mig_mode"] = mode = self._mig_mode(handle)
            if mode == "enabled":
                call = "nvmlDeviceGetMigDeviceHandleByIndex"
                mig_handles = []
                found["mig_devices"] = self._mig_devices(handle, mig_handles)
        except pynvml.NVMLError as error:
            raise GpuFailed(
                f"{call}: {describe(error)}", index=index, call=call, kind=type(error).__name__
            ) from error
        return handle, mig_handles

    def _memory(self, handle: Any) -> dict[str, int | None]:
        if self._memory_v2 is not False:
            try:
                info = self.nvml.nvmlDeviceGetMemoryInfo(handle, version=pynvml.nvmlMemory_v2)
            except (*_NOT_SUPPORTED, pynvml.NVMLError_ArgumentVersionMismatch) as error:
                logger.info("memory info v2 unavailable (%s): using v1", describe(error))
                self._memory_v2 = False
            else:
                self._memory_v2 = True
                return {
                    "memory_total_bytes": int(info.total),
                    "memory_used_bytes": int(info.used),
                    "memory_free_bytes": int(info.free),
                    "memory_reserved_bytes": int(info.reserved),
                }
        info = self.nvml.nvmlDeviceGetMemoryInfo(handle)
        return {
            "memory_total_bytes": int(info.total),
            "memory_used_bytes": int(info.used),
            "memory_free_bytes": int(info.free),
            "memory_reserved_bytes": None,
        }

    def _mig_mode(self, handle: Any) -> MigMode:
        try:
            current, _pending = self.nvml.nvmlDeviceGetMigMode(handle)
        except _NOT_SUPPORTED:
            return "unsupported"
        return "enabled" if current == pynvml.NVML_DEVICE_MIG_ENABLE else "disabled"

    def _mig_devices(
        self, handle: Any, handles: list[tuple[int, Any]]
    ) -> tuple[MigDeviceSample, ...]:
        """The MIG instances; their handles are appended to ``handles`` as (slot, handle)."""
        devices: list[MigDeviceSample] = []
        for slot in range(self.nvml.nvmlDeviceGetMaxMigDeviceCount(handle)):
            try:
                mig = self.nvml.nvmlDeviceGetMigDeviceHandleByIndex(handle, slot)
            except pynvml.NVMLError_NotFound:
                continue  # an empty slot
            # MIG instances have no v2 memory info on every driver: v1 is what they report.
            info = self.nvml.nvmlDeviceGetMemoryInfo(mig)
            devices.append(
                MigDeviceSample(
                    index=slot,
                    uuid=_text(self.nvml.nvmlDeviceGetUUID(mig)),
                    memory_total_bytes=int(info.total),
                    memory_used_bytes=int(info.used),
                    memory_free_bytes=int(info.free),
                )
            )
            handles.append((slot, mig))
        return tuple(devices)

    def _running(self, handle: Any) -> Any:
        """The compute processes on ``handle`` through the newest listing the driver has.

        Raises what the listing raises; ``_CALL_MISSING`` only when no listing exists (then
        ``_processes_missing`` is set and later passes do not ask again).
        """
        start = self._process_call or 0
        missing: Exception | None = None
        for position in range(start, len(_PROCESS_CALLS)):
            call = _PROCESS_CALLS[position]
            function = getattr(self.nvml, call, None)
            if function is None:  # a module without it
                continue
            try:
                running = function(handle)
            except _CALL_MISSING as error:
                logger.info("%s unavailable on this driver: %s", call, describe(error))
                missing = error
                continue
            self._process_call = position
            return running
        error = missing or pynvml.NVMLError(pynvml.NVML_ERROR_FUNCTION_NOT_FOUND)
        self._processes_missing = type(error).__name__
        logger.warning(
            "no process listing on this driver (%s): GPU processes will not be reported",
            describe(error),
        )
        raise error

    def _processes(
        self, handle: Any, kinds: list[str], *, mig_device_index: int | None = None
    ) -> tuple[ProcessSample, ...]:
        if self._processes_missing is not None:
            kinds.append(self._processes_missing)
            return ()
        try:
            running = self._running(handle)
        except _CALL_MISSING as error:
            kinds.append(type(error).__name__)
            return ()
        except pynvml.NVMLError_NotSupported:
            return ()
        except pynvml.NVMLError as error:
            logger.warning("%s: %s", _PROCESS_CALLS[self._process_call or 0], describe(error))
            kinds.append(type(error).__name__)
            return ()
        processes = []
        for process in running:
            pid = int(process.pid)
            used = process.usedGpuMemory
            pod = self.pid_to_pod(pid) if self.pid_to_pod else None
            processes.append(
                ProcessSample(
                    pid=pid,
                    used_memory_bytes=None if used is None else int(used),
                    pod_uid=pod[0] if pod else None,
                    container_id=pod[1] if pod else None,
                    mig_device_index=mig_device_index,
                )
            )
        return tuple(processes)

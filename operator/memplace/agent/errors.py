"""What can go wrong in the agent, and how it is told apart.

```
AgentError                 anything the agent raises on purpose
├── NvmlUnavailable        NVML could not start (no library, driver not loaded, …):
│                          the node is reported with nvml.available false and the loop retries
├── GpuFailed              one GPU failed a call (lost, reset required, …): that GPU is reported
│                          unhealthy, the others are still sampled
└── PublishError           the API server refused or could not be reached, after retries:
                           counted in a metric, the loop carries on
```

NVML failures keep their cause: ``raise NvmlUnavailable(...) from error`` where ``error`` is the
``pynvml.NVMLError`` subclass (``NVMLError_LibraryNotFound``, ``NVMLError_GPUIsLost``, …), and
``kind`` names that class, which is the ``kind`` label of ``memplace_nvml_errors_total``.
"""

from __future__ import annotations

__all__ = ["AgentError", "GpuFailed", "NvmlUnavailable", "PublishError"]


class AgentError(Exception):
    """Base of every error the agent raises on purpose."""


class NvmlUnavailable(AgentError):
    """NVML did not initialise; ``kind`` is the NVML error class name."""

    def __init__(self, message: str, *, kind: str) -> None:
        super().__init__(message)
        self.kind = kind


class GpuFailed(AgentError):
    """An NVML call on one GPU failed; ``call`` is the NVML function, ``kind`` the error class."""

    def __init__(self, message: str, *, index: int, call: str, kind: str) -> None:
        super().__init__(message)
        self.index = index
        self.call = call
        self.kind = kind


class PublishError(AgentError):
    """The report could not be written; ``status`` is the last HTTP status (None: no answer)."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status

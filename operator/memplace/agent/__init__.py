"""The node agent: measures GPU and host memory with NVML and publishes a NodeMemoryReport.

``nvml`` samples GPUs over a pynvml-like module (``pynvml``, or ``fake.FakeNvml`` from a fixture),
``host`` reads /proc and the offload disk, ``report`` turns a sample into the API object and
decides when it is worth writing, ``publish`` writes it, ``metrics`` exports it, ``loop`` runs it.
Errors are drawn in ``errors``. Imports run one way: this package uses ``memplace.api`` only, and
never ``memplace.operator`` or kopf.
"""

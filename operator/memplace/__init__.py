"""memplace: place ML models on a Kubernetes cluster by memory.

Layers (enforced by import-linter, see pyproject.toml): ``cli`` → ``operator`` | ``agent``
→ ``planning`` → ``api``. ``planning`` and ``api`` do no I/O.
"""

__version__ = "0.1.0"
"""The one version: the wheel, `memplace --version`, the image label and the chart follow it."""

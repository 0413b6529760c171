"""What ``memplace run`` was asked to do, as one frozen value the handlers read from Kopf's memo.

``memplace run`` builds :class:`Settings` from its flags and :func:`configure` stores it before
Kopf starts; the startup handler copies :func:`current` into the operator's memo. Tests call
:func:`configure` the same way, so the handlers never read flags or environment themselves
(except ``HF_TOKEN`` / ``HF_ENDPOINT``, read here once).
"""

from __future__ import annotations

import dataclasses
import os

from memplace.planning.scaling import LOAD_BYTES_PER_SECOND

from .prometheus import PrometheusConfig

__all__ = ["Settings", "configure", "current"]


@dataclasses.dataclass(frozen=True)
class Settings:
    """The operator's knobs; defaults are what the Helm chart runs with."""

    stuck_after_seconds: float = 600.0
    """Pods PodScheduled=False longer than this mark their pool full for that deployment."""
    resync_seconds: float = 15.0
    """How often each deployment is re-checked: capacity, prices, readiness, stuck pods."""
    metrics_port: int | None = None
    """Serve Prometheus metrics on this port (0: any free port); None: no metrics server."""
    metrics_host: str = "0.0.0.0"
    """The address the metrics server listens on."""
    hf_endpoint: str = dataclasses.field(
        default_factory=lambda: os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    )
    """Where ``hf://org/name`` sources are fetched from (``HF_ENDPOINT``)."""
    hf_token: str | None = dataclasses.field(
        default_factory=lambda: os.environ.get("HF_TOKEN") or None, repr=False
    )
    """A Hugging Face token for gated models (``HF_TOKEN``); never logged."""
    input_timeout_seconds: float = 600.0
    """A new deployment waiting this long for an input its spec names (a ConfigMap, a config
    source) is marked Invalid (``--input-timeout``); until then it is Pending and retried."""
    reporting_component: str = "memplace"
    """The component Events are reported as."""
    # Moves (``moves``): a running placement replaced without a gap.
    min_move_interval_seconds: float = 1800.0
    """A deployment moves at most once in this long (from ``status.lastMoveTime``)."""
    move_timeout_seconds: float = 1800.0
    """A successor not Ready this long after it was created is deleted: the move is abandoned."""
    # Measuring (``measure``): the engines' own metrics from Prometheus.
    prometheus: PrometheusConfig | None = None
    """Where the engines' metrics are read (``--prometheus-url`` …); None: nothing is measured
    and SLOMet is Unknown."""
    measure_interval_seconds: float = 30.0
    """How often each placed deployment is measured (``--measure-interval``)."""
    measure_window: str = "5m"
    """The window each measurement covers, a Prometheus duration (``--measure-window``)."""
    wake_query: str | None = None
    """PromQL whose value above 0 wakes a cold model (``--wake-query``), when KEDA does not;
    ``{namespace}`` and ``{name}`` are replaced; spec.scaling.wakeQuery overrides it."""
    keda_http_scaler: str = "keda-add-ons-http-external-scaler.keda:9090"
    """The KEDA HTTP add-on's external scaler, ``host:port`` (``--keda-http-scaler``): the
    ScaledObject's trigger on the HTTPScaledObject (``keda_http.SCALER``, where the add-on's
    own manifests install it)."""
    load_bytes_per_second: float = LOAD_BYTES_PER_SECOND
    """The bandwidth weights are assumed to load at, for status.demand.coldStartSeconds."""
    scrape: str = "auto"
    """How Prometheus finds the model pods (``--scrape``): ``auto`` (a PodMonitor when the CRD
    is served, else pod annotations), ``podmonitor``, ``annotations`` or ``none``."""
    # Batched re-plans (``consolidate``): at startup, on capacity changes, and periodically.
    consolidate_every_seconds: float | None = None
    """Re-plan every deployment as a batch this often (consolidation); None: only at startup
    and when capacity changes."""
    consolidation_threshold: float = 0.10
    """A running placement moves only to save more than this share of its cost (or to place
    something of higher priority)."""
    disruption_budget: int = 1
    """At most this many running deployments are given a new place per batch re-plan."""


_current = Settings()


def configure(settings: Settings) -> None:
    """Set what the next operator run uses (``memplace run`` and tests call this)."""
    global _current
    _current = settings


def current() -> Settings:
    """What the next operator run uses."""
    return _current

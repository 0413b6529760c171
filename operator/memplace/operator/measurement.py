"""What one measurement window says about one deployment, and what status makes of it. Pure.

A :class:`Measurement` is the value the measurement loop (``measure``) builds per placed
deployment every ``--measure-interval``: the engine's figures over ``--measure-window`` (the
``promql`` figure names, in the engine's own units: seconds, tokens per second, a 0–1 share,
requests), the reasons for the figures it could not get, or one failure that stopped the whole
measurement (no ``--prometheus-url``, Prometheus unreachable, no pods yet). Issue 13's measured
demand reads the same value (``output_tokens_per_second``, ``requests_waiting``).

From it and the deployment's status this module derives, without I/O:

- :func:`measured_fields`: the ``status.measured`` fields (milliseconds, camelCase) with
  ``estimateError`` = measured ÷ estimated per figure. The median is compared with the estimate
  (the roofline estimates a typical token, not a tail); where the engine exports no histogram the
  mean is;
- :func:`slo_verdict`: the ``SLOMet`` condition. The p95 is checked against the SLO (the mean
  where no histogram exists); True when every measured figure with an SLO meets it, False when
  one misses, Unknown (with the reason) when nothing could be measured or no SLO is stated;
- :func:`drifted`: the figures whose estimate is off by more than :data:`DRIFT` (25 %).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

__all__ = [
    "DRIFT",
    "Measurement",
    "Verdict",
    "drifted",
    "measured_fields",
    "slo_verdict",
]

DRIFT = 0.25
"""|measured ÷ estimated − 1| above this posts EstimateDrift (issue 10: "more than 25 %")."""

_LATENCIES = (
    # (figure prefix, status field, SLO field, estimate field, estimateError field, short name)
    ("ttft", "timeToFirstTokenMs", "timeToFirstTokenMs", "timeToFirstTokenMs",
     "timeToFirstToken", "TTFT"),
    ("tpot", "timePerOutputTokenMs", "timePerOutputTokenMs", "timePerOutputTokenMs",
     "timePerOutputToken", "TPOT"),
)


@dataclass(frozen=True)
class Measurement:
    """One window's figures for one deployment (engine units: seconds, tokens/s, shares)."""

    engine: str
    window: str
    observed_at: datetime
    figures: Mapping[str, float] = field(default_factory=dict)
    """``promql.FIGURES`` names → value."""
    missing: Mapping[str, str] = field(default_factory=dict)
    """Figure names → why there is no value."""
    failure: str | None = None
    """Why nothing could be measured at all (then ``figures`` is empty)."""

    @property
    def source(self) -> str:
        return f"prometheus {self.engine}"


@dataclass(frozen=True)
class Verdict:
    """The SLOMet condition's content."""

    status: str
    """``True``, ``False`` or ``Unknown``."""
    reason: str
    message: str

    @property
    def missed(self) -> bool:
        return self.status == "False"


def measured_fields(
    measurement: Measurement, status: Mapping[str, Any]
) -> dict[str, Any]:
    """The ``status.measured`` fields this measurement sets (None when it failed entirely).

    ``status``: the deployment's current status (its estimate, placement, and the agent's
    ``measured.gpuMemoryBytesPerReplica``)."""
    figures = measurement.figures
    fields: dict[str, Any] = {
        "window": measurement.window,
        "observedAt": _rfc3339(measurement.observed_at),
        "source": measurement.source,
    }
    for prefix, status_field, *_ in _LATENCIES:
        latency = {
            quantile: round(figures[f"{prefix}_{quantile}"] * 1000, 3)
            for quantile in ("p50", "p95", "mean")
            if f"{prefix}_{quantile}" in figures
        }
        fields[status_field] = latency or None
    fields["outputTokensPerSecond"] = _rounded(figures.get("output_tokens_per_second"))
    fields["kvCacheUsage"] = _rounded(figures.get("kv_cache_usage"), 4)
    fields["requestsRunning"] = _rounded(figures.get("requests_running"))
    fields["requestsWaiting"] = _rounded(figures.get("requests_waiting"))
    fields["estimateError"] = _estimate_error(fields, status) or None
    return fields


def _estimate_error(fields: Mapping[str, Any], status: Mapping[str, Any]) -> dict[str, float]:
    estimate = status.get("estimate") or {}
    errors: dict[str, float] = {}
    for _prefix, status_field, _slo, estimate_field, error_field, _name in _LATENCIES:
        measured = _typical(fields.get(status_field))
        predicted = estimate.get(estimate_field)
        if measured is not None and predicted:
            errors[error_field] = round(measured / predicted, 3)
    memory = (status.get("measured") or {}).get("gpuMemoryBytesPerReplica")
    per_gpu = estimate.get("totalBytesPerGpu")
    gpus = max(int((status.get("placement") or {}).get("gpusPerReplica") or 1), 1)
    if memory and per_gpu:
        errors["gpuMemoryPerReplica"] = round(memory / (per_gpu * gpus), 3)
    return errors


def slo_verdict(
    measurement: Measurement | None, slo: Mapping[str, Any], *, no_prometheus: str | None = None
) -> Verdict:
    """SLOMet from this window's figures and ``spec.slo``.

    ``no_prometheus``: the message when measuring is switched off (no ``--prometheus-url``)."""
    if no_prometheus is not None:
        return Verdict("Unknown", "NoPrometheus", no_prometheus)
    if measurement is None:
        return Verdict("Unknown", "NotMeasured", "not measured yet")
    if measurement.failure is not None:
        return Verdict("Unknown", "MeasurementFailed", measurement.failure)
    stated = [item for item in _LATENCIES if slo.get(item[2])]
    if not stated:
        return Verdict("Unknown", "NoSLO", "spec.slo states no latency target to check")
    met: list[str] = []
    missed: list[str] = []
    unknown: list[str] = []
    for prefix, _field, slo_field, _e, _err, name in stated:
        target = float(slo[slo_field])
        value, which = _checked(measurement.figures, prefix)
        if value is None:
            why = measurement.missing.get(f"{prefix}_p95") or measurement.missing.get(
                f"{prefix}_mean") or "not measured"
            unknown.append(f"{name} {why}")
            continue
        text = f"{which} {name} {value:.0f} ms"
        if value > target:
            missed.append(f"{text} > SLO {target:g} ms")
        else:
            met.append(f"{text} <= SLO {target:g} ms")
    window = f" over {measurement.window}"
    if missed:
        return Verdict("False", "SLOMissed", "; ".join(missed + met + unknown) + window)
    if met:
        return Verdict("True", "SLOMet", "; ".join(met + unknown) + window)
    return Verdict("Unknown", "NoData", "; ".join(unknown) + window)


def drifted(estimate_error: Mapping[str, float] | None) -> dict[str, float]:
    """The estimateError figures more than :data:`DRIFT` away from 1."""
    return {
        name: ratio for name, ratio in (estimate_error or {}).items() if abs(ratio - 1) > DRIFT
    }


def _checked(figures: Mapping[str, float], prefix: str) -> tuple[float | None, str]:
    """The figure the SLO is checked against, in ms: the p95, else the mean."""
    for quantile, label in (("p95", "p95"), ("mean", "mean")):
        value = figures.get(f"{prefix}_{quantile}")
        if value is not None:
            return value * 1000, label
    return None, ""


def _typical(latency: Mapping[str, float] | None) -> float | None:
    """The figure compared with the estimate: the median, else the mean."""
    if not latency:
        return None
    return latency.get("p50", latency.get("mean"))


def _rounded(value: float | None, digits: int = 2) -> float | None:
    return None if value is None else round(value, digits)


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

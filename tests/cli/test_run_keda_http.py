"""``memplace run --keda-http-scaler``: the HTTP add-on's scaler address reaches the settings,
and a malformed one is refused with the reason before anything starts."""

from __future__ import annotations

import kopf
import pytest
from test_run_command import run_and_capture

from memplace.cli import main


def test_the_scaler_flag_reaches_the_settings_with_the_add_ons_default(monkeypatch):
    from memplace.operator import keda_http, settings

    run_and_capture(monkeypatch)
    assert settings.current().keda_http_scaler == keda_http.SCALER
    run_and_capture(monkeypatch, "--keda-http-scaler", "http-scaler.keda-system:9091")
    assert settings.current().keda_http_scaler == "http-scaler.keda-system:9091"


@pytest.mark.parametrize(
    "value", ["scaler.keda", ":9090", "scaler.keda:http", "scaler:0", "scaler:70000"]
)
def test_a_malformed_scaler_address_is_refused(monkeypatch, capsys, value):
    monkeypatch.setattr(kopf, "run", lambda **kwargs: None)
    assert main(["run", "--keda-http-scaler", value]) != 0
    assert "--keda-http-scaler must be HOST:PORT" in capsys.readouterr().err

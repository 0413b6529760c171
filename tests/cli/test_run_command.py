"""`memplace run` hands Kopf the right peering settings."""

from __future__ import annotations

import os

import kopf
import pytest

from memplace.cli import main, preflight


def run_and_capture(monkeypatch, *args: str) -> dict:
    seen: dict = {}
    monkeypatch.setattr(kopf, "run", lambda **kwargs: seen.update(kwargs))
    monkeypatch.setattr(preflight, "check", lambda *args, **kwargs: None)  # test_run_preflight.py
    assert main(["run", *args]) == 0
    return seen


def test_standalone_without_peering(monkeypatch):
    seen = run_and_capture(monkeypatch)
    assert seen["standalone"] is True and seen["peering_name"] is None


def test_peered_replicas_get_distinct_priorities_so_exactly_one_is_active(monkeypatch):
    # Kopf pauses every replica that shares the top priority: equal defaults would stop all.
    priorities = {
        run_and_capture(monkeypatch, "--peering", "memplace")["priority"] for _ in range(5)
    }
    assert len(priorities) == 5


def test_an_explicit_priority_is_used(monkeypatch):
    seen = run_and_capture(monkeypatch, "--peering", "memplace", "--priority", "100")
    assert seen["priority"] == 100 and seen["standalone"] is False


def test_a_peered_replica_has_an_identity_its_own_peer_check_can_read(monkeypatch):
    monkeypatch.delenv("POD_ID", raising=False)
    run_and_capture(monkeypatch, "--peering", "memplace")
    assert os.environ["POD_ID"]  # Kopf's detect_own_id and peering.own_identity read it
    monkeypatch.setenv("POD_ID", "memplace-abc")
    run_and_capture(monkeypatch, "--peering", "memplace")
    assert os.environ["POD_ID"] == "memplace-abc"


def test_the_move_flags_reach_the_operator_settings(monkeypatch):
    from memplace.operator import settings

    monkeypatch.setattr(settings, "_current", settings.Settings())
    run_and_capture(monkeypatch)
    assert settings.current().min_move_interval_seconds == 1800  # the documented 30m default
    run_and_capture(monkeypatch, "--min-move-interval", "1h", "--move-timeout", "90s")
    assert settings.current().min_move_interval_seconds == 3600
    assert settings.current().move_timeout_seconds == 90


def test_without_a_prometheus_url_nothing_is_measured(monkeypatch):
    from memplace.operator import settings

    run_and_capture(monkeypatch)
    configured = settings.current()
    assert configured.prometheus is None
    assert (configured.measure_interval_seconds, configured.measure_window) == (30.0, "5m")


def test_the_prometheus_flags_reach_the_settings(monkeypatch, tmp_path):
    from memplace.operator import settings

    token = tmp_path / "token"
    token.write_text("secret\n")
    ca = tmp_path / "ca.crt"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    run_and_capture(monkeypatch, "--prometheus-url", "https://prometheus.monitoring:9090",
                    "--prometheus-ca-file", str(ca), "--prometheus-token-file", str(token),
                    "--measure-interval", "10s", "--measure-window", "90s")
    configured = settings.current()
    assert configured.prometheus.url == "https://prometheus.monitoring:9090"
    assert configured.prometheus.ca_file == str(ca)
    assert configured.prometheus.token_file == str(token)
    assert configured.prometheus.insecure is False
    assert (configured.measure_interval_seconds, configured.measure_window) == (10.0, "90s")


@pytest.mark.parametrize("args, said", [
    (["--prometheus-url", "prometheus:9090"], "is not an http(s) URL"),
    (["--prometheus-token-file", "/nonexistent"], "needs --prometheus-url"),
    (["--prometheus-url", "http://p:9090", "--prometheus-token-file", "/nonexistent"],
     "no file at /nonexistent"),
    (["--measure-window", "0s"], "must be positive"),
    (["--measure-window", "1500ms"], "whole seconds"),
    (["--measure-interval", "soon"], "not a duration"),
])
def test_bad_prometheus_flags_are_refused_with_the_reason(monkeypatch, capsys, args, said):
    monkeypatch.setattr(kopf, "run", lambda **kwargs: None)
    assert main(["run", *args]) != 0
    assert said in capsys.readouterr().err

"""``memplace run --kubeconfig PATH`` logs Kopf in with that file, whatever else is around.

Kopf's default login prefers the in-cluster account and then the kubernetes library's default
kubeconfig, a path the library read from ``KUBECONFIG`` when it was imported. The handler
``memplace.cli.login`` registers loads the named file on every login instead.
"""

from __future__ import annotations

import asyncio
import sys
import textwrap
from pathlib import Path
from typing import Any

import kopf
import yaml
from kopf._core.intents.causes import Activity  # the registry's own key, not re-exported
from kubernetes.config import kube_config

from memplace.cli import login


def kubeconfig(path: Path, server: str, user: dict[str, Any]) -> str:
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "test",
        "clusters": [{"name": "test", "cluster": {"server": server,
                                                  "insecure-skip-tls-verify": True}}],
        "users": [{"name": "test", "user": user}],
        "contexts": [{"name": "test", "context": {"cluster": "test", "user": "test"}}],
    }))
    return str(path)


def test_a_token_kubeconfig_gives_its_server_and_token(tmp_path):
    info = login.connection_info(kubeconfig(tmp_path / "k", "https://10.0.0.1:6443",
                                            {"token": "abc"}))
    assert (info.server, info.scheme, info.token, info.insecure) == (
        "https://10.0.0.1:6443", "Bearer", "abc", True)


def test_a_client_certificate_kubeconfig_gives_its_files(tmp_path):
    cert, key = tmp_path / "c.pem", tmp_path / "k.pem"
    cert.write_text("certificate"), key.write_text("key")
    info = login.connection_info(kubeconfig(
        tmp_path / "k", "https://10.0.0.2:6443",
        {"client-certificate": str(cert), "client-key": str(key)}))
    assert (info.certificate_path, info.private_key_path, info.token) == (str(cert), str(key),
                                                                          None)


def test_an_exec_plugin_is_run_at_each_login(tmp_path):
    counter = tmp_path / "runs"
    script = tmp_path / "plugin.py"
    script.write_text(textwrap.dedent(f"""\
        import json, pathlib
        p = pathlib.Path({str(counter)!r})
        n = int(p.read_text()) + 1 if p.exists() else 1
        p.write_text(str(n))
        print(json.dumps({{"apiVersion": "client.authentication.k8s.io/v1",
                          "kind": "ExecCredential", "status": {{"token": f"token-{{n}}"}}}}))
    """))
    path = kubeconfig(tmp_path / "k", "https://10.0.0.3:6443", {"exec": {
        "apiVersion": "client.authentication.k8s.io/v1", "command": sys.executable,
        "args": [str(script)], "interactiveMode": "Never"}})
    assert login.connection_info(path).token == "token-1"
    assert login.connection_info(path).token == "token-2"  # renewed, as after a 401


def test_the_registered_login_ignores_kubeconfig_and_what_the_library_read_at_import(
        tmp_path, monkeypatch):
    named = kubeconfig(tmp_path / "named", "https://10.0.0.4:6443", {"token": "named"})
    other = kubeconfig(tmp_path / "other", "https://10.9.9.9:6443", {"token": "other"})
    monkeypatch.setenv("KUBECONFIG", other)
    monkeypatch.setattr(kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", other)
    registry = kopf.OperatorRegistry()
    login.register(named, registry=registry)
    handlers = registry._activities.get_handlers(activity=Activity.AUTHENTICATION)
    assert len(handlers) == 1
    info = asyncio.run(_call(handlers[0]))
    assert (info.server, info.token) == ("https://10.0.0.4:6443", "named")


async def _call(handler: Any) -> Any:
    result = handler.fn(settings=kopf.OperatorSettings(), logger=None)
    return await result if asyncio.iscoroutine(result) else result


def test_the_peering_lifetime_is_set_at_startup():
    registry = kopf.OperatorRegistry()
    login.peering_lifetime(7, registry=registry)
    settings = kopf.OperatorSettings()
    for handler in registry._activities.get_handlers(activity=Activity.STARTUP):
        handler.fn(settings=settings)
    assert settings.peering.lifetime == 7

"""How ``memplace run`` logs Kopf in when a kubeconfig is named: that file, and nothing else.

Kopf's default login (``kopf.login_via_client``) tries the in-cluster service account first and
then the kubernetes library's default kubeconfig, whose path the library reads from
``KUBECONFIG`` once, when it is imported. So ``--kubeconfig`` used to work only because ``run``
set ``KUBECONFIG`` before anything imported the library, and in a pod it lost to the pod's
account. ``register(path)`` adds a ``@kopf.on.login`` handler that loads ``path`` itself
(tokens, client certificates, exec plugins: what the kubernetes library's loader supports) on
every login, so that an exec plugin's token is renewed when Kopf logs in again after a 401.
Without a kubeconfig Kopf's default login stays (the in-cluster account in a pod).
"""

from __future__ import annotations

from typing import Any

__all__ = ["connection_info", "register"]


def connection_info(path: str, trust_env: bool = False) -> Any:
    """``kopf.ConnectionInfo`` for the current context of the kubeconfig at ``path``."""
    import kopf
    from kubernetes import client, config

    configuration = client.Configuration()
    config.load_kube_config(config_file=path, client_configuration=configuration)
    # kubernetes ≥ 36.0.1 keeps the bearer token under "BearerToken", before under
    # "authorization" (kubernetes-client/python#2585); the method also asks auth providers.
    header = configuration.get_api_key_with_prefix(
        "BearerToken"
    ) or configuration.get_api_key_with_prefix("authorization")
    parts = header.split(" ", 1) if header else []
    scheme, token = (None, None) if not parts else (None, parts[0]) if len(parts) == 1 else parts
    return kopf.ConnectionInfo(
        server=configuration.host,
        ca_path=configuration.ssl_ca_cert,
        insecure=not configuration.verify_ssl,
        username=configuration.username or None,
        password=configuration.password or None,
        scheme=scheme,
        token=token,
        certificate_path=configuration.cert_file,
        private_key_path=configuration.key_file,
        trust_env=trust_env,
    )


def register(path: str, registry: Any = None) -> None:
    """Log Kopf in with the kubeconfig at ``path`` (in Kopf's default registry unless given)."""
    import kopf

    @kopf.on.login(id="memplace-kubeconfig", registry=registry)
    def _login_with_kubeconfig(settings: kopf.OperatorSettings, **_: Any) -> Any:
        return connection_info(path, trust_env=settings.networking.trust_env)


def peering_lifetime(seconds: int, registry: Any = None) -> None:
    """Set Kopf's peering lifetime (how long a silent peer still counts) at startup."""
    import kopf

    @kopf.on.startup(id="memplace-peering-lifetime", registry=registry)
    def _set_lifetime(settings: kopf.OperatorSettings, **_: Any) -> None:
        settings.peering.lifetime = seconds

"""Before Kopf starts: is there a cluster, can we reach it, may we talk to it, are the CRDs in?

Kopf on its own answers each of these with pages of retried tracebacks (130 lines without a
kubeconfig; 170 lines after 21 s for an unreachable server). ``check`` asks the API server
four questions with a bounded timeout, in the order a user fixes them, and raises
``UsageError`` with one line for the first that fails:

- no kubeconfig and not in a pod          → "no kubeconfig: …"
- the server does not answer (connect)    → "cannot reach the API server at …"
- 401 / 403 on the memplace.io group      → "unauthorised by the API server at …" / "forbidden …"
- 404 on the memplace.io group            → "the memplace CRDs are not installed …"
- the group's APIResourceList lacks a kind → "the memplace CRDs on … lack ModelAdapter, …"
  (every kind of ``memplace.api.crds.RESOURCES``, the source crds/ is generated from: an
  older install, or one CRD deleted, would otherwise start Kopf on a partial API)
- 403 listing ModelDeployments everywhere → "forbidden … may not list modeldeployments…"
  (only when the operator watches every namespace: the chart's ClusterRole grants it)

It loads credentials the way Kopf's own fallback does (the kubernetes client's kubeconfig loader,
then the in-cluster service account), so tokens, client certificates and exec plugins all work.
"""

from __future__ import annotations

import json
import os
import re
from typing import Any

from memplace.cli import UsageError

__all__ = ["check"]

GROUP, VERSION = "memplace.io", "v1alpha1"
GROUP_PATH = f"/apis/{GROUP}/{VERSION}"
CONNECT_TIMEOUT_S = 3.0
READ_TIMEOUT_S = 5.0
TIMEOUT = (CONNECT_TIMEOUT_S, READ_TIMEOUT_S)


def check(kubeconfig: str | None, clusterwide: bool = True) -> None:
    """Raise ``UsageError`` (one line) unless the cluster is reachable, lets us in, has the CRDs
    and, when the operator watches every namespace, lets this identity list ModelDeployments."""
    configuration = _configuration(kubeconfig)
    server = configuration.host
    status, body = _get(
        configuration,
        lambda api: api.get_api_resources(
            GROUP, VERSION, _request_timeout=TIMEOUT, _preload_content=False
        ),
    )
    if status == 404:
        raise UsageError(
            f"the memplace CRDs are not installed on {server} ({GROUP_PATH} not found): "
            "kubectl apply -f crds/ (or helm install the chart)"
        )
    if status == 401:
        raise UsageError(
            f"unauthorised by the API server at {server} (401): the kubeconfig's credentials "
            "were refused"
        )
    if status == 403:
        raise UsageError(
            f"forbidden by the API server at {server} (403): this identity may not read the "
            f"API group {GROUP_PATH}"
        )
    if status >= 400:
        raise UsageError(f"the API server at {server} answered {status} for {GROUP_PATH}")
    missing = _missing_kinds(body)
    if missing:
        raise UsageError(
            f"the memplace CRDs on {server} lack {', '.join(missing)} ({GROUP_PATH} does not "
            "list them): kubectl apply -f crds/ (or helm upgrade the chart)"
        )
    if not clusterwide:
        return  # per-namespace permissions: Kopf's own retries say which namespace refuses
    status, _ = _get(
        configuration,
        lambda api: api.list_cluster_custom_object(
            GROUP,
            VERSION,
            "modeldeployments",
            limit=1,
            _request_timeout=TIMEOUT,
            _preload_content=False,
        ),
    )
    if status == 403:
        raise UsageError(
            f"forbidden by the API server at {server} (403): this identity may not list "
            "modeldeployments.memplace.io in all namespaces (the chart's ClusterRole grants it; "
            "or give --namespace)"
        )
    if status >= 400:
        raise UsageError(f"the API server at {server} answered {status} for modeldeployments")


def _configuration(kubeconfig: str | None) -> Any:
    from kubernetes import client, config

    configuration = client.Configuration()
    path = kubeconfig or os.environ.get("KUBECONFIG") or os.path.expanduser("~/.kube/config")
    candidates = [p for p in path.split(os.pathsep) if p]
    if any(os.path.exists(p) for p in candidates):
        try:
            config.load_kube_config(config_file=path, client_configuration=configuration)
        except Exception as error:  # a malformed file, an unknown context, a failing exec plugin
            raise UsageError(f"cannot use the kubeconfig {path}: {_first_line(error)}") from None
        return configuration
    if os.environ.get("KUBERNETES_SERVICE_HOST"):
        try:
            config.load_incluster_config(client_configuration=configuration)
        except config.ConfigException as error:
            raise UsageError(f"in-cluster login failed: {_first_line(error)}") from None
        return configuration
    raise UsageError(
        f"no kubeconfig: {path} does not exist and this is not a pod "
        "(give --kubeconfig PATH or set KUBECONFIG)"
    )


def _missing_kinds(body: bytes) -> list[str]:
    """The memplace kinds the group's APIResourceList does not name, in the CRDs' order (all
    of them when the body is not an APIResourceList)."""
    from memplace.api.crds import RESOURCES

    try:
        listed = json.loads(body or b"{}").get("resources") or []
        served = {r.get("kind") for r in listed if isinstance(r, dict)}
    except (ValueError, AttributeError):
        served = set()
    return [s.resource.kind for s in RESOURCES if s.resource.kind not in served]


def _get(configuration: Any, call: Any) -> tuple[int, bytes]:
    """The HTTP status and body of ``call(CustomObjectsApi)``; an unreachable server raises
    UsageError."""
    import urllib3
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    configuration.retries = False  # urllib3 would retry a refused connection 3 times
    with client.ApiClient(configuration) as api:
        custom = client.CustomObjectsApi(api)
        try:
            response = call(custom)
            body = response.data  # _preload_content=False: urllib3's response, read here
        except ApiException as error:
            if error.status:
                return int(error.status), b""
            unreachable: Exception = error  # status 0: the client wraps urllib3's error
        except (urllib3.exceptions.HTTPError, OSError) as error:  # refused, timed out, DNS, TLS
            unreachable = error
        else:
            return 200, body
    raise UsageError(f"cannot reach the API server at {configuration.host}: {_reason(unreachable)}")


def _reason(error: Exception) -> str:
    """urllib3's innermost reason, without its object reprs."""
    reason = getattr(error, "reason", None) or error
    text = str(reason).strip().splitlines()[-1] if str(reason).strip() else ""
    # "<urllib3.connection.HTTPSConnection object at 0x…>: Failed to …", "HTTPSConnection(…): …"
    text = re.sub(r"^(<[^>]*>|\w+Connection\([^)]*\)): ", "", text)
    return _first_line(text)


def _first_line(error: object) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__

"""`memplace run` says in one line, exit 2, what stops it from reaching the cluster.

A real HTTP server on loopback plays the API server (answering the memplace.io discovery with a
chosen status), so the kubernetes client's loading, authentication header and timeouts are the
real ones; Kopf is replaced only where the check passes, to show that it would have started.
"""

from __future__ import annotations

import http.server
import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import kopf
import pytest

from memplace.cli import main

GROUP = "/apis/memplace.io/v1alpha1"
LIST = f"{GROUP}/modeldeployments?"
KINDS = {  # what crds/ installs: plural → kind
    "modeldeployments": "ModelDeployment",
    "placementpools": "PlacementPool",
    "nodememoryreports": "NodeMemoryReport",
    "modeladapters": "ModelAdapter",
    "performanceprofiles": "PerformanceProfile",
}


def resource_list(kinds: dict[str, str]) -> dict:
    """The group's discovery document as the API server writes it, status subresources too."""
    resources = []
    for plural, kind in kinds.items():
        resources += [
            {"name": plural, "namespaced": True, "kind": kind, "verbs": ["get", "list"]},
            {"name": f"{plural}/status", "namespaced": True, "kind": kind, "verbs": ["get"]},
        ]
    return {
        "kind": "APIResourceList",
        "groupVersion": "memplace.io/v1alpha1",
        "resources": resources,
    }


class FakeApiServer(http.server.BaseHTTPRequestHandler):
    status = 200  # for the memplace.io discovery
    list_status = 200  # for listing ModelDeployments in every namespace
    kinds = KINDS  # what the discovery lists
    seen: list[tuple[str, str | None]] = []

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        type(self).seen.append((self.path, self.headers.get("Authorization")))
        if self.path == GROUP:
            status, body = self.status, resource_list(self.kinds)
        elif self.path.startswith(LIST):
            status, body = self.list_status, {"kind": "ModelDeploymentList", "items": []}
        else:
            status, body = 404, {"kind": "Status"}
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture()
def api_server() -> Iterator[tuple[str, type[FakeApiServer]]]:
    handler = type("Handler", (FakeApiServer,), {"seen": []})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", handler
    server.shutdown()
    server.server_close()


def kubeconfig(tmp_path: Path, server: str) -> str:
    path = tmp_path / "kubeconfig"
    path.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "test",
        "clusters": [{"name": "test", "cluster": {"server": server}}],
        "users": [{"name": "test", "user": {"token": "s3cret"}}],
        "contexts": [{"name": "test", "context": {"cluster": "test", "user": "test"}}],
    }))  # fmt: skip
    return str(path)


def one_line_exit_2(capsys, *args: str) -> str:
    assert main(["run", *args]) == 2
    out = capsys.readouterr()
    assert out.out == ""
    lines = out.err.splitlines()
    assert len(lines) == 1, out.err
    assert lines[0].startswith("memplace run: ")
    return lines[0]


@pytest.fixture(autouse=True)
def kopf_must_not_start(monkeypatch):
    def refuse(**_: object) -> None:
        raise AssertionError("Kopf started although the preflight check failed")

    monkeypatch.setattr(kopf, "run", refuse)
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    # `memplace run --kubeconfig` exports KUBECONFIG for Kopf: record it so that it is undone
    monkeypatch.setenv("KUBECONFIG", "")
    monkeypatch.delenv("KUBECONFIG")


def test_no_kubeconfig_and_not_in_a_pod(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "absent"))
    line = one_line_exit_2(capsys)
    assert line.startswith("memplace run: no kubeconfig: ")
    assert str(tmp_path / "absent") in line


def test_a_kubeconfig_that_cannot_be_used(capsys, tmp_path):
    path = tmp_path / "kubeconfig"
    path.write_text("apiVersion: v1\nkind: Config\ncontexts: []\n")
    line = one_line_exit_2(capsys, "--kubeconfig", str(path))
    assert line.startswith(f"memplace run: cannot use the kubeconfig {path}: ")


def test_an_unreachable_server(capsys, tmp_path):
    with socket.socket() as sock:  # a port nobody listens on: bound, never listening
        sock.bind(("127.0.0.1", 0))
        server = f"http://127.0.0.1:{sock.getsockname()[1]}"
        line = one_line_exit_2(capsys, "--kubeconfig", kubeconfig(tmp_path, server))
    assert line.startswith(f"memplace run: cannot reach the API server at {server}: ")
    assert "Connection refused" in line and "object at 0x" not in line


@pytest.mark.parametrize(
    ("status", "start"),
    [
        (401, "memplace run: unauthorised by the API server at "),
        (403, "memplace run: forbidden by the API server at "),  # … may not read the API group
        (404, "memplace run: the memplace CRDs are not installed on "),
    ],
)
def test_the_server_refuses_or_lacks_the_crds(capsys, tmp_path, api_server, status, start):
    url, handler = api_server
    handler.status = status
    line = one_line_exit_2(capsys, "--kubeconfig", kubeconfig(tmp_path, url))
    assert line.startswith(start + url)
    assert handler.seen == [(GROUP, "Bearer s3cret")]  # asked with the kubeconfig's token


def test_an_identity_that_may_not_list_every_namespace_is_told_so(capsys, tmp_path, api_server):
    url, handler = api_server
    handler.list_status = 403
    line = one_line_exit_2(capsys, "--kubeconfig", kubeconfig(tmp_path, url))
    assert line.startswith(f"memplace run: forbidden by the API server at {url} (403): ")
    assert "may not list modeldeployments.memplace.io in all namespaces" in line


def test_a_reachable_cluster_with_the_crds_starts_kopf(monkeypatch, tmp_path, api_server):
    url, handler = api_server
    started: list[dict] = []
    monkeypatch.setattr(kopf, "run", lambda **kwargs: started.append(kwargs))
    assert main(["run", "--kubeconfig", kubeconfig(tmp_path, url)]) == 0
    assert len(started) == 1
    assert [path.split("?")[0] for path, _ in handler.seen] == [GROUP, LIST.rstrip("?")]


def test_watching_named_namespaces_does_not_need_the_cluster_wide_list(
    monkeypatch, tmp_path, api_server
):
    url, handler = api_server
    handler.list_status = 403  # a namespaced Role only
    started: list[dict] = []
    monkeypatch.setattr(kopf, "run", lambda **kwargs: started.append(kwargs))
    assert main(["run", "--kubeconfig", kubeconfig(tmp_path, url), "--namespace", "ml"]) == 0
    assert len(started) == 1 and [p for p, _ in handler.seen] == [GROUP]


def test_the_crds_file_lists_the_kinds_the_fake_serves():
    import yaml

    root = Path(__file__).parents[2] / "crds"
    installed = {}
    for path in root.glob("*.yaml"):
        names = yaml.safe_load(path.read_text())["spec"]["names"]
        installed[names["plural"]] = names["kind"]
    assert installed == KINDS


def test_a_group_that_lacks_some_memplace_kinds_names_them(capsys, tmp_path, api_server):
    url, handler = api_server
    handler.kinds = {p: k for p, k in KINDS.items() if k not in ("ModelAdapter", "PlacementPool")}
    line = one_line_exit_2(capsys, "--kubeconfig", kubeconfig(tmp_path, url))
    assert line.startswith(f"memplace run: the memplace CRDs on {url} lack ")
    assert "lack PlacementPool, ModelAdapter (" in line
    assert "ModelDeployment," not in line and "kubectl apply -f crds/" in line
    assert handler.seen == [(GROUP, "Bearer s3cret")]  # it stopped before listing anything

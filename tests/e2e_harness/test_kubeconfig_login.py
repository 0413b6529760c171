"""The e2e harness logs in as the operator does: token, client-certificate and exec-plugin
kubeconfigs each authenticate against a TLS server on loopback that checks them.

The server (a CA, a server certificate for 127.0.0.1 and client certificates, made here with
``cryptography``) answers ``/api`` and ``/version`` to a client it knows, by its certificate's
common name or its bearer token, and 403 as ``system:anonymous`` to anyone else, as the
API server does.
"""

from __future__ import annotations

import base64
import datetime
import http.server
import ipaddress
import json
import ssl
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

x509 = pytest.importorskip("cryptography.x509", reason="cryptography makes the test PKI")
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from cryptography.x509.oid import NameOID  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "e2e"))
from kubeapi import Api, ApiError  # noqa: E402

TOKEN = "memplace-test-token"
EXEC_TOKEN = "memplace-exec-token"


class Pki:
    """A CA and the certificates it signs, written as PEM files under ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.ca_key = ec.generate_private_key(ec.SECP256R1())
        self.ca_cert = self._certificate("memplace-test-ca", self.ca_key.public_key(), ca=True)
        self.ca_path = self._write("ca.crt", self.ca_cert.public_bytes(serialization.Encoding.PEM))

    def issue(self, name: str, *, server: bool = False) -> tuple[Path, Path]:
        key = ec.generate_private_key(ec.SECP256R1())
        cert = self._certificate(name, key.public_key(), server=server)
        key_pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        return (
            self._write(f"{name}.crt", cert.public_bytes(serialization.Encoding.PEM)),
            self._write(f"{name}.key", key_pem),
        )

    def _certificate(
        self, name: str, public_key: Any, *, ca: bool = False, server: bool = False
    ) -> Any:
        now = datetime.datetime.now(datetime.UTC)
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        issuer = subject if ca else self.ca_cert.subject
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(issuer)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if server:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False,
            )
        return builder.sign(self.ca_key, hashes.SHA256())

    def _write(self, name: str, data: bytes) -> Path:
        path = self.root / name
        path.write_bytes(data)
        return path


class _Handler(http.server.BaseHTTPRequestHandler):
    seen: list[str]

    def do_GET(self) -> None:  # noqa: N802 — http.server's name
        user = self._user()
        self.seen.append(user)
        if user == "system:anonymous":
            self._answer(
                403,
                {
                    "kind": "Status",
                    "status": "Failure",
                    "reason": "Forbidden",
                    "message": f'forbidden: User "{user}" cannot get path "{self.path}"',
                    "code": 403,
                },
            )
        elif self.path == "/version":
            self._answer(200, {"major": "1", "minor": "36", "gitVersion": "v1.36.0"})
        elif self.path == "/api":
            self._answer(200, {"kind": "APIVersions", "versions": ["v1"]})
        else:
            self._answer(404, {"kind": "Status", "code": 404})

    def _user(self) -> str:
        certificate = self.connection.getpeercert()  # verified against the CA, or None
        if certificate:
            return "cert:" + dict(pair[0] for pair in certificate["subject"])["commonName"]
        header = self.headers.get("Authorization", "")
        if header in (f"Bearer {TOKEN}", f"Bearer {EXEC_TOKEN}"):
            return "token:" + header.split()[1]
        return "system:anonymous"

    def _answer(self, code: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *_: Any) -> None:
        pass


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Pki:
    return Pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def server(pki: Pki) -> Iterator[tuple[str, list[str]]]:
    """``https://127.0.0.1:PORT`` and the identities it has seen, in order."""
    cert, key = pki.issue("apiserver", server=True)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    context.load_verify_locations(pki.ca_path)
    context.verify_mode = ssl.CERT_OPTIONAL  # as kube-apiserver: a certificate, else a token
    seen: list[str] = []
    handler = type("Handler", (_Handler,), {"seen": seen})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{httpd.server_address[1]}", seen
    finally:
        httpd.shutdown()
        httpd.server_close()


def kubeconfig(path: Path, cluster: dict[str, Any], user: dict[str, Any]) -> str:
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": "test",
                "clusters": [{"name": "test", "cluster": cluster}],
                "users": [{"name": "test", "user": user}],
                "contexts": [{"name": "test", "context": {"cluster": "test", "user": "test"}}],
            }
        )
    )
    return str(path)


def b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def logged_in_as(config: str, seen: list[str]) -> str:
    api = Api(config)
    assert api.get("/version")["gitVersion"] == "v1.36.0"
    assert api.get("/api")["versions"] == ["v1"]
    assert seen[-1] == seen[-2]
    return seen[-1]


@pytest.fixture(autouse=True)
def _outside_a_cluster(monkeypatch):
    # A CI runner inside a pod has a service account; the tests below say when one is there.
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)


def test_a_bearer_token_kubeconfig_authenticates(server, pki, tmp_path):
    url, seen = server
    config = kubeconfig(
        tmp_path / "kubeconfig",
        {"server": url, "certificate-authority": str(pki.ca_path)},
        {"token": TOKEN},
    )
    assert logged_in_as(config, seen) == f"token:{TOKEN}"


def test_a_client_certificate_kubeconfig_authenticates_with_files(server, pki, tmp_path):
    url, seen = server
    cert, key = pki.issue("alice")
    config = kubeconfig(
        tmp_path / "kubeconfig",
        {"server": url, "certificate-authority": str(pki.ca_path)},
        {"client-certificate": str(cert), "client-key": str(key)},
    )
    assert logged_in_as(config, seen) == "cert:alice"


def test_a_kind_style_kubeconfig_with_inline_data_authenticates(server, pki, tmp_path):
    # kind writes exactly this: the CA, the certificate and the key inline, base64.
    url, seen = server
    cert, key = pki.issue("kind-admin")
    config = kubeconfig(
        tmp_path / "kubeconfig",
        {"server": url, "certificate-authority-data": b64(pki.ca_path)},
        {"client-certificate-data": b64(cert), "client-key-data": b64(key)},
    )
    assert logged_in_as(config, seen) == "cert:kind-admin"


def exec_plugin(tmp_path: Path, status: dict[str, str]) -> dict[str, Any]:
    script = tmp_path / "credential-plugin.py"
    script.write_text(
        textwrap.dedent(f"""\
        import json
        print(json.dumps({{"apiVersion": "client.authentication.k8s.io/v1",
                          "kind": "ExecCredential", "status": {status!r}}}))
    """)
    )
    return {
        "exec": {
            "apiVersion": "client.authentication.k8s.io/v1",
            "command": sys.executable,
            "args": [str(script)],
            "interactiveMode": "Never",
        }
    }


def test_an_exec_plugin_token_authenticates(server, pki, tmp_path):
    url, seen = server
    config = kubeconfig(
        tmp_path / "kubeconfig",
        {"server": url, "certificate-authority": str(pki.ca_path)},
        exec_plugin(tmp_path, {"token": EXEC_TOKEN}),
    )
    assert logged_in_as(config, seen) == f"token:{EXEC_TOKEN}"


def test_an_exec_plugin_client_certificate_authenticates(server, pki, tmp_path):
    url, seen = server
    cert, key = pki.issue("exec-user")
    config = kubeconfig(
        tmp_path / "kubeconfig",
        {"server": url, "certificate-authority": str(pki.ca_path)},
        exec_plugin(
            tmp_path, {"clientCertificateData": cert.read_text(), "clientKeyData": key.read_text()}
        ),
    )
    assert logged_in_as(config, seen) == "cert:exec-user"


def test_without_credentials_the_server_answers_403_as_anonymous(server, pki, tmp_path):
    # The server really checks: the same CA and no credentials are refused.
    url, seen = server
    config = kubeconfig(
        tmp_path / "kubeconfig", {"server": url, "certificate-authority": str(pki.ca_path)}, {}
    )
    with pytest.raises(ApiError, match='403 Forbidden: forbidden: User "system:anonymous"'):
        Api(config).get("/version")  # the API server's own words, not only the code
    assert seen[-1] == "system:anonymous"


def test_inside_a_pod_the_named_kubeconfig_still_wins(server, pki, tmp_path, monkeypatch):
    # As `memplace run --kubeconfig` (memplace.cli.login): a CI runner in a pod has a service
    # account that Kopf's default login would take first; the named file is who we are.
    from kubernetes.config import incluster_config

    url, seen = server
    token, ca = tmp_path / "sa-token", tmp_path / "sa-ca.crt"
    token.write_text(EXEC_TOKEN)
    ca.write_bytes(pki.ca_path.read_bytes())
    monkeypatch.setattr(incluster_config, "SERVICE_TOKEN_FILENAME", str(token))
    monkeypatch.setattr(incluster_config, "SERVICE_CERT_FILENAME", str(ca))
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "127.0.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", url.rsplit(":", 1)[1])
    cert, key = pki.issue("named")
    config = kubeconfig(
        tmp_path / "kubeconfig",
        {"server": url, "certificate-authority": str(pki.ca_path)},
        {"client-certificate": str(cert), "client-key": str(key)},
    )
    assert logged_in_as(config, seen) == "cert:named"


def test_a_server_certificate_from_another_ca_is_refused(server, tmp_path):
    url, _ = server
    other = Pki(tmp_path)
    config = kubeconfig(
        tmp_path / "kubeconfig",
        {"server": url, "certificate-authority": str(other.ca_path)},
        {"token": TOKEN},
    )
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        Api(config).get("/version")


def test_the_chart_identitys_token_kubeconfig_authenticates(server, pki):
    # E2E_OPERATOR_RBAC=chart: memplace run logs in with a TokenRequest token in this file.
    from chart_rbac import kubeconfig_for_token

    url, seen = server
    path = pki.root / "operator-kubeconfig"
    path.write_text(kubeconfig_for_token(url, TOKEN, str(pki.ca_path), insecure=False))
    assert logged_in_as(str(path), seen) == f"token:{TOKEN}"

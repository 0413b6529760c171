"""`memplace agent --once -o json` prints its report whether or not a cluster is configured."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "nvml"


def agent_once(
    tmp_path: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "KUBECONFIG": str(tmp_path / "none")} | (
        env or {}
    )
    env["PYTHONPATH"] = ":".join(sys.path)
    return subprocess.run(
        [sys.executable, "-m", "memplace", "agent", "--once", "-o", "json", *args],
        capture_output=True, text=True, timeout=60, check=False, env=env,
    )  # fmt: skip


def test_without_a_cluster_it_prints_the_report_and_says_it_did_not_publish(tmp_path):
    done = agent_once(tmp_path, "--node-name", "n1", "--nvml-fake", str(FIXTURES / "h100x2.yaml"))
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["kind"] == "NodeMemoryReport"
    assert report["metadata"]["name"] == "n1"
    assert done.stderr.startswith("memplace agent: not published: no cluster configured")
    assert len(done.stderr.splitlines()) == 1


def test_no_publish_says_nothing_about_publishing(tmp_path):
    done = agent_once(tmp_path, "--node-name", "n1", "--no-publish")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["metadata"]["name"] == "n1"
    assert "publish" not in done.stderr


KUBECONFIG_UNREACHABLE = """
apiVersion: v1
kind: Config
clusters:
- name: gone
  cluster: {server: "https://127.0.0.1:1", insecure-skip-tls-verify: true}
users:
- name: someone
  user: {token: not-a-secret}
contexts:
- name: gone
  context: {cluster: gone, user: someone}
current-context: gone
"""


def test_an_unreachable_cluster_is_one_line_on_stderr_without_retries_and_exit_0(tmp_path):
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(KUBECONFIG_UNREACHABLE)
    fake = str(FIXTURES / "h100x2.yaml")
    done = agent_once(
        tmp_path, "--node-name", "n1", "--nvml-fake", fake, "--kubeconfig", str(kubeconfig)
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["metadata"]["name"] == "n1"
    (line,) = done.stderr.splitlines()  # one line: no urllib3 "Retrying", no backoff warnings
    assert line.startswith("memplace agent: not published: the API server https://127.0.0.1:1")
    assert "Connection refused" in line and "object at 0x" not in line


def test_without_a_node_name_it_takes_node_name_from_the_environment_then_the_hostname(
    tmp_path,
):
    fake = str(FIXTURES / "h100x2.yaml")
    done = agent_once(tmp_path, "--nvml-fake", fake, "--no-publish")
    assert done.returncode == 0, done.stderr
    host = socket.gethostname()
    assert json.loads(done.stdout)["metadata"]["name"] == host
    assert done.stderr == f"memplace agent: node name {host} (from the hostname)\n"
    done = agent_once(tmp_path, "--nvml-fake", fake, "--no-publish", env={"NODE_NAME": "gpu-7"})
    assert json.loads(done.stdout)["metadata"]["name"] == "gpu-7"
    assert done.stderr == "memplace agent: node name gpu-7 (from $NODE_NAME)\n"


def test_an_api_server_that_refuses_is_a_one_line_failure_exit_1(tmp_path):
    import http.server
    import threading

    class Forbidden(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            body = json.dumps({"kind": "Status", "code": 403, "reason": "Forbidden"}).encode()
            self.send_response(403)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Forbidden)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        kubeconfig = tmp_path / "kubeconfig"
        kubeconfig.write_text(KUBECONFIG_UNREACHABLE.replace('"https://127.0.0.1:1"', url))
        fake = str(FIXTURES / "h100x2.yaml")
        done = agent_once(
            tmp_path, "--node-name", "n1", "--nvml-fake", fake, "--kubeconfig", str(kubeconfig)
        )
    finally:
        server.shutdown()
        server.server_close()
    assert done.returncode == 1
    assert json.loads(done.stdout)["metadata"]["name"] == "n1"  # the report is printed anyway
    assert done.stderr == "memplace agent: publishing failed: read Node: HTTP 403 Forbidden\n"

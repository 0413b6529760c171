"""`memplace agent --once -o json` prints its report whether or not a cluster is configured."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "nvml"


def agent_once(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "KUBECONFIG": str(tmp_path / "none")}
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

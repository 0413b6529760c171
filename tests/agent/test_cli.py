"""``memplace agent`` from the command line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from memplace.api import NodeMemoryReport
from memplace.cli import UsageError
from memplace.cli.units import parse_duration, parse_size

EXAMPLES = Path(__file__).resolve().parents[1] / "fixtures" / "nvml"

# ``memplace.cli.main`` builds every subcommand; while a sibling is not written yet, run ``agent``
# through a parser of its own, with the same one-line/exit-2 handling as ``main``.
MAIN = """
import argparse, importlib.util, sys
import memplace.cli as cli
if all(importlib.util.find_spec(f"memplace.cli.{n}") for n in cli.SUBCOMMANDS):
    sys.exit(cli.main(sys.argv[1:]))
from memplace.cli import agent
parser = argparse.ArgumentParser(prog="memplace")
agent.register(parser.add_subparsers(dest="command", required=True))
args = parser.parse_args(sys.argv[1:])
try:
    sys.exit(int(args.handler(args) or 0))
except cli.UsageError as error:
    print(f"memplace {args.command}: {error}", file=sys.stderr)
    sys.exit(2)
"""


def memplace(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", MAIN, *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def agent_once(*args: str) -> subprocess.CompletedProcess:
    return memplace("agent", "--node-name", "gpu-node-1", "--once", "--no-publish", *args)


def test_once_json_with_a_fake_prints_one_report(tmp_path: Path) -> None:
    done = agent_once(
        "-o", "json", "--nvml-fake", str(EXAMPLES / "h100x2.yaml"), "--offload-path", str(tmp_path)
    )

    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    NodeMemoryReport.model_validate(report)
    assert report["metadata"]["name"] == "gpu-node-1"
    status = report["status"]
    assert status["nvml"]["available"] is True
    assert [gpu["memoryUsedBytes"] for gpu in status["gpus"]] == [73014444032, 0]
    assert status["host"]["memTotalBytes"] > 0
    assert status["host"]["offloadPath"] == str(tmp_path)
    assert status["host"]["offloadFreeBytes"] > 0


def test_once_on_an_old_driver_prints_a_report_with_its_processes() -> None:
    # r470 has no ..._v3 process listing: nvidia-ml-py 13 raises NVMLLibraryMismatchError there.
    done = agent_once("-o", "json", "--nvml-fake", str(EXAMPLES / "old-driver.yaml"))

    assert done.returncode == 0, done.stderr
    gpu = json.loads(done.stdout)["status"]["gpus"][0]
    assert gpu["healthy"] is True
    assert gpu["processes"] == [{"pid": 3131, "usedMemoryBytes": 1073741824}]


def test_once_with_no_driver_says_nvml_is_unavailable_and_exits_0() -> None:
    done = agent_once("-o", "json")  # the real pynvml backend; this machine has no driver

    assert done.returncode == 0, done.stderr
    status = json.loads(done.stdout)["status"]
    if status["nvml"]["available"]:
        pytest.skip("this machine has an NVIDIA driver")
    assert "NVMLError" in status["nvml"]["error"]
    assert status["gpus"] == []
    assert status["host"]["memTotalBytes"] > 0


def test_once_yaml_prints_yaml() -> None:
    done = agent_once("-o", "yaml", "--nvml-fake", str(EXAMPLES / "a100-mig.yaml"))
    assert done.returncode == 0, done.stderr
    report = yaml.safe_load(done.stdout)
    assert len(report["status"]["gpus"][0]["migDevices"]) == 3


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--interval", "soon"], "not a duration"),
        (["--min-change", "lots"], "not a size"),
        (["--nvml-fake", "/nonexistent.yaml"], "--nvml-fake"),
        (["--offload-path", "/nonexistent"], "not a directory"),
    ],
)
def test_user_errors_are_one_line_and_exit_2(args: list[str], message: str) -> None:
    done = agent_once(*args)
    assert done.returncode == 2
    assert done.stderr.startswith("memplace agent: ")
    assert message in done.stderr and done.stderr.count("\n") == 1


def test_a_running_agent_without_a_node_name_is_a_usage_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # --once falls back to the hostname (tests/cli/test_agent_once.py); a running agent does
    # not: in a pod the hostname is the pod's name, not the Node's
    monkeypatch.delenv("NODE_NAME", raising=False)
    done = memplace("agent", "--no-publish")
    assert done.returncode == 2 and "--node-name is required" in done.stderr


@pytest.mark.parametrize(
    ("text", "seconds"), [("10s", 10), ("1m", 60), ("500ms", 0.5), ("2h", 7200), ("15", 15)]
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    ("text", "size"),
    [("256Mi", 256 * 1024**2), ("1Gi", 1024**3), ("500M", 500_000_000), ("4096", 4096)],
)
def test_parse_size(text: str, size: int) -> None:
    assert parse_size(text) == size


def test_parse_size_rejects_nonsense() -> None:
    with pytest.raises(UsageError):
        parse_size("12 parsecs")

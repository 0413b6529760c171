"""``memplace run`` from this tree as a process, for e2e: started, SIGKILLed, restarted.

Standalone (no peering), so a SIGKILL leaves no peering object behind. Each start takes a new
free port for Kopf's liveness endpoint (``--health-port``) and waits until it answers, instead of
sleeping and hoping; a process that exits (``memplace run`` fails fast, exit 2, with one line)
fails the start with its log.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
from fakes import wait_for

__all__ = ["LocalOperator"]

ROOT = Path(__file__).resolve().parent.parent
OPERATOR_READY_S = 60


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class LocalOperator:
    """``memplace run`` from this tree, as a process: killed (SIGKILL) and restarted by tests.

    Standalone (no peering), so a SIGKILL leaves no peering object behind; each start takes a
    new free port for Kopf's liveness endpoint and waits until it answers."""

    def __init__(self, kubeconfig: str, log: Path) -> None:
        self.kubeconfig = kubeconfig
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None
        self.port = 0

    def command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "memplace",
            "run",
            "--kubeconfig",
            self.kubeconfig,
            "--all-namespaces",
            "--resync",
            "2s",
            "--stuck-after",
            "10m",
            "--health-port",
            str(self.port),
            "--verbose",
        ]

    def env(self) -> dict[str, str]:
        """This tree's operator/ first on the path, whether or not memplace is installed."""
        path = [str(ROOT / "operator"), os.environ.get("PYTHONPATH", "")]
        return {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in path if p)}

    def start(self) -> None:
        self.port = _free_port()
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                self.command(), stdout=out, stderr=subprocess.STDOUT, cwd=ROOT, env=self.env()
            )
        wait_for(
            self._ready,
            timeout=OPERATOR_READY_S,
            interval=0.5,
            what="memplace run to answer on its liveness endpoint",
            state=self.tail,
        )

    def _ready(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"memplace run exited ({self.process.returncode}):\n{self.tail()}")
        try:
            return httpx.get(f"http://127.0.0.1:{self.port}/healthz", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=30)

    def tail(self, chars: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""

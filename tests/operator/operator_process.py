"""``memplace run`` as a real process against the emulator: started, SIGKILLed, restarted.

The emulator serves on a localhost port from the test's event loop; the operator process logs in
through a kubeconfig written here (the emulator's URL and ``Cluster.operator_token``), the way
it logs in to any cluster (``kopf.login_via_client``). Its output goes to a log file that
failures quote. Tests must ``await`` (not block) while it runs: the emulator answers from their
loop.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import yaml

__all__ = ["OperatorProcess", "write_kubeconfig"]

ROOT = Path(__file__).resolve().parents[2]


def write_kubeconfig(path: Path, server: str, token: str) -> Path:
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "emulator",
        "clusters": [{"name": "emulator", "cluster": {"server": server}}],
        "users": [{"name": "operator", "user": {"token": token}}],
        "contexts": [{"name": "emulator",
                      "context": {"cluster": "emulator", "user": "operator"}}],
    }))
    return path


class OperatorProcess:
    """One ``memplace run`` process; :meth:`start` again after :meth:`kill` restarts it."""

    def __init__(self, kubeconfig: Path, log: Path, *args: str,
                 env: dict[str, str] | None = None, peering_lifetime: int | None = None) -> None:
        self.log = log
        self.env = {**os.environ, **(env or {})}
        self.env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(ROOT / "operator"), os.environ.get("PYTHONPATH")) if p)
        self.env.pop("KUBERNETES_SERVICE_HOST", None)  # the kubeconfig, not a pod's account
        self.env.pop("KUBECONFIG", None)  # only --kubeconfig names the cluster
        run = ["run", "--kubeconfig", str(kubeconfig), "--all-namespaces", *args]
        if peering_lifetime is not None:  # Kopf's default is 60 s: a takeover in seconds
            run += ["--peering-lifetime", f"{peering_lifetime}s"]
        self.command = [sys.executable, "-m", "memplace", *run]
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> None:
        assert not self.running, "already running"
        with self.log.open("ab") as out:
            out.write(f"--- start {self.starts + 1}: {' '.join(self.command)}\n".encode())
            out.flush()
            self.process = subprocess.Popen(self.command, stdout=out, stderr=subprocess.STDOUT,
                                            env=self.env, cwd=ROOT)
        self.starts += 1

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    async def kill(self) -> None:
        """SIGKILL: no cleanup handlers, no peering goodbye, requests cut mid-flight."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        await self._reaped(10)

    async def stop(self) -> None:
        """SIGTERM and wait (Kopf stops gracefully); SIGKILL if it takes too long."""
        if not self.running:
            return
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        try:
            await self._reaped(20)
        except TimeoutError:
            await self.kill()

    async def _reaped(self, timeout: float) -> None:
        assert self.process is not None
        async with asyncio.timeout(timeout):
            while self.process.poll() is None:
                await asyncio.sleep(0.05)

    def tail(self, chars: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""

"""Every PromQL expression of the Grafana dashboard answers with series from a real Prometheus
scraping the real operator's /metrics (against KMock) and a real agent's (fake NVML).

A renamed metric, a label the operator does not export or a typo in a query leaves a panel
empty on a cluster; here it fails: each expression must match at least one series.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from operator_support import (
    NS,
    add_pool,
    eventually,
    md_url,
    model_deployment,
    status_of,
)

import prometheus_server

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "charts" / "memplace" / "dashboards" / "memplace.json"
NVML_FIXTURE = ROOT / "tests" / "fixtures" / "nvml" / "h100x2.yaml"
# Grafana's own variables, as it would expand them for a 1 s scrape interval.
GRAFANA_VARIABLES = {"$__rate_interval": "15s", "$__interval": "1s"}

pytestmark = pytest.mark.skipif(
    prometheus_server.binary() is None, reason=prometheus_server.NOT_INSTALLED
)


def expressions() -> list[tuple[str, str]]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [(p["title"], t["expr"]) for p in dashboard["panels"] for t in p["targets"]]


def expand(expr: str) -> str:
    for variable, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    assert "$" not in expr, f"a dashboard variable the test does not know: {expr}"
    return expr


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_the_dashboard_has_every_panel_the_issue_asks_for():
    titles = " | ".join(title.lower() for title, _ in expressions())
    for wanted in ("cost per hour by pool", "cost per hour by deployment", "estimated",
                   "used", "placements by phase", "plan duration", "reconcile errors"):  # fmt: skip
        assert wanted in titles


async def test_every_dashboard_query_matches_series_from_the_running_operator(cluster, operator):
    agent_port = free_port()
    agent = subprocess.Popen(
        [sys.executable, "-m", "memplace", "agent", "--node-name", "a100-node-0", "--no-publish",
         "--nvml-fake", str(NVML_FIXTURE), "--metrics-port", str(agent_port), "--interval", "1s"],
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    server = None
    try:
        await add_pool(cluster, "a100", 30.0)
        await cluster.create(md_url(), model_deployment("chat"))
        waiting = model_deployment("summarizer")  # its ConfigMap is missing: a reconcile error
        waiting["spec"]["model"] = {"name": "Qwen/Qwen3-4B", "configMapRef": {"name": "absent"}}
        await cluster.create(md_url(), waiting)
        await eventually(lambda: status_of(cluster, "chat").get("phase") in ("Placed", "Ready"))
        await eventually(lambda: status_of(cluster, "summarizer").get("phase") == "Pending")

        targets = [f"127.0.0.1:{operator.metrics_port}", f"127.0.0.1:{agent_port}"]
        server = await asyncio.to_thread(prometheus_server.start, targets)
        await asyncio.to_thread(server.wait_until_scraped)
        await asyncio.sleep(3)  # rate() needs two samples of each counter in its window

        empty = []
        for title, expr in expressions():
            result = await asyncio.to_thread(server.query, expand(expr))
            if not result:
                empty.append(f"{title}: {expr}")
        assert not empty, "dashboard queries that match no series:\n" + "\n".join(empty)

        (cost,) = await asyncio.to_thread(
            server.query, "sum by (namespace, name) (memplace_placement_cost_per_hour)"
        )
        assert cost["metric"] == {"namespace": NS, "name": "chat"}
        assert float(cost["value"][1]) == pytest.approx(
            status_of(cluster, "chat")["cost"]["perHour"]
        )
    finally:
        if server is not None:
            await asyncio.to_thread(server.stop)
        agent.terminate()
        agent.wait(timeout=10)

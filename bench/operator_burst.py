"""The real operator under a burst: N ModelDeployments applied at once against KMock.

    python bench/operator_burst.py --deployments 100 300 1000
    python bench/operator_burst.py --emulator-only --deployments 300

For each N, a fresh emulator (``tests/conftest.Cluster``: KMock with the metadata stamps, here
matching each request in O(1): ``BenchCluster``) holds the burst's pools, ``a100`` (20 nodes ×
8 A100-80GB) and ``l4`` (200 nodes × 1 L4), both times ⌈N / 200⌉ so that the whole burst fits,
and the probes' pool ``probe`` (25 L4s); a fresh ``memplace run`` process
(``tests/operator/operator_process``: kubeconfig login, ``--resync 1s``, ``--metrics-port``)
watches it. Once the operator has listed and indexed the inventory (its resync loop has written
every pool's status: ``readySeconds``), all N are created concurrently; the bench then prints
one JSON line:

- ``terminalSeconds``: from the first create until every deployment has a terminal phase
  (Placed, Ready, Unschedulable or Invalid);
- ``idleSeconds``: from the first create until the operator's last request that is not a
  watch or a read (a write: create, patch, delete) before a quiet ``--quiet`` seconds;
- ``apiCalls`` / ``writes``: requests the operator made from the first create until idle
  (every HTTP request the emulator served, less the bench's own creates; a watch counts once),
  and those that wrote; ``callsPerPlaced``: apiCalls ÷ deployments placed;
- ``plansPerDeployment``: plans the operator made from the first create until idle
  (``memplace_plan_duration_seconds_count``) ÷ N: 1.0 is one plan each, no re-plan pass;
- ``placedEventP50Ms`` / ``P95Ms``: once idle, ``--probes`` more deployments applied one at a
  time, each timed from its create to the moment the emulator stored its ``Placed`` Event;
- ``operatorCpuSeconds`` / ``emulatorCpuSeconds``: CPU the operator process and this process
  (the emulator) used from the first create until idle: on a 2-core machine shared with other
  work, they compete for the same cores;
- ``peakRssMiB``: the operator process's VmHWM (``peakRssAtReadyMiB``: when the burst began).

``--source DIR`` runs the operator from another checkout (``git archive REV operator | tar -x
-C DIR``) under the same bench, for a before/after pair. ``--emulator-only``: no operator, the
emulator's own pace (creates and status patches per second, a read's latency) with the O(1)
matching and with KMock's own. Nothing is asserted: these are figures to compare before and
after a change, on one machine under the same load (say what else was running).

Figures (2026-12-02, the 2-core shared machine, load average 0.1–2.3 from other sessions; no
pytest of mine ran meanwhile; "before" is main b38bb2b's operator under this bench,
``--source``; "after" is this branch; seconds; calls per placed; Placed p50/p95 in ms; MiB):

=================  ======  =====  =====  =====  ======  =========  ===========  =====
run                termin.  idle  calls  /pl.   plans   CPU op/em  Placed       RSS
=================  ======  =====  =====  =====  ======  =========  ===========  =====
before N=100         3.7     3.6    501  5.01   1.00     2.5/1.4    31 / 144    112
before N=300        13.7    13.6   1501  5.00   1.00     8.2/6.2    49 / 163    124
before N=1000       60.0    60.7   6006  6.01   1.00    35.3/45.4   78 / 378    163
after  N=100         2.4     2.4    401  4.01   1.00     2.3/1.0    29 /  41    112
after  N=300         7.6     7.5   1201  4.00   1.00     6.3/4.4    39 /  74    129
after  N=1000       45.1    45.0   4001  4.00   1.00    26.6/31.4   64 / 146    162
after  N=1000 (2)   50.3    50.1   4001  4.00   1.00    28.0/32.2   59 / 108    160
after  N=1000 (3)   56.4    56.2   4006  4.01   1.00    27.4/31.0   76 / 357    159
=================  ======  =====  =====  =====  ======  =========  ===========  =====

All placed (the inventory grows with N); 1,125 nodes at N = 1,000, indexed in 7–13 s before
the burst (``readySeconds``; Kopf's start is O(objects²) in its index readiness toggles) at a
peak RSS of 113 MiB. "plans" is per deployment: one each, no re-plan pass; idle comes with
the last deployment terminal. Before: a placement cost 5 writes (+ Kopf's annotation PATCH)
and, after the measurement loop's first window, a 6th (``SLOMet`` Unknown); after: Service,
Deployment, one status PATCH (Kopf's bookkeeping in ``status.kopf``, ``SLOMet`` with it),
Event. Terminal time at N = 1,000 varies 45–56 s between identical runs here: the emulator,
one Python process, takes as much CPU as the operator and both share two cores with other
sessions' work. Tried and not kept: creating a first placement's objects with the planning
lock released (room reserved first): 35.6–59.7 s over 5 runs, but peak RSS 191–242 MiB.

The emulator alone (``--emulator-only``, no operator, same day): KMock's own request matching
scanned its whole request log, oldest first, through every reaction's criteria: with the log
cut to 256 entries (the previous bench) it served 18.7 creates/s, 13.3 status patches/s and a
read in 43 ms at N = 100; the O(1) matching here: 610 creates/s, 666 patches/s, a read in
1.2 ms (N = 100), and 363 creates/s, 230 patches/s, 3.3 ms at N = 1,000. That cap (about 15
requests/s) set every figure of the previous table (N = 100 in 113–136 s, N = 1,000 never
finishing); those figures are not comparable with these.
"""

from __future__ import annotations

import argparse
import asyncio
import contextvars
import json
import math
import os
import socket
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "tests" / "operator"), str(ROOT / "operator")]

import aiohttp  # noqa: E402
import kmock  # noqa: E402
from operator_process import OperatorProcess, write_kubeconfig  # noqa: E402
from operator_support import (  # noqa: E402
    MDS,
    NODES_URL,
    POOLS_URL,
    gpu_node,
    md_url,
    model_deployment,
    pool,
)

from conftest import KOPF_RESOURCES, MEMPLACE_RESOURCES, VERBS, Cluster  # noqa: E402


class BenchCluster(Cluster):
    """The tests' emulator, counting requests itself, and matching each in O(1).

    KMock picks the reaction for a request by asking each reaction's filter chain whether the
    request is among those it sees (``request in payload._source``, by identity): that walks
    every request the emulator has served, oldest first, through each filter's criteria, so a
    request costs O(requests so far × reactions), 0.15 s after a few hundred on this machine,
    and a burst would measure KMock. Here the root view yields only the request being handled
    (a context variable set per request task), so each reaction's criteria run once per
    request. That is only right without sliced reactions (``kmock[...][:2] << 500``), which
    count the history: the bench defines none (the fallbacks that make KMock a Kubernetes
    API are unsliced). The log is cut to its last entries (memory; without ``fast``, what
    bounds KMock's scan as before), and the bench counts requests here instead.
    ``--emulator-only`` measures both ways."""

    calls = 0
    writes = 0
    last_write = 0.0
    placed_events: dict[str, asyncio.Event]
    """Per probe name, set when the operator's ``Placed`` Event for it has been stored."""
    fast = True
    """Match in O(1) (above); False: KMock's own matching, for ``--emulator-only``."""

    def __iter__(self) -> Iterator[kmock.Request]:
        current = _HANDLING.get()
        if current is not None and self.fast:
            yield current
        else:
            yield from super().__iter__()

    async def _handle(self, request: kmock.Request) -> Any:
        del self._requests[:-KEPT_REQUESTS]
        self.calls += 1
        if _is_write(request):
            self.writes += 1
            self.last_write = time.monotonic()
        _HANDLING.set(request)  # this request's task only (aiohttp runs each in its own)
        response = await super()._handle(request)
        data = request.data if isinstance(request.data, dict) else {}
        if data.get("reason") == "Placed" and request.resource == _EVENTS:
            name = (data.get("involvedObject") or {}).get("name")
            if name in getattr(self, "placed_events", {}):
                self.placed_events[name].set()
        return response


_EVENTS = kmock.resource("v1/events")
_NODES = kmock.resource("v1/nodes")
POOLS = "memplace.io/v1alpha1/placementpools"
_HANDLING: contextvars.ContextVar[kmock.Request | None] = contextvars.ContextVar(
    "handling", default=None
)
KEPT_REQUESTS = 256
PROBES_ROOM = 25
"""Nodes of pool ``probe``, kept for the probes (the burst may fill the other pools)."""
TERMINAL = {"Placed", "Ready", "Unschedulable", "Invalid"}
SIZES = (1.0e9, 4.0e9, 8.0e9, 14.0e9, 32.0e9, 70.0e9)
"""Parameters of the burst's models, in turn: some fit an L4, some need A100s."""
READS = {"GET", "HEAD"}


def _scale(n: int) -> int:
    """How many times the base inventory (20 A100 nodes, 200 L4 nodes) the burst of ``n`` gets:
    one per 200 deployments, so that all of a burst can be placed at any N (then calls per
    placed deployment says what a placement costs, not what the Unschedulable ones cost)."""
    return max(1, math.ceil(n / 200))


async def _inventory(cluster: Cluster, scale: int = 1) -> None:
    for index in range(20 * scale):
        await cluster.create(NODES_URL, gpu_node(f"a100-node-{index}", "a100"))
    for index in range(200 * scale):
        await cluster.create(
            NODES_URL,
            gpu_node(f"l4-node-{index}", "l4", gpus=1, product="NVIDIA-L4", memory_mib=23034),
        )
    for index in range(PROBES_ROOM):
        await cluster.create(
            NODES_URL,
            gpu_node(f"probe-node-{index}", "probe", gpus=1, product="NVIDIA-L4", memory_mib=23034),
        )
    await cluster.create(POOLS_URL, pool("a100", 30.0))
    await cluster.create(POOLS_URL, pool("l4", 0.9, model="L4", gpus=1))
    await cluster.create(POOLS_URL, pool("probe", 5.0, model="L4", gpus=1))


def _phases(cluster: Cluster, namespace: str) -> list[str | None]:
    wanted = kmock.resource(MDS)
    return [
        ((obj.raw.get("status") or {}).get("phase"))
        for (res, ns, _), obj in list(cluster.objects.items())
        if res == wanted and ns == namespace and not obj.deleted
    ]


def _is_write(request: kmock.Request) -> bool:
    return str(getattr(request.method, "value", request.method)).upper() not in READS


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` so far (``/proc/PID/stat`` fields 14, 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _plans(metrics: str) -> float:
    """How many plans the operator has made (``memplace_plan_duration_seconds_count``); waits
    for its metrics server to answer (at start)."""
    async with asyncio.timeout(60):
        while True:
            try:
                async with aiohttp.ClientSession() as session, session.get(metrics) as response:
                    text = await response.text()
                    break
            except aiohttp.ClientConnectionError:
                await asyncio.sleep(0.5)
    for line in text.splitlines():
        if line.startswith("memplace_plan_duration_seconds_count"):
            return float(line.split()[-1])
    return 0.0


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _cluster(fast: bool = True) -> BenchCluster:
    """A fresh emulator serving Kubernetes' own resources, memplace's and Kopf's."""
    cluster = BenchCluster()
    cluster.fast = fast
    cluster.resources.load_bundled()
    for resource, info in (MEMPLACE_RESOURCES | KOPF_RESOURCES).items():
        cluster.resources[resource] = kmock.ResourceInfo(verbs=VERBS, **info)
    return cluster


async def one(
    n: int, probes: int, quiet: float, timeout: float, source: str | None
) -> dict[str, Any]:
    cluster = _cluster()
    async with cluster, kmock.Server(cluster):
        await _inventory(cluster, _scale(n))
        with tempfile.TemporaryDirectory() as tmp:
            kubeconfig = write_kubeconfig(
                Path(tmp) / "kubeconfig", str(cluster.url).rstrip("/"), cluster.operator_token
            )
            metrics_port = _free_port()
            operator = OperatorProcess(
                kubeconfig,
                Path(tmp) / "operator.log",
                "--resync",
                "1s",
                "--metrics-port",
                str(metrics_port),
            )
            if source:  # another checkout's operator (a "before" figure), same bench
                operator.env["PYTHONPATH"] = str(Path(source) / "operator")
            operator.start()
            try:
                metrics = f"http://127.0.0.1:{metrics_port}/metrics"
                return await _measure(cluster, operator, metrics, n, probes, quiet, timeout)
            except BaseException:
                print(operator.tail(), file=sys.stderr)
                raise
            finally:
                await operator.stop()


async def _measure(
    cluster: BenchCluster,
    operator: OperatorProcess,
    metrics: str,
    n: int,
    probes: int,
    quiet: float,
    timeout: float,
) -> dict[str, Any]:
    started = time.monotonic()
    async with asyncio.timeout(timeout):  # listed and indexed: its resync loop writes pools
        while not all(
            (cluster.stored(POOLS, None, name) or {}).get("status")
            for name in ("a100", "l4", "probe")
        ):
            await asyncio.sleep(0.2)
    ready = time.monotonic() - started
    assert operator.process is not None
    rss_ready = _rss_mib(operator.process.pid)
    await asyncio.sleep(2.0)
    ns = "burst"
    objects = []
    for index in range(n):
        md = model_deployment(f"model-{index:04d}", parameters=SIZES[index % len(SIZES)])
        md["metadata"]["namespace"] = ns
        md["spec"]["workload"]["minReplicas"] = 1 + index % 2
        md["spec"]["placement"] = {"pools": ["a100", "l4"]}
        objects.append(md)
    before, writes_before = cluster.calls, cluster.writes
    cpu_before = _cpu_seconds(operator.process.pid)
    emulator_before = time.process_time()
    plans_before = await _plans(metrics)
    start = time.monotonic()
    await asyncio.gather(*(cluster.create(md_url(ns), md) for md in objects))
    terminal = None
    try:
        async with asyncio.timeout(timeout):
            while terminal is None:
                assert operator.running, operator.tail()
                phases = _phases(cluster, ns)
                if len(phases) == n and all(p in TERMINAL for p in phases):
                    terminal = time.monotonic() - start
                else:
                    await asyncio.sleep(0.2)
    except TimeoutError:  # a figure too: how far it got
        phases = _phases(cluster, ns)
        return {
            "deployments": n,
            "terminalSeconds": f"> {timeout:g}",
            "terminalByThen": sum(p in TERMINAL for p in phases),
            "operatorCpuSeconds": round(_cpu_seconds(operator.process.pid) - cpu_before, 1),
            "apiCalls": cluster.calls - before - n,
            "peakRssMiB": round(_rss_mib(operator.process.pid), 1),
        }
    async with asyncio.timeout(timeout):
        while time.monotonic() - max(cluster.last_write, start + terminal) < quiet:
            await asyncio.sleep(0.2)
    last_write = max(cluster.last_write, start)
    cpu = _cpu_seconds(operator.process.pid) - cpu_before
    emulator_cpu = time.process_time() - emulator_before
    phases = _phases(cluster, ns)
    placed = sum(p in ("Placed", "Ready") for p in phases)
    api_calls = cluster.calls - before - n  # less the bench's own creates
    writes = cluster.writes - writes_before - n
    plans = await _plans(metrics) - plans_before

    latencies = []
    for index in range(probes):
        name = f"probe-{index:02d}"
        md = model_deployment(name, parameters=1.0e9, placement={"pools": ["probe"]})
        md["metadata"]["namespace"] = "probe"
        cluster.placed_events = {name: (event_stored := asyncio.Event())}
        t0 = time.monotonic()
        await cluster.create(md_url("probe"), md)
        async with asyncio.timeout(30):
            await event_stored.wait()
        latencies.append((time.monotonic() - t0) * 1000)
        await asyncio.sleep(0.3)
    latencies.sort()
    assert operator.process is not None
    return {
        "deployments": n,
        "nodes": sum(1 for res, _, _ in cluster.objects if res == _NODES),
        "readySeconds": round(ready, 1),
        "placed": placed,
        "unschedulable": sum(p == "Unschedulable" for p in phases),
        "invalid": sum(p == "Invalid" for p in phases),
        "terminalSeconds": round(terminal, 2),
        "idleSeconds": round(last_write - start, 2),
        "apiCalls": api_calls,
        "writes": writes,
        "callsPerPlaced": round(api_calls / max(placed, 1), 2),
        "callsPerDeployment": round(api_calls / n, 2),
        "plansPerDeployment": round(plans / n, 2),
        "operatorCpuSeconds": round(cpu, 1),
        "emulatorCpuSeconds": round(emulator_cpu, 1),
        "placedEventP50Ms": round(latencies[len(latencies) // 2], 1) if latencies else None,
        "placedEventP95Ms": round(latencies[int(len(latencies) * 0.95)], 1) if latencies else None,
        "peakRssMiB": round(_rss_mib(operator.process.pid), 1),
        "peakRssAtReadyMiB": round(rss_ready, 1),
    }


async def emulator_only(n: int, fast: bool) -> dict[str, Any]:
    """The emulator's own pace with no operator: N creates at once, then N status patches and
    N reads, one client (aiohttp's default 100 connections), one watch of ModelDeployments
    streaming meanwhile (as the operator's does). Requests per second for each."""
    cluster = _cluster(fast)
    async with cluster, kmock.Server(cluster):
        await _inventory(cluster)
        ns = "burst"
        seen = 0

        async def watch() -> None:
            nonlocal seen
            async with cluster.get(md_url(ns) + "?watch=true") as response:
                async for _line in response.content:
                    seen += 1

        watcher = asyncio.create_task(watch())
        objects = [model_deployment(f"model-{i:04d}", parameters=1.0e9) for i in range(n)]
        for md in objects:
            md["metadata"]["namespace"] = ns
        figures: dict[str, Any] = {"deployments": n, "fastMatching": fast}
        t0 = time.monotonic()
        await asyncio.gather(*(cluster.create(md_url(ns), md) for md in objects))
        figures["createsPerSecond"] = round(n / (time.monotonic() - t0), 1)
        t0 = time.monotonic()
        await asyncio.gather(
            *(
                cluster.merge_patch(
                    md_url(ns, md["metadata"]["name"]) + "/status", {"status": {"phase": "Placed"}}
                )
                for md in objects
            )
        )
        figures["statusPatchesPerSecond"] = round(n / (time.monotonic() - t0), 1)
        t0 = time.monotonic()
        for md in objects:  # one at a time: the latency of one read
            async with cluster.get(md_url(ns, md["metadata"]["name"])) as response:
                assert response.status == 200, await response.text()
        figures["sequentialReadMs"] = round((time.monotonic() - t0) * 1000 / n, 2)
        await asyncio.sleep(0.5)
        figures["watchEvents"] = seen
        watcher.cancel()
        return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deployments", type=int, nargs="+", default=[100, 300, 1000])
    parser.add_argument("--probes", type=int, default=20)
    parser.add_argument(
        "--quiet",
        type=float,
        default=5.0,
        help="seconds without an operator write that count as idle",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=600.0,
        help="seconds to wait for all terminal (else how many were, by then)",
    )
    parser.add_argument(
        "--source", metavar="DIR", help="run the operator from this checkout (default: this one)"
    )
    parser.add_argument(
        "--emulator-only",
        action="store_true",
        help="no operator: the emulator's own request rate, with the bench's "
        "O(1) matching and with KMock's own",
    )
    args = parser.parse_args()
    if args.emulator_only:
        for n in args.deployments:
            for fast in (True, False):
                print(json.dumps(asyncio.run(emulator_only(n, fast))), flush=True)
        return
    for n in args.deployments:
        figures = asyncio.run(one(n, args.probes, args.quiet, args.timeout, args.source))
        print(json.dumps(figures), flush=True)


if __name__ == "__main__":
    main()

"""``memplace agent``: measure this node's GPUs and host memory, publish a NodeMemoryReport.

Runs as a DaemonSet (``hostPID: true`` to map GPU processes to pods). ``--once -o json`` prints
one report and exits 0, even without an NVIDIA driver (the report says NVML is unavailable) or
a cluster: it publishes only when one is configured and answers, and otherwise says why on one
line of stderr. ``--once`` tries the API server once (no urllib3 or backoff retries, a
``ONCE_TIMEOUT_S`` socket timeout), so a missing cluster costs seconds, not minutes of retries;
an API server that answers with a refusal (403, 404 …) is a failure: exit 1.

The node name: ``--node-name``, else ``$NODE_NAME`` (the DaemonSet sets it from the downward
API), else, with ``--once`` only, this machine's hostname, and stderr says which was used. The
running agent does not guess: in a pod the hostname is the pod's name, not the Node's.
Heavy modules (pynvml, kubernetes, prometheus_client) are imported in ``run`` so that
``memplace --help`` stays fast.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys

from memplace.cli import UsageError
from memplace.cli.units import parse_duration, parse_size

__all__ = ["ONCE_TIMEOUT_S", "register", "run"]

ONCE_TIMEOUT_S = 10.0
"""``--once``: seconds a connection to the API server may take (our choice, not a measured
figure: long enough for a slow control plane, short enough for a person at a terminal)."""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "agent",
        help="measure this node's GPU memory with NVML and publish a NodeMemoryReport",
        description=__doc__.split("\n\n")[0],
    )
    parser.add_argument(
        "--node-name",
        help="the Node this agent runs on (default: $NODE_NAME, from the downward API; with "
        "--once, else the hostname)",
    )
    parser.add_argument("--interval", default="10s", help="time between samples (default 10s)")
    parser.add_argument(
        "--once",
        action="store_true",
        help="sample once, print, publish if a cluster is configured, and exit",
    )
    parser.add_argument(
        "-o",
        "--output",
        choices=("json", "yaml"),
        default="json",
        help="format of the report --once prints (default json)",
    )
    parser.add_argument(
        "--metrics-port",
        type=int,
        default=9401,
        help="serve Prometheus metrics on this port (0: don't; default 9401)",
    )
    parser.add_argument("--offload-path", help="a directory whose filesystem takes offloads")
    parser.add_argument(
        "--nvml-fake",
        metavar="FILE",
        help="read GPUs from a fixture (see tests/fixtures/nvml/) instead of the driver",
    )
    parser.add_argument(
        "--heartbeat",
        default="60s",
        help="publish at least this often, even without change (default 60s)",
    )
    parser.add_argument(
        "--min-change",
        default="256Mi",
        help="publish when a GPU's used/free memory moved by this much (default 256Mi)",
    )
    parser.add_argument(
        "--min-change-ratio",
        type=float,
        default=0.02,
        help="… or by this share of its total (default 0.02)",
    )
    parser.add_argument("--kubeconfig", help="kubeconfig file (default: in-cluster config)")
    parser.add_argument("--no-publish", action="store_true", help="don't write to the API server")
    parser.set_defaults(handler=run)


def _sampler(args: argparse.Namespace):
    from memplace.agent.nvml import PynvmlSampler

    if args.nvml_fake:
        from memplace.agent.fake import load_fixture

        try:
            module = load_fixture(args.nvml_fake)
        except (OSError, ValueError) as error:
            raise UsageError(f"--nvml-fake: {error}") from error
        # Fixture PIDs are not this host's: never look them up in /proc.
        return PynvmlSampler(module)
    from memplace.agent.host import host_pid_namespace, pod_for_pid

    def pid_to_pod(pid: int) -> tuple[str, str | None] | None:
        ref = pod_for_pid(pid)
        return (ref.pod_uid, ref.container_id) if ref else None

    return PynvmlSampler(pid_to_pod=pid_to_pod if host_pid_namespace() else None)


def run(args: argparse.Namespace) -> int:
    import logging

    args.node_name = _node_name(args)
    interval = parse_duration(args.interval)
    heartbeat = parse_duration(args.heartbeat)
    if interval <= 0 or heartbeat <= 0:
        raise UsageError("--interval and --heartbeat must be positive")
    if not 0 <= args.min_change_ratio <= 1:
        raise UsageError("--min-change-ratio must be between 0 and 1")
    if args.offload_path and not os.path.isdir(args.offload_path):
        raise UsageError(f"--offload-path {args.offload_path}: not a directory")

    from memplace.agent.errors import PublishError
    from memplace.agent.loop import Agent
    from memplace.agent.report import PublishPolicy

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    policy = PublishPolicy(
        heartbeat_seconds=heartbeat,
        min_change_bytes=parse_size(args.min_change),
        min_change_ratio=args.min_change_ratio,
    )
    publisher, unpublished = None, None
    if not args.no_publish:
        from memplace.agent.publish import Publisher

        try:
            if args.once:  # the client passes no socket timeout: urllib3 takes this default
                socket.setdefaulttimeout(ONCE_TIMEOUT_S)
            publisher = Publisher.from_config(args.node_name, args.kubeconfig, once=args.once)
        except Exception as error:  # no kubeconfig, bad file: the user's to fix
            unpublished = f"no cluster configured ({_first_line(error)})"
            if not args.once:  # a running agent that cannot publish has no job
                raise UsageError(f"cannot configure the Kubernetes client: {error}") from error
    agent = Agent(
        node_name=args.node_name,
        sampler=_sampler(args),
        policy=policy,
        interval=interval,
        offload_path=args.offload_path,
        publisher=publisher,
    )

    if args.once:
        try:
            sample = agent.take_sample()
        finally:
            agent.sampler.close()
        _print(agent.report(sample), args.output)
        if unpublished:
            print(f"memplace agent: not published: {unpublished}", file=sys.stderr)
        if publisher is not None:
            try:
                agent.publish(sample)
            except PublishError as error:
                if error.status is not None:  # it answered, and refused
                    print(f"memplace agent: publishing failed: {_summary(error)}", file=sys.stderr)
                    return 1
                host = publisher.core_api.api_client.configuration.host
                print(
                    f"memplace agent: not published: the API server {host} did not answer "
                    f"({_summary(error)})",
                    file=sys.stderr,
                )
        return 0

    from memplace.agent.metrics import AgentMetrics

    agent.metrics = AgentMetrics(args.node_name)
    if args.metrics_port:
        agent.metrics.serve(args.metrics_port)
    agent.run()
    return 0


def _node_name(args: argparse.Namespace) -> str:
    """--node-name, else $NODE_NAME, else (``--once`` only) the hostname, said on stderr."""
    if args.node_name:
        return args.node_name
    if os.environ.get("NODE_NAME"):
        name, source = os.environ["NODE_NAME"], "$NODE_NAME"
    elif args.once:
        name, source = socket.gethostname(), "the hostname"
    else:
        raise UsageError("--node-name is required (or set $NODE_NAME)")
    print(f"memplace agent: node name {name} (from {source})", file=sys.stderr)
    return name


def _summary(error: BaseException) -> str:
    """What went wrong, in one line: the step, then the innermost cause (urllib3 wraps
    ``ConnectionRefusedError`` in ``NewConnectionError`` in ``MaxRetryError``, whose text
    carries object reprs and the URL twice)."""
    step = str(error).split(":", 1)[0]
    cause: BaseException = error
    while True:
        reason = getattr(cause, "reason", None)
        inner = reason if isinstance(reason, BaseException) else None
        inner = inner or cause.__cause__ or cause.__context__
        if inner is None:
            break
        cause = inner
    status, reason = getattr(cause, "status", None), getattr(cause, "reason", None)
    if isinstance(status, int) and isinstance(reason, str):  # an ApiException: its answer
        return f"{step}: HTTP {status} {reason}"
    if cause is error:
        return _first_line(error)
    return f"{step}: {_first_line(cause)}"


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _print(report: dict, output: str) -> None:
    if output == "yaml":
        import yaml

        sys.stdout.write(yaml.safe_dump(report, sort_keys=False))
    else:
        sys.stdout.write(json.dumps(report, indent=2) + "\n")

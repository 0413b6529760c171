"""``memplace run``: the operator (Kopf underneath; standalone unless a peering is named).

Logs in like ``kubectl``: ``--kubeconfig`` (or ``KUBECONFIG``), else the in-cluster service
account (``login``: a named kubeconfig is used explicitly, also in a pod). With ``--peering
NAME`` several replicas run and one is active (Kopf peering; the ``KopfPeering``/
``ClusterKopfPeering`` CRDs must be installed); without it the operator runs standalone. Kopf
is imported when the command runs, so ``memplace plan`` never loads it. Before Kopf starts,
``preflight.check`` makes sure the cluster is there, lets us in and has the CRDs: anything else
is one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import os
import random
import socket
from typing import Any

from memplace.cli import UsageError, login, preflight
from memplace.cli.units import parse_duration

__all__ = ["register"]


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "run",
        help="run the operator in (or against) a cluster",
        description="Run the memplace operator: place every ModelDeployment, run its pods, "
        "report status and Events.",
    )
    parser.add_argument(
        "--kubeconfig",
        metavar="PATH",
        help="kubeconfig to use (default: $KUBECONFIG, ~/.kube/config, or the in-cluster account)",
    )
    scope = parser.add_mutually_exclusive_group()
    scope.add_argument(
        "--namespace",
        "-n",
        dest="namespaces",
        action="append",
        metavar="NS",
        help="watch ModelDeployments in this namespace (repeatable; globs allowed)",
    )
    scope.add_argument(
        "--all-namespaces",
        "-A",
        action="store_true",
        help="watch ModelDeployments in every namespace (the default)",
    )
    parser.add_argument(
        "--metrics-port", type=int, metavar="N", help="serve Prometheus metrics on :N/metrics"
    )
    parser.add_argument(
        "--health-port", type=int, metavar="N", help="serve Kopf's liveness probe on :N/healthz"
    )
    parser.add_argument(
        "--peering",
        metavar="NAME",
        help="run as one of several replicas under this Kopf peering; "
        "one is active (default: standalone)",
    )
    parser.add_argument(
        "--peering-lifetime",
        default="60s",
        metavar="DURATION",
        help="how long a silent peer still counts as alive: a standby replica takes over "
        "this long after the active one stops (default: 60s, Kopf's)",
    )
    parser.add_argument(
        "--priority",
        type=int,
        metavar="N",
        help="this replica's peering priority; the highest runs, the others "
        "wait (default: random, so exactly one of several replicas is highest: "
        "Kopf pauses every replica that shares the top priority)",
    )
    parser.add_argument(
        "--stuck-after",
        default="10m",
        metavar="DURATION",
        help="pods unschedulable longer than this mark their pool full for "
        "that deployment (default: 10m)",
    )
    parser.add_argument(
        "--input-timeout",
        default="10m",
        metavar="DURATION",
        help="a new deployment waiting this long for a ConfigMap or config source its spec "
        "names is marked Invalid; until then it is Pending and retried (default: 10m)",
    )
    parser.add_argument(
        "--resync",
        default="15s",
        metavar="DURATION",
        help="how often each deployment re-checks capacity and readiness",
    )
    moves = parser.add_argument_group("moves (a running placement replaced without a gap)")
    moves.add_argument(
        "--min-move-interval",
        default="30m",
        metavar="DURATION",
        help="a deployment moves at most once in this long; a re-plan that would move it "
        "sooner keeps its placement and says when the move is allowed (default: 30m)",
    )
    moves.add_argument(
        "--move-timeout",
        default="30m",
        metavar="DURATION",
        help="a new Deployment not Ready this long after its creation is deleted and the "
        "old one kept (default: 30m)",
    )
    measuring = parser.add_argument_group(
        "measuring", "read the engines' own metrics from Prometheus into status.measured and SLOMet"
    )
    measuring.add_argument(
        "--prometheus-url",
        metavar="URL",
        help="the Prometheus (or compatible querier) that scrapes the model pods; "
        "without it nothing is measured and SLOMet is Unknown",
    )
    measuring.add_argument(
        "--prometheus-ca-file", metavar="PATH", help="CA bundle that signs Prometheus' certificate"
    )
    measuring.add_argument(
        "--prometheus-insecure", action="store_true", help="do not verify Prometheus' certificate"
    )
    measuring.add_argument(
        "--prometheus-token-file",
        metavar="PATH",
        help="send the bearer token in this file (re-read on every query)",
    )
    measuring.add_argument(
        "--measure-interval",
        default="30s",
        metavar="DURATION",
        help="how often each placed deployment is measured (default: 30s)",
    )
    measuring.add_argument(
        "--measure-window",
        default="5m",
        metavar="DURATION",
        help="the window each measurement covers (default: 5m)",
    )
    measuring.add_argument(
        "--scrape",
        choices=("auto", "podmonitor", "annotations", "none"),
        default="auto",
        help="how Prometheus finds the model pods: a PodMonitor each, prometheus.io/* pod "
        "annotations, or neither; auto: a PodMonitor when the cluster serves that CRD "
        "(default: auto)",
    )
    batch = parser.add_argument_group("batched re-plans (every deployment placed as a whole)")
    batch.add_argument(
        "--consolidate-every",
        metavar="DURATION",
        help="also re-plan every deployment as a batch this often, to consolidate "
        "(default: only at startup and when capacity changes)",
    )
    batch.add_argument(
        "--consolidation-threshold",
        type=float,
        default=0.10,
        metavar="SHARE",
        help="a running placement moves only to save more than this share of its cost, or to "
        "place something of higher priority (default: 0.10)",
    )
    batch.add_argument(
        "--disruption-budget",
        type=int,
        default=1,
        metavar="N",
        help="at most N running deployments get a new place per batch re-plan (default: 1)",
    )
    measuring.add_argument(
        "--wake-query",
        metavar="PROMQL",
        help="PromQL whose value above 0 wakes a cold model (spec.scaling, coldStart: "
        "allowed), e.g. the gateway's request rate for its Service; {namespace} and {name} "
        "are replaced; spec.scaling.wakeQuery overrides it",
    )
    measuring.add_argument(
        "--keda-http-scaler",
        default="keda-add-ons-http-external-scaler.keda:9090",
        metavar="HOST:PORT",
        help="the KEDA HTTP add-on's external scaler, where the add-on is installed "
        "(default: %(default)s, where its manifests put it)",
    )
    measuring.add_argument(
        "--load-bandwidth",
        default="0.31",
        metavar="GB_PER_S",
        help="the rate weights are assumed to load at on a cold start, in GB/s, for "
        "status.demand.coldStartSeconds (default: 0.31, vLLM's safetensors loader from an "
        "AWS gp3 SSD)",
    )
    parser.add_argument("--verbose", "-v", action="store_true", help="debug logging")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from memplace.operator import settings as operator_settings

    stuck_after = parse_duration(args.stuck_after)
    resync = parse_duration(args.resync)
    lifetime = _positive(args.peering_lifetime, "--peering-lifetime")
    if lifetime != int(lifetime):
        raise UsageError(f"--peering-lifetime must be whole seconds, not {args.peering_lifetime!r}")
    if args.kubeconfig:
        if not os.path.exists(args.kubeconfig):
            raise UsageError(f"no kubeconfig at {args.kubeconfig}")
        os.environ["KUBECONFIG"] = args.kubeconfig  # for anything else that reads it
    settings = operator_settings.Settings(  # every flag is checked before the cluster
        stuck_after_seconds=stuck_after,
        input_timeout_seconds=_positive(args.input_timeout, "--input-timeout"),
        resync_seconds=resync,
        metrics_port=args.metrics_port,
        min_move_interval_seconds=parse_duration(args.min_move_interval),
        move_timeout_seconds=parse_duration(args.move_timeout),
        prometheus=_prometheus(args),
        measure_interval_seconds=_positive(args.measure_interval, "--measure-interval"),
        measure_window=_window(args.measure_window),
        scrape=args.scrape,
        consolidate_every_seconds=parse_duration(args.consolidate_every)
        if args.consolidate_every
        else None,
        consolidation_threshold=args.consolidation_threshold,
        disruption_budget=args.disruption_budget,
        wake_query=args.wake_query or None,
        load_bytes_per_second=_bandwidth(args.load_bandwidth),
        keda_http_scaler=_host_port(args.keda_http_scaler, "--keda-http-scaler"),
    )
    preflight.check(args.kubeconfig, clusterwide=not args.namespaces)
    operator_settings.configure(settings)

    import logging

    import kopf

    import memplace.operator.handlers  # noqa: F401  (registers the handlers)

    kubeconfig = args.kubeconfig or os.environ.get("KUBECONFIG")
    if kubeconfig:  # that file, not the in-cluster account nor what was read at import
        login.register(kubeconfig)
    login.peering_lifetime(int(lifetime))

    if args.peering and not os.environ.get("POD_ID"):
        # Kopf and memplace's own peer check (operator/peering.py) both read POD_ID: without
        # it Kopf would make up an identity that the check cannot know.
        os.environ["POD_ID"] = f"{socket.gethostname()}-{os.getpid()}-{random.getrandbits(32):08x}"
    kopf.configure(verbose=args.verbose)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    liveness = f"http://0.0.0.0:{args.health_port}/healthz" if args.health_port else None
    kopf.run(
        standalone=args.peering is None,
        peering_name=args.peering,
        priority=args.priority if args.priority is not None else random.randint(1, 2**31 - 1),
        clusterwide=not args.namespaces,
        namespaces=args.namespaces or (),
        liveness_endpoint=liveness,
    )
    return 0


def _prometheus(args: argparse.Namespace) -> Any:
    """The Prometheus to read from, or None; files named must exist now, not at first query."""
    from memplace.operator.prometheus import PrometheusConfig

    if not args.prometheus_url:
        for flag in ("prometheus_ca_file", "prometheus_token_file"):
            if getattr(args, flag):
                raise UsageError(f"--{flag.replace('_', '-')} needs --prometheus-url")
        return None
    if not args.prometheus_url.startswith(("http://", "https://")):
        raise UsageError(f"--prometheus-url {args.prometheus_url!r} is not an http(s) URL")
    for path in (args.prometheus_ca_file, args.prometheus_token_file):
        if path and not os.path.isfile(path):
            raise UsageError(f"no file at {path}")
    if args.prometheus_insecure and args.prometheus_ca_file:
        raise UsageError("--prometheus-insecure and --prometheus-ca-file contradict each other")
    return PrometheusConfig(
        url=args.prometheus_url,
        ca_file=args.prometheus_ca_file,
        insecure=args.prometheus_insecure,
        token_file=args.prometheus_token_file,
    )


def _positive(text: str, flag: str) -> float:
    seconds = parse_duration(text)
    if seconds <= 0:
        raise UsageError(f"{flag} must be positive, not {text!r}")
    return seconds


def _bandwidth(text: str) -> float:
    """``--load-bandwidth`` in GB/s, as bytes per second."""
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0:
        raise UsageError(f"--load-bandwidth must be a positive number of GB/s, not {text!r}")
    return value * 1e9


def _host_port(text: str, flag: str) -> str:
    """``host:port`` with a host and a port number between 1 and 65535."""
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise UsageError(f"{flag} must be HOST:PORT (e.g. scaler.keda:9090), not {text!r}")
    return text


def _window(text: str) -> str:
    """A Prometheus range duration (``5m``, ``90s``) for a window the user typed."""
    seconds = _positive(text, "--measure-window")
    if seconds < 1 or seconds != int(seconds):
        raise UsageError(f"--measure-window must be whole seconds, not {text!r}")
    whole = int(seconds)
    return f"{whole // 60}m" if whole % 60 == 0 else f"{whole}s"

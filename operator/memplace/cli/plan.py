"""``memplace plan FILES_OR_DIRS...``: what the operator would decide, offline.

Reads multi-document YAML (directories: every ``*.yaml`` / ``*.yml`` below, in name order):
ModelDeployments, PlacementPools, Nodes (also as the ``List`` that ``kubectl get nodes -o
yaml`` prints), NodeMemoryReports, ConfigMaps (for ``spec.model.configMapRef``) and
PerformanceProfiles (``kubectl get performanceprofiles -o yaml``: their learned factors calibrate
the estimates, as in the operator). Other kinds are skipped with a notice on stderr. It plans
every deployment exactly as the operator does (``memplace.planning.batch.plan_batch``) and
prints a table, or ``-o json`` / ``-o yaml``: one entry per deployment with ``namespace``,
``name``, ``phase`` and the status fields; ``-o manifests`` prints the Deployments and Services
the operator would apply for every placed deployment (the same rendering code), as YAML.
ModelAdapters (LoRA fine-tunes) are planned with their base; the LORA SAVING column is what
one deployment per fine-tune would cost more, and each adapter's state follows the plan. A
ModelAdapter whose ``baseDeployment`` is not among the inputs is Orphaned, as the operator marks
it (``BaseNotFound``): one line each on stderr, and in ``-o json`` / ``-o yaml`` an entry after
the deployments with ``kind: ModelAdapter`` and its status (deployment entries have no
``kind``).
A ``spec.scaling`` deployment is planned as the operator plans it before anything is measured:
the static demand with its headroom, capped at ``maxReplicas`` (``planning.scaled_plan``; the
entry then has ``demand.replicasWanted`` and its message says what the demand needs).

Reports are judged fresh against ``--now`` (default: the newest report's ``observedAt``, so the
same files always give the same plan). Nothing is fetched: a ``source`` without a config or
``parameters`` plans as Invalid. Exit status: 0, or 1 when ``--fail-on`` names a phase some
deployment ended in (``unschedulable``, ``invalid``), 2 for unreadable input.

Namespaces and ``kustomization.yaml`` are skipped quietly: they sit beside the objects a user
applies (``examples/``). On a terminal the table fits its width (columns that do not fit fold
under their row, see ``cli/table.py``); piped or with ``-o wide`` every column is on one line.
``--quiet``: the table only. An input without ModelDeployments plans nothing and says so.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from memplace.cli import UsageError
from memplace.cli.table import Column, render
from memplace.planning.scaling import Policy, planning_spec, static_decision, temperature

__all__ = ["register"]

SHOWN = 4
"""Alternatives printed under a placed deployment; the rest are counted ("+N more")."""
PHASES = {"unschedulable": "Unschedulable", "invalid": "Invalid"}
# Objects a user applies beside ModelDeployments (examples/), which planning does not need.
QUIET_KINDS = {("Namespace", "v1"), ("Kustomization", "kustomize.config.k8s.io")}


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "plan",
        help="plan ModelDeployments against a cluster described in YAML, offline",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("paths", nargs="+", metavar="FILES_OR_DIRS", help="YAML files or dirs")
    parser.add_argument(
        "-o",
        "--output",
        choices=("table", "wide", "json", "yaml", "manifests"),
        default="table",
        help="table (fits the terminal), wide (every column on one line), json, yaml, or "
        "manifests (the Deployments and Services the operator would apply)",
    )
    parser.add_argument(
        "-q", "--quiet", action="store_true", help="the table only: no totals, reasons or notes"
    )
    parser.add_argument(
        "--fail-on",
        type=_phases,
        default=frozenset(),
        metavar="PHASES",
        help="exit 1 if a deployment ends in one of these (comma-separated: unschedulable,invalid)",
    )
    parser.add_argument("--now", help="RFC 3339 time to judge report freshness against")
    parser.add_argument(
        "--strategy",
        choices=("optimal", "greedy"),
        default="optimal",
        help="optimal: the batch as a whole (most placed by priority, then least cost); "
        "greedy: each deployment in (namespace, name) order takes its cheapest room",
    )
    parser.add_argument(
        "--consolidation-threshold",
        type=_share,
        default=0.10,
        metavar="SHARE",
        help="a running placement (status.placement) moves only to save more than this share "
        "of its cost, or to place something of higher priority (default 0.10)",
    )
    parser.set_defaults(handler=run)


def _share(text: str) -> float:
    try:
        value = float(text.rstrip("%")) / (100 if text.endswith("%") else 1)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number (e.g. 0.1 or 10%)") from None
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not a share between 0 and 1")
    return value


def _phases(text: str) -> frozenset[str]:
    names = {t.strip().lower() for t in text.split(",") if t.strip()}
    unknown = names - set(PHASES)
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown phase {', '.join(sorted(unknown))}; choose from {', '.join(PHASES)}"
        )
    return frozenset(PHASES[n] for n in names)


# --- reading ---------------------------------------------------------------------------------


def _files(paths: list[str]) -> list[Path]:
    found: list[Path] = []
    for text in paths:
        path = Path(text)
        if path.is_dir():
            found += sorted(
                p for p in path.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file()
            )
        elif path.is_file():
            found.append(path)
        else:
            raise UsageError(f"{text}: no such file or directory")
    return found


def _documents(path: Path) -> list[dict]:
    import yaml

    try:
        docs = list(yaml.safe_load_all(path.read_text(encoding="utf-8")))
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        problem = getattr(error, "problem", None) or str(error)
        raise UsageError(f"{where}: invalid YAML: {problem}") from None
    except (OSError, UnicodeDecodeError) as error:
        raise UsageError(f"{path}: {error}") from None
    out: list[dict] = []
    for doc in docs:
        if doc is None:
            continue
        if not isinstance(doc, dict):
            raise UsageError(f"{path}: a YAML document is not a Kubernetes object")
        if doc.get("kind") == "List" or str(doc.get("kind", "")).endswith("List"):
            out += [item for item in doc.get("items") or [] if isinstance(item, dict)]
        else:
            out.append(doc)
    return out


def _errors(error: Exception) -> str:
    from pydantic import ValidationError

    if isinstance(error, ValidationError):
        parts = []
        for e in error.errors():
            where = ".".join(str(x) for x in e["loc"])
            parts.append(f"{where}: {e['msg']}" if where else e["msg"])
        return "; ".join(parts)
    return str(error)


class _Inputs:
    def __init__(self) -> None:
        self.deployments: list[tuple[str, str, Any]] = []  # (namespace, name, doc)
        self.pools: list[tuple[str, Any]] = []
        self.nodes: list[Any] = []
        self.reports: list[tuple[str, Any]] = []
        self.configmaps: dict[tuple[str, str], dict] = {}
        self.profiles: list[Any] = []
        self.adapters: dict[tuple[str, str], list[Any]] = {}  # (namespace, base) → Listed
        self.configs: dict[tuple[str, str], dict | None] = {}  # what each deployment sized on
        self.scaled: dict[tuple[str, str], tuple[Any, Any, Any]] = {}  # (spec, policy, decision)


def _read(paths: list[str]) -> _Inputs:
    from memplace.api import ModelAdapter, NodeMemoryReport, PerformanceProfile, PlacementPool
    from memplace.planning.lora import Listed
    from memplace.planning.nodes import node_from_manifest

    inputs = _Inputs()
    for path in _files(paths):
        for doc in _documents(path):
            kind = doc.get("kind")
            meta = doc.get("metadata") or {}
            name = meta.get("name") or "?"
            group = str(doc.get("apiVersion", "")).split("/")[0]
            try:
                if kind == "ModelDeployment" and group == "memplace.io":
                    ns = meta.get("namespace") or "default"
                    inputs.deployments.append((ns, name, doc))
                elif kind == "PlacementPool" and group == "memplace.io":
                    pool = PlacementPool.model_validate(doc)
                    inputs.pools.append((pool.metadata.name or name, pool.spec))
                elif kind == "NodeMemoryReport" and group == "memplace.io":
                    report = NodeMemoryReport.model_validate(doc)
                    if report.status is not None:
                        inputs.reports.append((report.spec.node_name, report.status))
                elif kind == "ModelAdapter" and group == "memplace.io":
                    adapter = ModelAdapter.model_validate(doc)
                    ns = meta.get("namespace") or "default"
                    base = (ns, adapter.spec.base_deployment)
                    inputs.adapters.setdefault(base, []).append(Listed(name, adapter.spec))
                elif kind == "PerformanceProfile" and group == "memplace.io":
                    inputs.profiles.append(PerformanceProfile.model_validate(doc))
                elif kind == "Node" and doc.get("apiVersion") == "v1":
                    inputs.nodes.append(node_from_manifest(doc))
                elif kind == "ConfigMap" and doc.get("apiVersion") == "v1":
                    ns = meta.get("namespace") or "default"
                    inputs.configmaps[(ns, name)] = dict(doc.get("data") or {})
                elif (kind, group) in QUIET_KINDS:
                    continue
                elif not kind or not doc.get("apiVersion"):
                    print(
                        f"memplace plan: {path}: skipped a document that is not a "
                        "Kubernetes object (no apiVersion/kind)",
                        file=sys.stderr,
                    )
                else:
                    print(f"memplace plan: {path}: skipped {kind}/{name}", file=sys.stderr)
            except (ValueError, TypeError) as error:
                raise UsageError(f"{path}: {kind}/{name}: {_errors(error)}") from None
    return inputs


def _request(ns: str, name: str, doc: dict, inputs: _Inputs, calibration: Any) -> Any:
    """A DeploymentRequest, or an Invalid Plan when the object or its config is unusable."""
    import json

    from pydantic import ValidationError

    from memplace.api import ModelDeployment
    from memplace.planning.plan import DeploymentRequest, Plan

    try:
        deployment = ModelDeployment.model_validate(doc)
    except ValidationError as error:
        return Plan(ns, name, "Invalid", message=f"invalid ModelDeployment: {_errors(error)}")

    def resolve(sized: Any) -> tuple[dict | None, str | None]:
        ref = sized.config_map_ref
        if sized.config is not None or ref is None:
            return None, None
        data = inputs.configmaps.get((ns, ref.name))
        if data is None:
            return None, f"ConfigMap {ns}/{ref.name} is not in the input files"
        if ref.key not in data:
            return None, f"ConfigMap {ns}/{ref.name} has no key {ref.key!r}"
        try:
            return json.loads(data[ref.key]), None
        except json.JSONDecodeError as error:
            return None, f"ConfigMap {ns}/{ref.name} key {ref.key!r} is not JSON: {error}"

    spec = deployment.spec
    config, problem = resolve(spec.model)
    if problem:
        return Plan(ns, name, "Invalid", message=f"model {spec.model.name}: {problem}")
    variant_configs = {}
    for variant in spec.model.variants:
        vconfig, _ = resolve(variant)
        if vconfig is not None:
            variant_configs[variant.name] = vconfig
    current = deployment.status.placement if deployment.status is not None else None
    inputs.configs[(ns, name)] = config
    policy = Policy.from_spec(spec)
    if policy is not None:  # spec.scaling: the static demand with headroom, as the operator
        decision = static_decision(policy)
        inputs.scaled[(ns, name)] = (spec, policy, decision)
        spec = planning_spec(spec, decision, policy)
    return DeploymentRequest(
        ns,
        name,
        spec,
        config,
        current,
        frozenset(),
        variant_configs,
        calibration,
        model_adapters=tuple(inputs.adapters.get((ns, name), ())),
    )


def _now(text: str | None, reports: list[tuple[str, Any]]) -> Any:
    from datetime import datetime

    if text:
        try:
            return datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise UsageError(f"--now {text!r} is not an RFC 3339 time") from None
    stamps = [r.observed_at for _, r in reports if r.observed_at]
    if not stamps:
        return None
    return max(datetime.fromisoformat(s.replace("Z", "+00:00")) for s in stamps)


# --- running ---------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> int:
    from memplace.planning.batch import plan_batch
    from memplace.planning.calibration import Calibration
    from memplace.planning.discovery import build_cluster
    from memplace.planning.plan import Plan

    inputs = _read(args.paths)
    if not inputs.deployments:
        print(
            f"memplace plan: no ModelDeployment in {' '.join(args.paths)}: nothing to plan",
            file=sys.stderr,
        )
    cluster = build_cluster(
        pools=inputs.pools,
        nodes=inputs.nodes,
        reports=inputs.reports,
        now=_now(args.now, inputs.reports),
    )
    calibration = Calibration(inputs.profiles)
    requests, invalid = [], []
    for ns, name, doc in inputs.deployments:
        made = _request(ns, name, doc, inputs, calibration)
        (invalid if isinstance(made, Plan) else requests).append(made)

    def batch(requests: list[Any]) -> list[Any]:
        return plan_batch(
            requests, cluster, strategy=args.strategy, threshold=args.consolidation_threshold
        ).plans

    planned, wanted = _capped(requests, inputs.scaled, batch)
    plans = sorted(planned + invalid, key=lambda p: (p.namespace, p.name))
    orphans = _orphans(inputs)
    for o in orphans:
        print(
            f"memplace plan: ModelAdapter {o['namespace']}/{o['name']} {o['phase']} "
            f"({o['reason']}): {o['message']}",
            file=sys.stderr,
        )

    if args.output in ("table", "wide"):
        if plans:
            print(_report(plans, cluster, _width(args.output), quiet=args.quiet))
    elif args.output == "manifests":
        _manifests(plans, inputs, cluster)
    else:
        entries = [
            {"namespace": p.namespace, "name": p.name, **p.status_fields(), **_tier(p)}
            | _demand(wanted.get((p.namespace, p.name)))
            for p in plans
        ] + orphans
        if args.output == "json":
            import json

            print(json.dumps(entries, indent=2, sort_keys=False))
        else:
            import yaml

            print(yaml.safe_dump(entries, sort_keys=False, allow_unicode=True), end="")
    return 1 if any(p.phase in args.fail_on for p in plans) else 0


def _orphans(inputs: _Inputs) -> list[dict[str, Any]]:
    """ModelAdapters whose base is not among the inputs, with the status the operator writes
    for them (``operator.modeladapters.orphan_statuses``: Orphaned, BaseNotFound, kept)."""
    bases = {(ns, name) for ns, name, _ in inputs.deployments}
    out = []
    for (ns, base), listed in sorted(inputs.adapters.items()):
        if (ns, base) in bases:
            continue
        for adapter in sorted(listed, key=lambda a: a.name):
            out.append(
                {
                    "kind": "ModelAdapter",
                    "namespace": ns,
                    "name": adapter.name,
                    "phase": "Orphaned",
                    "baseDeployment": base,
                    "reason": "BaseNotFound",
                    "message": f"ModelDeployment {ns}/{base} is not in the input files; the "
                    "operator keeps the adapter and loads it when the deployment exists",
                }
            )
    return out


def _capped(
    requests: list[Any], scaled: dict[tuple[str, str], Any], batch: Any
) -> tuple[list[Any], dict[tuple[str, str], int]]:
    """``spec.scaling.maxReplicas`` as the operator applies it (``planning.scaled_plan``): the
    deployments whose plan for the whole demand runs more than maxReplicas, or found no room,
    are planned again at exactly maxReplicas, in one more batch with the others so that they
    share the room, and settled as the operator settles them. Returns the plans and, per
    deployment held below its demand, the replicas the demand needs (status.demand's
    replicasWanted), also said in its message."""
    import dataclasses

    from memplace.planning.scaled_plan import needs_cap, settle
    from memplace.planning.scaling import at_max_spec

    plans = batch(requests)
    first = {(p.namespace, p.name): p for p in plans}
    capped = {
        k for k, (_, policy, _) in scaled.items() if k in first and needs_cap(first[k], policy)
    }
    if not capped:
        return plans, {}
    again = [
        dataclasses.replace(r, spec=at_max_spec(scaled[k][0], scaled[k][1]))
        if (k := (r.namespace, r.name)) in capped
        else r
        for r in requests
    ]
    out, wanted = [], {}
    for plan in batch(again):
        key = (plan.namespace, plan.name)
        if key in capped:
            _, policy, decision = scaled[key]
            settled = settle(first[key], plan, policy, decision)
            plan = settled.plan
            if settled.needed is not None:
                wanted[key] = settled.needed
                plan = dataclasses.replace(
                    plan,
                    message=f"{plan.message}; the demand needs {settled.needed} replicas, "
                    f"spec.scaling.maxReplicas is {policy.max_replicas}: the SLO is not met",
                )
        out.append(plan)
    return out, wanted


def _demand(wanted: int | None) -> dict[str, Any]:
    """status.demand's replicasWanted where maxReplicas holds the replicas below the demand."""
    return {} if wanted is None else {"demand": {"replicasWanted": wanted}}


def _width(output: str) -> int | None:
    """The terminal's width for ``table`` on a terminal; None (no limit) for ``wide`` or a pipe,
    so what scripts read never depends on a window's size."""
    if output == "wide" or not sys.stdout.isatty():
        return None
    import shutil

    return shutil.get_terminal_size().columns


def _manifests(plans: list[Any], inputs: _Inputs, cluster: Any) -> None:
    """The Deployments and Services of the placed plans, rendered as the operator does."""
    import json

    import yaml

    from memplace.api import ModelDeployment
    from memplace.operator import manifests, render

    docs = {(ns, name): doc for ns, name, doc in inputs.deployments}
    out: list[dict] = []
    for p in plans:
        if p.phase != "Placed":
            print(f"memplace plan: {p.namespace}/{p.name} {p.phase}: no manifests", file=sys.stderr)
            continue
        doc = docs[(p.namespace, p.name)]
        spec = ModelDeployment.model_validate(doc).spec
        uid = (doc.get("metadata") or {}).get("uid")
        config = _chosen(spec, p, inputs.configs.get((p.namespace, p.name)))
        try:
            out += manifests.desired(
                p.name, p.namespace, uid, spec, p.status_fields(), cluster, config, p.lora
            )
        except render.RenderError as error:
            print(f"memplace plan: {p.namespace}/{p.name}: {error}", file=sys.stderr)
    plain = json.loads(json.dumps(out))  # unshared nodes: YAML without anchors or aliases
    print(yaml.safe_dump_all(plain, sort_keys=False, allow_unicode=True), end="")


def _chosen(spec: Any, plan: Any, config: dict | None) -> dict | None:
    """The config.json of what the plan serves (the model's, or an inline variant's)."""
    if plan.placement.variant is None:
        return config if config is not None else spec.model.config
    chosen = next((v for v in spec.model.variants if v.name == plan.placement.variant), None)
    return chosen.config if chosen is not None else None


def _lora_saving(plan: Any) -> str:
    """Loaded adapters, and what they save against one deployment per fine-tune."""
    separate = plan.cost.separate_per_hour if plan.cost else None
    loaded = sum(1 for a in plan.adapters if a.state == "Loaded")
    if separate is None or not loaded:
        return ""
    return f"{loaded} FT: {_money(separate - (plan.cost.per_hour or 0.0))}/h"


def _money(value: float | None) -> str:
    return "-" if value is None else f"${value:,.2f}"


LORA_SAVING = Column("LORA SAVING", rank=11, right=True, fold="LoRA saving {}")
"""Shown only when some plan has LoRA adapters: what they save against one deployment each."""

# Display order; rank says what folds under the row first when the terminal is narrow.
COLUMNS = (
    Column("DEPLOYMENT", keep=True),
    Column("PHASE", keep=True),
    Column("SERVES", rank=7, fold="serves {}"),
    Column("PRECISION", rank=3),
    Column("TIER", rank=4, fold="tier {}"),
    Column("POOL", rank=1, fold="pool {}"),
    Column("GPUS", rank=5),
    Column("REPLICAS", rank=2, right=True, fold="{} replicas"),
    Column("MEMORY", rank=6, right=True),
    Column("TTFT/TPOT ms", rank=8, right=True, fold="TTFT/TPOT {} ms"),
    Column("$/h", keep=True, right=True),
    Column("NAIVE $/h", rank=9, right=True, fold="naive {}/h"),
    LORA_SAVING,
    Column("$/M tok", rank=10, right=True, fold="{}/M tok"),
)


def _row(p: Any) -> list[str]:
    if p.phase != "Placed":
        naive = p.cost.naive_per_hour if p.cost else None
        return [f"{p.namespace}/{p.name}", p.phase, "", "", "", "", "", "", "", "", "-"] + [
            _money(naive) if naive is not None else "",
            "",
            "",
        ]
    pl, est, cost = p.placement, p.estimate, p.cost
    return [
        f"{p.namespace}/{p.name}",
        p.phase,
        pl.variant or "model",
        f"{pl.precision}/{pl.kv_cache_dtype} KV",
        pl.tier,
        pl.pool,
        f"{pl.gpus_per_replica}×{pl.gpu_model}" if pl.gpus_per_replica else "CPU",
        str(pl.replicas),
        _memory(pl, est),
        f"{est.time_to_first_token_ms:.0f}/{est.time_per_output_token_ms:.1f}",
        _money(cost.per_hour),
        _money(cost.naive_per_hour),
        _lora_saving(p),
        _money(cost.per_million_output_tokens),
    ]


def _memory(pl: Any, est: Any) -> str:
    """Estimated memory per GPU, or per replica in host RAM for the cpu tier (no GPU there)."""
    if not est.total_per_gpu:
        return ""
    return f"{est.total_per_gpu}/GPU" if pl.gpus_per_replica else f"{est.total_per_gpu} RAM"


def _report(plans: list[Any], cluster: Any, width: int | None, quiet: bool) -> str:
    """The table, then (unless ``quiet``) the totals, each plan's reasons and the notes."""
    columns, rows = COLUMNS, [_row(p) for p in plans]
    if not any(p.adapters for p in plans):  # no LoRA adapters: no LORA SAVING column
        at = COLUMNS.index(LORA_SAVING)
        columns = COLUMNS[:at] + COLUMNS[at + 1 :]
        rows = [r[:at] + r[at + 1 :] for r in rows]
    out = [render(columns, rows, width)]
    if quiet:
        return "\n".join(out)
    out += ["", *_wrap(_total(plans), width, "")]
    bold = sys.stdout.isatty() and not os.environ.get("NO_COLOR")
    for p in plans:
        who = f"\033[1m{p.namespace}/{p.name}\033[0m" if bold else f"{p.namespace}/{p.name}"
        out += ["", *_wrap(f"{who} {p.phase}: {p.message}", width, "  ")]
        for a in p.adapters:
            why = f" ({a.reason}: {a.message})" if a.state == "Rejected" else ""
            line = f"  adapter {a.name} (rank {a.rank}, {a.memory or '?'}): {a.state}{why}"
            out += _wrap(line, width, "      ")
        shown = p.alternatives if p.phase != "Placed" else p.alternatives[:SHOWN]
        for a in shown:
            out += _wrap(f"  - {_alternative(a)}: {a.code}: {a.reason}", width, "      ")
        if len(p.alternatives) > len(shown):
            more = len(p.alternatives) - len(shown)
            out += _wrap(f"  +{more} more (-o yaml lists every one)", width, "      ")
    for x in cluster.excluded:
        out += ["", *_wrap(f"Pool {x.name} left out ({x.code}): {x.reason}", width, "  ")]
    for notice in cluster.notices:
        out += _wrap(f"Note: {notice}", width, "  ")
    return "\n".join(out)


def _total(plans: list[Any]) -> str:
    placed = [p for p in plans if p.phase == "Placed"]
    total = sum(p.cost.per_hour or 0.0 for p in placed)
    compared = [p for p in placed if p.cost.naive_per_hour is not None]
    naive_total = sum(p.cost.naive_per_hour for p in compared)
    line = f"Total: {len(placed)} of {len(plans)} placed, {_money(total)}/h"
    if naive_total > 0:
        saving = naive_total - sum(p.cost.per_hour or 0.0 for p in compared)
        scope = f" for the {len(compared)} with a naive plan" if compared != placed else ""
        line += (
            f"; naive plan (bf16, all in GPU memory, cheapest pool that fits) "
            f"{_money(naive_total)}/h{scope}: "
            f"saving {_money(saving)}/h ({saving / naive_total:.0%})"
        )
    return line


def _alternative(a: Any) -> str:
    """``pool R × G GPU precision tier``, e.g. ``h100 2 × 8 H100-SXM5-80GB fp8/fp8 gpu``."""
    if a.gpus_per_replica:
        shape = f"{a.gpus_per_replica} {a.gpu_model}"
        shape = f"{a.replicas} × {shape}" if a.replicas else f"{shape} per replica"
    elif a.tier == "cpu" and a.replicas:
        shape = f"{a.replicas} × CPU"
    else:
        shape = ""
    precision = f"{a.precision}/{a.kv_cache_dtype}" if a.precision else None
    parts = (a.pool or a.variant, shape, a.variant if a.pool else None, precision, a.tier)
    return " ".join(x for x in parts if x)


def _wrap(text: str, width: int | None, indent: str) -> list[str]:
    """One line without a width; else wrapped at word boundaries, continuations indented."""
    if width is None:
        return [text]
    import textwrap

    return textwrap.wrap(
        text, width, subsequent_indent=indent, break_long_words=False, break_on_hyphens=False
    ) or [""]


def _tier(plan: Any) -> dict[str, str]:
    """status.tier as the operator writes it: hot, warm or cold (``planning.scaling``)."""
    if plan.placement is None:
        return {}
    return {"tier": temperature(plan.placement.tier, plan.placement.replicas)}

"""Planner scale benchmark: a synthetic cluster and workload, planned once, timed.

    python bench/plan_scale.py --deployments 10000 --nodes 5000 --pools 50 --seed 1
    python bench/plan_scale.py ... --workload uniform --strategy greedy

Prints one JSON line: deployments, nodes, pools, profiles, seconds (building the cluster and
planning every deployment, one core: ``plan_batch``, the default ``optimal`` strategy as in
``memplace plan``, or ``plan_cluster`` with ``--strategy greedy``), the solver's seconds and
status, placed, unschedulable, calibrated (plans whose estimate a profile corrected),
peakRssMiB. ``--profiles N`` draws N PerformanceProfiles (5–15 samples, factors 0.5–2) over the
workload's architectures and the pools' GPUs, so that the cost of calibrated planning shows.

``--dump FILE`` also writes every plan (its status fields, funnel and resolvable) as JSON lines,
to check that a change to the planner leaves its output byte-identical (``cmp``). The greedy
strategy's dumps compare as they are; the optimal one's depend on what the solver found in its
time limit (at 10,000 deployments it stops at the limit, so two runs of the same code may
differ). ``--save-choices FILE`` writes the solver's answer, ``--replay-choices FILE`` plans
with that answer instead of solving: a change to everything but the solver then compares
byte for byte.

The workload is drawn like a real platform's: a few dozen model sizes (dense and MoE), a
handful of workload shapes, SLOs and quality budgets, so many deployments share a spec and
the planner's memo (estimates per architecture × precision × KV × shape, rankings per spec)
does what it does in production. Nodes are spread over pools of real catalogue instance types.

Figures (seed 1, fleet; this 2-core machine, another helper's benchmark on the other core;
``b38bb2b`` before, this code after, each pair back to back, two runs; the README's "Scale"):

    1,000 / 500 / 10     greedy  1.7 → 0.9–1.0 s        optimal  3.2–3.3 → 1.1–1.3 s
    10,000 / 5,000 / 50  greedy 15.2–15.9 → 8.0–8.5 s   optimal 25.5–28.1 → 9.95–10.2 s
                         peak RSS (optimal) 700–702 → 356–358 MiB; solver 3.3–3.6 → 1.4 s
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "operator"))

from memplace.api import (  # noqa: E402
    ModelDeploymentSpec,
    PerformanceProfile,
    PerformanceProfileStatus,
)
from memplace.planning.architecture import architecture_from_parameters  # noqa: E402
from memplace.planning.batch import plan_batch  # noqa: E402
from memplace.planning.calibration import Calibration, ProfileKey, fingerprint, record  # noqa: E402
from memplace.planning.catalogue import default_catalogue  # noqa: E402
from memplace.planning.discovery import build_cluster  # noqa: E402
from memplace.planning.nodes import Node  # noqa: E402
from memplace.planning.plan import DeploymentRequest, plan_cluster  # noqa: E402

INSTANCE_TYPES = (
    "g6.xlarge",
    "g6.12xlarge",
    "g5.xlarge",
    "g5.12xlarge",
    "g6e.12xlarge",
    "p4de.24xlarge",
    "p5.48xlarge",
    "a2-ultragpu-8g",
    "a3-highgpu-8g",
    "g2-standard-48",
    "r7i.8xlarge",
    "c7i.8xlarge",
)
MODELS = (  # (total, active) parameters
    (0.6e9, None),
    (1.7e9, None),
    (3e9, None),
    (8e9, None),
    (14e9, None),
    (32e9, None),
    (70e9, None),
    (30e9, 3e9),
    (120e9, 5e9),
    (235e9, 22e9),
)
SHAPES = ((4096, 4, 1024), (8192, 8, 1024), (16384, 16, 4096), (32768, 4, 8192))
SLOS = ((None, None), (800, 60), (1500, 40), (5000, 200), (None, 1000))
BUDGETS = (0.0, 0.01, 0.02, 0.05)
TIERS = (["gpu"], ["gpu", "offload"], ["gpu", "offload", "cpu"])
DEMANDS = (0, 50, 200, 1000)


def cluster(nodes: int, pools: int, rng: random.Random):
    catalogue = default_catalogue()
    shapes = [catalogue.instance(t) for t in INSTANCE_TYPES]
    pool_types = [shapes[i % len(shapes)] for i in range(pools)]
    weights = [rng.uniform(0.5, 2.0) for _ in range(pools)]
    members = rng.choices(range(pools), weights=weights, k=nodes)
    out = []
    for i, p in enumerate(members):
        it = pool_types[p]
        labels = {
            "karpenter.sh/nodepool": f"pool-{p:03d}",
            "node.kubernetes.io/instance-type": it.id,
        }
        gpu = catalogue.gpus[it.gpu] if it.gpu else None
        if gpu is not None:
            labels["nvidia.com/gpu.product"] = gpu.product_labels[0]
        out.append(
            Node(
                f"node-{i:06d}",
                labels,
                gpus=it.gpu_count,
                vcpus=it.vcpus - 0.5,
                memory_bytes=int(it.memory_bytes * 0.95),
            )
        )
    return out, catalogue


def profiles(count: int, catalogue, rng: random.Random) -> Calibration:
    prints = [fingerprint(architecture_from_parameters(t, a)) for t, a in MODELS]
    gpus = sorted({catalogue.instance(t).gpu for t in INSTANCE_TYPES} - {None})
    drawn = []
    for _ in range(count):
        key = ProfileKey(
            rng.choice(prints),
            rng.choice(gpus),
            rng.choice(("bf16", "fp8", "int8", "int4")),
            rng.choice(("bf16", "fp8")),
            "vllm",
            rng.choice((1, 2, 4, 8)),
        )
        status: PerformanceProfileStatus | None = None
        factor = rng.uniform(0.5, 2.0)
        for _ in range(rng.randint(5, 15)):
            status = record(status, "2026-12-01T00:00:00Z", decode=factor, prefill=factor)
        meta = {"name": key.name}
        drawn.append(PerformanceProfile(metadata=meta, spec=key.spec(), status=status))
    return Calibration(drawn)


def _spec(rng: random.Random, demands=DEMANDS, models=MODELS) -> ModelDeploymentSpec:
    total, active = rng.choice(models)
    ctx, conc, prompt = rng.choice(SHAPES)
    ttft, tpot = rng.choice(SLOS)
    return ModelDeploymentSpec.model_validate(
        {
            "model": {"name": f"m-{total:.0e}", "parameters": total, "activeParameters": active},
            "workload": {
                "contextTokens": ctx,
                "concurrency": conc,
                "promptTokens": prompt,
                "outputTokensPerSecond": rng.choice(demands),
            },
            "slo": {"timeToFirstTokenMs": ttft, "timePerOutputTokenMs": tpot},
            "quality": {"maxLoss": rng.choice(BUDGETS)},
            "placement": {"tiers": rng.choice(TIERS)},
            "priority": rng.choice(PRIORITIES),
        }
    )


PRIORITIES = (0, 0, 0, 0, 1, 10)
"""Most deployments at the default priority, some above it (production, then critical)."""
FLEET_DEMANDS = (0, 0, 20, 50, 100, 200, 400)
"""Output tokens/s per deployment in the fleet workload: most serve modest traffic."""
FLEET_MODELS = MODELS[:8]
"""The fleet workload's models: up to 120B (a 235B MoE is rare in a fleet of 10,000)."""


def workload(
    count: int,
    rng: random.Random,
    calibration: Calibration | None = None,
    kind: str = "fleet",
) -> list[DeploymentRequest]:
    """``fleet`` (default): a platform's fleet. A catalogue of services (count ÷ 8 specs), each
    deployed several times across namespaces (teams, regions, canaries), the popular ones more
    (Zipf weights 1/rank), with modest demand: most deployments are placeable and many share a
    model, as in a real fleet. ``uniform``: every deployment drawn on its own, demand up to
    1,000 tokens/s, 235B models included (the earlier benchmark: ~60 % unschedulable, which
    measures the failure path)."""
    if kind == "uniform":
        return [
            DeploymentRequest(f"ns-{i % 97:02d}", f"d-{i:06d}", _spec(rng), calibration=calibration)
            for i in range(count)
        ]
    services = [_spec(rng, FLEET_DEMANDS, FLEET_MODELS) for _ in range(max(1, count // 8))]
    weights = [1.0 / (rank + 1) for rank in range(len(services))]
    drawn = rng.choices(range(len(services)), weights=weights, k=count)
    return [
        DeploymentRequest(
            f"ns-{i % 97:02d}", f"s{k:05d}-{i:06d}", services[k], calibration=calibration
        )
        for i, k in enumerate(drawn)
    ]


def _choices(save: Path | None, replay: Path | None) -> None:
    """The solver's answer saved to ``save``, or taken from ``replay`` instead of solving."""
    from memplace.planning import batch
    from memplace.planning.solve import Solution

    real = batch.solve

    def solve(items, rooms, **options):
        if replay is not None:
            return Solution(json.loads(replay.read_text()), "optimal")
        found = real(items, rooms, **options)
        save.write_text(json.dumps(found.chosen))  # type: ignore[union-attr]
        return found

    batch.solve = solve


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deployments", type=int, default=1000)
    parser.add_argument("--nodes", type=int, default=500)
    parser.add_argument("--pools", type=int, default=12)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--profiles", type=int, default=0, help="PerformanceProfiles to draw")
    parser.add_argument(
        "--dump", type=Path, help="also write every plan to this file, one JSON line each"
    )
    parser.add_argument(
        "--workload", choices=("fleet", "uniform"), default="fleet", help="see workload()"
    )
    parser.add_argument("--save-choices", type=Path, help="write the solver's answer here")
    parser.add_argument(
        "--replay-choices", type=Path, help="plan with this saved answer instead of solving"
    )
    parser.add_argument(
        "--strategy",
        choices=("greedy", "optimal"),
        default="optimal",
        help="plan_batch (optimal, the default as in memplace plan: the solver, 1 s limit) or "
        "plan_cluster (greedy)",
    )
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    nodes, catalogue = cluster(args.nodes, args.pools, rng)
    calibration = profiles(args.profiles, catalogue, rng) if args.profiles else None
    requests = workload(args.deployments, rng, calibration, args.workload)
    if args.save_choices or args.replay_choices:
        _choices(args.save_choices, args.replay_choices)
    start = time.perf_counter()
    built = build_cluster(nodes=nodes, catalogue=catalogue)
    solver = None
    if args.strategy == "greedy":
        plans = plan_cluster(requests, built)
    else:
        result = plan_batch(requests, built)
        plans, solver = result.plans, result.solution
    seconds = time.perf_counter() - start
    phases = [p.phase for p in plans]
    if args.dump is not None:
        with args.dump.open("w") as out:
            for p in plans:
                line = {"namespace": p.namespace, "name": p.name, **p.status_fields()}
                line["funnel"], line["resolvable"] = p.funnel, p.resolvable
                out.write(json.dumps(line, sort_keys=True) + "\n")
    print(
        json.dumps(
            {
                "deployments": args.deployments,
                "nodes": args.nodes,
                "pools": args.pools,
                "profiles": args.profiles,
                "workload": args.workload,
                "strategy": args.strategy,
                "seconds": round(seconds, 3),
                "solverSeconds": round(solver.seconds, 3) if solver else None,
                "solverStatus": solver.status if solver else None,
                "distinctSpecs": len({r.spec.model_dump_json() for r in requests}),
                "placed": phases.count("Placed"),
                "unschedulable": phases.count("Unschedulable"),
                "calibrated": sum(
                    1
                    for p in plans
                    if p.estimate is not None
                    and p.estimate.calibration is not None
                    and p.estimate.calibration.samples > 0
                ),
                "peakRssMiB": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The exact optimum of a small batch, by trying every assignment: the reference the batch
solver is tested against (``test_batch.py``) and measured against (``bench/plan_quality.py``).

Every deployment takes one of its distinct feasible options (``batch._options``: the planner's
own candidates, one per room key) or none; an assignment counts only if the pools' own
``PoolCapacity`` can pack it (largest replicas first, exact for the power-of-two GPU counts the
catalogue's nodes and candidates have). The best is the most placed by priority level weight,
then the least cost."""

from __future__ import annotations

import itertools

from memplace.planning.batch import _options, _released, _static
from memplace.planning.solve import level_weights


def brute_force(requests, cluster, limit=200_000):
    """(placed weight, cost $/h, placed count) of the best assignment; None when > limit."""
    ordered = sorted(requests, key=lambda r: (r.namespace, r.name))
    state = cluster.mutable_copy()
    for r in ordered:
        _released(state, r.owner, in_place=True)
    options = [_options(_static(r, state).ranking, r, state) for r in ordered]
    size = 1
    for o in options:
        size *= len(o) + 1
    if size > limit:
        return None
    weights = level_weights([r.spec.priority for r in ordered])
    best = None
    for pick in itertools.product(*[[None, *o] for o in options]):
        chosen = [(r, o) for r, o in zip(ordered, pick, strict=True) if o is not None]
        placed = sum(weights[r.spec.priority] for r, _ in chosen)
        cost = sum(o.cost for _, o in chosen)
        if best is not None and (placed, -cost) <= (best[0], -best[1]):
            continue
        if _packs(chosen, state):
            best = (placed, cost, len(chosen))
    return best


def _packs(chosen, state) -> bool:
    capacity = {}
    for _, o in sorted(chosen, key=lambda ro: (-ro[1].slots, -ro[1].resident)):
        room = capacity.get(o.pool)
        if room is None:
            room = capacity[o.pool] = state.capacity(o.pool).copy()
        gpus = 0 if state.pool(o.pool).cpu_only else o.slots
        if room.place(gpus, o.resident, o.replicas) is None:
            return False
    return True


# --- seeded small instances: scarce capacity, shared models ------------------------------------

INSTANCE_TYPES = ("g2-standard-48", "g6.12xlarge", "a2-ultragpu-8g", "a3-highgpu-8g", "g5.xlarge")
MODELS = ((1.7e9, None), (8e9, None), (14e9, None), (32e9, None), (30e9, 3e9), (70e9, None))
DEMANDS = (0, 100, 400, 1500)
SLOS = ((None, None), (1500, 60), (800, 40))


def small_instance(seed: int, deployments: int, nodes: int | None = None):
    """(requests, cluster): ``deployments`` drawn over a few shared models, on 2–4 pools of
    real instance types with few nodes, so that capacity is scarce and choices interact."""
    import random

    from memplace.api import ModelDeploymentSpec
    from memplace.planning.catalogue import default_catalogue
    from memplace.planning.discovery import build_cluster
    from memplace.planning.nodes import Node
    from memplace.planning.plan import DeploymentRequest

    rng = random.Random(seed)
    catalogue = default_catalogue()
    pools = rng.sample(INSTANCE_TYPES, rng.randint(2, 4))
    count = nodes if nodes is not None else max(2, deployments // 3)
    out = []
    for i in range(count):
        it = catalogue.instance(pools[i % len(pools)])
        gpu = catalogue.gpus[it.gpu]
        labels = {
            "karpenter.sh/nodepool": f"pool-{pools.index(it.id)}",
            "node.kubernetes.io/instance-type": it.id,
            "nvidia.com/gpu.product": gpu.product_labels[0],
        }
        out.append(
            Node(
                f"n{i}",
                labels,
                gpus=it.gpu_count,
                vcpus=it.vcpus - 0.5,
                memory_bytes=int(it.memory_bytes * 0.95),
            )
        )
    models = rng.sample(MODELS, 3)
    requests = []
    for i in range(deployments):
        total, active = rng.choice(models)
        ttft, tpot = rng.choice(SLOS)
        spec = ModelDeploymentSpec.model_validate(
            {
                "model": {"name": f"m{total:.0e}", "parameters": total, "activeParameters": active},
                "workload": {
                    "contextTokens": 8192,
                    "concurrency": 8,
                    "outputTokensPerSecond": rng.choice(DEMANDS),
                },
                "slo": {"timeToFirstTokenMs": ttft, "timePerOutputTokenMs": tpot},
                "quality": {"maxLoss": rng.choice((0.0, 0.02))},
                "placement": {"tiers": ["gpu"]},
                "priority": rng.choice((0, 0, 0, 1, 5)),
            }
        )
        requests.append(DeploymentRequest("ns", f"d{i:03d}", spec))
    return requests, build_cluster(nodes=out, catalogue=catalogue)

"""LoRA planning benchmark: one base with N adapters, planned against a small cluster, timed.

    python bench/lora_plan.py --adapters 1 10 100 --seed 1

Prints one JSON line per N: adapters, seconds (a fresh cluster each, so no memo is shared
between N), loaded, rejected, perHour, separatePerHour (one deployment per fine-tune), and the
adapter reservation per GPU in MiB. Ranks are drawn from 8–64 and demands from 0–200 tok/s; a
few adapters of rank 512 make the planner drop them (and re-plan) as the cluster fills.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "operator"))
sys.path.insert(0, str(ROOT / "tests" / "planning"))

from planning_clusters import a100_nodes, l4_nodes  # noqa: E402

from memplace.api import ModelDeploymentSpec  # noqa: E402
from memplace.planning.discovery import build_cluster  # noqa: E402
from memplace.planning.plan import DeploymentRequest, plan_deployment  # noqa: E402

LLAMA = json.loads((ROOT / "tests" / "fixtures" / "configs" / "llama-3.1-8b.json").read_text())


def spec(count: int, rng: random.Random) -> ModelDeploymentSpec:
    adapters = [
        {
            "name": f"ft-{i}",
            "source": f"hf://org/ft-{i}",
            "rank": 512 if rng.random() < 0.05 else rng.choice([8, 16, 32, 64]),
            "targetModules": rng.choice([["q_proj", "v_proj"], ["all-linear"]]),
            "outputTokensPerSecond": rng.choice([0, 20, 50, 200]),
        }
        for i in range(count)
    ]
    return ModelDeploymentSpec.model_validate(
        {
            "model": {"name": "meta-llama/Llama-3.1-8B-Instruct", "config": LLAMA},
            "workload": {"contextTokens": 8192, "concurrency": 8, "outputTokensPerSecond": 200},
            "slo": {"timePerOutputTokenMs": 80},
            "placement": {"tiers": ["gpu"]},
            "adapters": adapters,
        }
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--adapters", type=int, nargs="+", default=[1, 10, 100])
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    for count in args.adapters:
        s = spec(count, random.Random(args.seed))
        cluster = build_cluster(nodes=l4_nodes(2) + a100_nodes(1))
        start = time.perf_counter()
        plan = plan_deployment(DeploymentRequest("ml", "tenants", s), cluster)
        seconds = time.perf_counter() - start
        states = [a.state for a in plan.adapters]
        cost = plan.cost
        adapter_bytes = plan.estimate.adapter_bytes if plan.estimate else None
        gpus = plan.placement.gpus_per_replica if plan.placement else 1
        print(
            json.dumps(
                {
                    "adapters": count,
                    "seconds": round(seconds, 3),
                    "phase": plan.phase,
                    "loaded": states.count("Loaded"),
                    "rejected": states.count("Rejected"),
                    "perHour": cost.per_hour if cost else None,
                    "separatePerHour": cost.separate_per_hour if cost else None,
                    "adapterMiBPerGpu": round(adapter_bytes / gpus / 2**20, 1)
                    if adapter_bytes
                    else 0,
                }
            )
        )


if __name__ == "__main__":
    main()

"""`memplace plan --strategy` and `--consolidation-threshold`: the batch as a whole or in name
order, and when a running placement (``status.placement``) moves.

Two one-GPU pools of the same A100, ``cheap`` ($2/h) and ``dear`` ($5/h). ``a-anywhere`` may
run in either; ``b-cheap-only`` only in ``cheap``. Greedy, in (namespace, name) order, gives
``a`` the cheap GPU and leaves ``b`` out; the optimal batch places both.
"""

from __future__ import annotations

import json

import pytest

from memplace.cli import main

POOLS_AND_NODES = """\
apiVersion: memplace.io/v1alpha1
kind: PlacementPool
metadata: {name: cheap}
spec: {nodeSelector: {memplace.io/pool: cheap}, pricePerNodeHour: 2.0}
---
apiVersion: memplace.io/v1alpha1
kind: PlacementPool
metadata: {name: dear}
spec: {nodeSelector: {memplace.io/pool: dear}, pricePerNodeHour: 5.0}
""" + "".join(
    f"""---
apiVersion: v1
kind: Node
metadata:
  name: {pool}-0
  labels: {{memplace.io/pool: {pool}, nvidia.com/gpu.product: NVIDIA-A100-SXM4-80GB,
           nvidia.com/gpu.count: '1', nvidia.com/gpu.memory: '81920'}}
status:
  allocatable: {{cpu: '16', memory: 128Gi, nvidia.com/gpu: '1'}}
  conditions: [{{type: Ready, status: 'True'}}]
"""
    for pool in ("cheap", "dear")
)


def deployment(name: str, pools: list[str] | None = None, running_on: str | None = None) -> str:
    text = f"""---
apiVersion: memplace.io/v1alpha1
kind: ModelDeployment
metadata: {{name: {name}, namespace: ml}}
spec:
  model: {{name: {name}, parameters: 8e9}}
  workload: {{contextTokens: 4096, concurrency: 1}}
"""
    if pools:
        text += f"  placement: {{pools: [{', '.join(pools)}]}}\n"
    if running_on:
        text += f"""status:
  phase: Ready
  placement: {{pool: {running_on}, gpuModel: A100-SXM4-80GB, precision: bf16,
              kvCacheDtype: bf16, tier: gpu, gpusPerReplica: 1, replicas: 1}}
"""
    return text


def plan(tmp_path, capsys, documents: str, *flags: str) -> dict[str, dict]:
    path = tmp_path / "cluster.yaml"
    path.write_text(POOLS_AND_NODES + documents)
    capsys.readouterr()
    assert main(["plan", str(path), "-o", "json", *flags]) == 0
    return {entry["name"]: entry for entry in json.loads(capsys.readouterr().out)}


def where(entry: dict) -> str | None:
    return (entry.get("placement") or {}).get("pool") if entry["phase"] == "Placed" else None


SCARCE = deployment("a-anywhere") + deployment("b-cheap-only", pools=["cheap"])


def test_greedy_in_name_order_leaves_one_out_that_the_default_batch_places(tmp_path, capsys):
    greedy = plan(tmp_path, capsys, SCARCE, "--strategy", "greedy")
    assert (where(greedy["a-anywhere"]), greedy["b-cheap-only"]["phase"]) == (
        "cheap", "Unschedulable")
    for flags in ((), ("--strategy", "optimal")):  # optimal is the default
        optimal = plan(tmp_path, capsys, SCARCE, *flags)
        assert {name: where(entry) for name, entry in optimal.items()} == {
            "a-anywhere": "dear", "b-cheap-only": "cheap"}, flags


@pytest.mark.parametrize(("threshold", "expected"), [("0.7", "dear"), ("0.5", "cheap")])
def test_a_running_placement_moves_only_for_a_saving_above_the_threshold(
    tmp_path, capsys, threshold, expected
):
    # dear -> cheap saves 60 % of its cost: above 0.5, below 0.7.
    running = deployment("a-anywhere", running_on="dear")
    plans = plan(tmp_path, capsys, running, "--consolidation-threshold", threshold)
    assert where(plans["a-anywhere"]) == expected


def test_the_default_threshold_moves_a_running_placement_for_a_60_percent_saving(
    tmp_path, capsys
):
    plans = plan(tmp_path, capsys, deployment("a-anywhere", running_on="dear"))
    assert where(plans["a-anywhere"]) == "cheap"  # 0.10 by default

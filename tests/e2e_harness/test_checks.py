"""e2e's "the scheduler bound it to the pool" check, and which cluster e2e requires."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "e2e"))
from checks import binding_problems  # noqa: E402
from target import target  # noqa: E402

NODES = [
    {"metadata": {"name": "a-0", "labels": {"pool": "a"}}},
    {"metadata": {"name": "b-0", "labels": {"pool": "b"}}},
]


def _pod(name: str, node: str | None = None, **metadata) -> dict:
    pod = {"metadata": {"name": name, **metadata}, "spec": {"nodeName": node} if node else {}}
    if node is None:
        pod["status"] = {
            "conditions": [
                {
                    "type": "PodScheduled",
                    "status": "False",
                    "reason": "Unschedulable",
                    "message": "0/2 nodes are available: 2 Insufficient nvidia.com/gpu.",
                }
            ]
        }
    return pod


def test_pods_bound_to_the_pools_nodes_have_no_problem():
    assert binding_problems([_pod("p-1", "a-0"), _pod("p-2", "a-0")], NODES, {"pool": "a"}) == []


def test_an_unbound_pod_is_reported_with_the_schedulers_message():
    (problem,) = binding_problems([_pod("p-1", "a-0"), _pod("p-2")], NODES, {"pool": "a"})
    assert problem.startswith("p-2 is not bound")
    assert "Insufficient nvidia.com/gpu" in problem


def test_a_pod_bound_outside_the_pool_or_to_no_node_is_reported():
    problems = binding_problems([_pod("p-1", "b-0"), _pod("p-2", "gone")], NODES, {"pool": "a"})
    assert problems == [
        "p-1 is bound to b-0, outside the pool {'pool': 'a'}",
        "p-2 is bound to gone, which is not a node",
    ]


def test_terminating_pods_are_left_out():
    pods = [_pod("old", "b-0", deletionTimestamp="2026-12-02T06:00:00Z"), _pod("new", "a-0")]
    assert binding_problems(pods, NODES, {"pool": "a"}) == []


def test_a_kubeconfig_for_e2e_requires_the_cluster_a_plain_kubeconfig_does_not():
    named = target({"E2E_KUBECONFIG": "/e2e/config", "KUBECONFIG": "/home/config"})
    assert (named.kubeconfig, named.required, named.source) == (
        "/e2e/config",
        True,
        "E2E_KUBECONFIG",
    )
    ambient = target({"KUBECONFIG": "/home/a:/home/b"})
    assert (ambient.kubeconfig, ambient.required) == ("/home/a", False)
    assert "set E2E_KUBECONFIG" in ambient.unavailable("unreachable")
    assert target({}) == target({"E2E_FAKE_NODES": ""})
    assert not target({}).required and target({}).kubeconfig is None


def test_any_e2e_setting_requires_the_cluster():
    for name in ("E2E_FAKE_NODES", "E2E_OPERATOR", "E2E_NAMESPACE"):
        found = target({name: "1", "KUBECONFIG": "/home/config"})
        assert found.required and found.kubeconfig == "/home/config"
        assert found.unavailable("unreachable") == "unreachable"
    assert target({"E2E_FAKE_NODES": "1"}).required

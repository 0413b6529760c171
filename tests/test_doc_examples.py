"""The documented example: `memplace plan examples/` (the README's main command)."""

import json
from pathlib import Path

import pytest

from memplace.cli import main

EXAMPLES = Path(__file__).parents[1] / "examples"


@pytest.fixture(scope="module")
def plans():
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["plan", str(EXAMPLES), "-o", "json"]) == 0
    return {p["name"]: p for p in json.loads(out.getvalue())}


def test_every_example_deployment_is_planned(plans):
    assert set(plans) == {
        "chat",
        "assistant-70b",
        "moe-coder",
        "long-context",
        "nightly-tagger",
        "archive-summarizer",
        "support-bot",
        "frontier",
    }


def test_the_infeasible_example_says_why(plans):
    frontier = plans["frontier"]
    assert frontier["phase"] == "Unschedulable"
    assert "0 fit in memory" in frontier["message"]
    assert {a["code"] for a in frontier["alternatives"]} >= {"DoesNotFit", "TierNotAllowed"}


@pytest.mark.parametrize(
    ("name", "field", "value"),
    [
        ("archive-summarizer", "tier", "offload"),
        ("nightly-tagger", "tier", "cpu"),
        ("support-bot", "variant", "support-bot-8b-distilled"),
        ("assistant-70b", "pool", "h100"),
        ("chat", "pool", "l4-shared"),
    ],
)
def test_each_example_shows_its_lever(plans, name, field, value):
    assert plans[name]["phase"] == "Placed"
    assert plans[name]["placement"][field] == value


def test_vllm_serves_in_flight_only_what_it_can_make_from_a_16_bit_checkpoint(plans):
    # int8 W8A8 needs an int8 checkpoint; vLLM makes int4 (bitsandbytes) or fp8 while loading
    for name in ("moe-coder", "support-bot"):
        assert plans[name]["placement"]["precision"] in ("int4", "fp8"), name


def test_the_infeasible_example_shows_each_pools_nearest_miss(plans):
    (h100,) = [a for a in plans["frontier"]["alternatives"] if a.get("pool") == "h100"]
    assert h100["code"] == "DoesNotFit" and h100["gpusPerReplica"] == 8


def test_every_placed_example_is_cheaper_than_or_equal_to_its_naive_plan(plans):
    for plan in plans.values():
        cost = plan["cost"] or {}
        if plan["phase"] == "Placed" and cost.get("naivePerHour") is not None:
            assert cost["perHour"] <= cost["naivePerHour"] + 1e-9, plan["name"]


def test_the_table_prints_totals_and_the_saving(capsys):
    assert main(["plan", str(EXAMPLES)]) == 0
    out = capsys.readouterr().out
    assert "Total: 7 of 8 placed" in out and "saving" in out
    assert "Pool onprem left out (NoPrice)" in out


# --- what a user applies: examples/kustomization.yaml --------------------------------------------


def kustomization() -> dict:
    import yaml

    return yaml.safe_load((EXAMPLES / "kustomization.yaml").read_text())


def applied_objects() -> list[dict]:
    """What `kubectl apply -k examples/` would send: `kubectl kustomize` when kubectl is here,
    else every listed file parsed (the kustomization has no patches or generators to apply)."""
    import shutil
    import subprocess

    import yaml

    if shutil.which("kubectl"):
        done = subprocess.run(["kubectl", "kustomize", str(EXAMPLES)], capture_output=True,
                              text=True, check=True, timeout=60)  # fmt: skip
        return [d for d in yaml.safe_load_all(done.stdout) if d]
    return [
        doc
        for resource in kustomization()["resources"]
        for doc in yaml.safe_load_all((EXAMPLES / resource).read_text())
        if doc
    ]


def test_the_kustomization_lists_every_file_a_user_applies_and_no_offline_node():
    listed = set(kustomization()["resources"])
    on_disk = {
        str(p.relative_to(EXAMPLES))
        for p in EXAMPLES.rglob("*.yaml")
        if p.name != "kustomization.yaml" and "offline" not in p.parts
    }
    assert listed == on_disk
    kinds = {obj["kind"] for obj in applied_objects()}
    assert kinds == {"Namespace", "PlacementPool", "ConfigMap", "ModelDeployment", "ModelAdapter"}


def test_every_namespace_the_examples_use_is_created_by_them():
    objects = applied_objects()
    created = {o["metadata"]["name"] for o in objects if o["kind"] == "Namespace"}
    used = {o["metadata"]["namespace"] for o in objects if o["metadata"].get("namespace")}
    assert used == created == {"ml", "batch"}


def test_planning_what_is_applied_on_the_offline_nodes_is_planning_examples(tmp_path, capsys):
    import yaml

    applied = tmp_path / "applied.yaml"
    applied.write_text(yaml.safe_dump_all(applied_objects()))
    assert main(["plan", str(applied), str(EXAMPLES / "offline"), "-o", "json"]) == 0
    from_applied = capsys.readouterr().out
    assert main(["plan", str(EXAMPLES), "-o", "json"]) == 0
    assert from_applied == capsys.readouterr().out

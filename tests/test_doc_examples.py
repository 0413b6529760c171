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

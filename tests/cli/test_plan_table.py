"""`memplace plan`'s table: fits 80, 120 and 200 columns without cutting a cell; stable in pipes."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from memplace.cli import main
from memplace.cli.table import Column, render

EXAMPLES = Path(__file__).parents[2] / "examples"


def plan_output(capsys, monkeypatch, *args: str, columns: int, tty: bool) -> tuple[str, str]:
    monkeypatch.setenv("COLUMNS", str(columns))  # shutil.get_terminal_size reads it first
    monkeypatch.setenv("NO_COLOR", "1")
    capsys.readouterr()
    monkeypatch.setattr(sys.stdout, "isatty", lambda: tty)
    code = main(["plan", *args])
    out = capsys.readouterr()
    assert code == 0, out.err
    return out.out, out.err


@pytest.fixture(scope="module")
def plans():
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["plan", str(EXAMPLES), "-o", "json"]) == 0
    return json.loads(out.getvalue())


def money(value: float | None) -> str:
    return "-" if value is None else f"${value:,.2f}"


def row_block(lines: list[str], who: str) -> list[str]:
    """The row of ``who`` and the fold lines under it."""
    start = next(i for i, line in enumerate(lines) if line.startswith(who + " "))
    block = [lines[start]]
    for line in lines[start + 1 :]:
        if not line.startswith("    "):
            break
        block.append(line)
    return block


@pytest.mark.parametrize("columns", [80, 120, 200])
def test_the_table_fits_the_terminal_and_never_cuts_phase_or_money(
    capsys, monkeypatch, plans, columns
):
    out, _ = plan_output(capsys, monkeypatch, str(EXAMPLES), columns=columns, tty=True)
    lines = out.splitlines()
    assert max(len(line) for line in lines) <= columns
    assert "…" not in out
    for p in plans:
        (row, *_) = row_block(lines, f"{p['namespace']}/{p['name']}")
        assert f" {p['phase']} " in row
        per_hour = (p.get("cost") or {}).get("perHour")
        assert money(per_hour) in row.split(), row


@pytest.mark.parametrize("columns", [80, 120])
def test_what_does_not_fit_folds_under_its_row_and_nothing_is_lost(
    capsys, monkeypatch, plans, columns
):
    out, _ = plan_output(capsys, monkeypatch, str(EXAMPLES), columns=columns, tty=True)
    wide, _ = plan_output(capsys, monkeypatch, str(EXAMPLES), columns=columns, tty=False)
    lines = out.splitlines()
    for p in plans:
        if p["phase"] != "Placed":
            continue
        block = " ".join(row_block(lines, f"{p['namespace']}/{p['name']}"))
        placement, estimate = p["placement"], p["estimate"]
        for value in (
            placement["pool"],
            f"{placement['precision']}/{placement['kvCacheDtype']} KV",
            placement["tier"],
            estimate["totalPerGpu"],
            f"{estimate['timeToFirstTokenMs']:.0f}/{estimate['timePerOutputTokenMs']:.1f}",
            money(p["cost"]["perMillionOutputTokens"]),
        ):
            assert value in block, (p["name"], value)
    assert len(lines) > len(wide.splitlines())  # folding made it taller, not narrower cells


def test_wide_puts_every_column_on_the_row_whatever_the_terminal(capsys, monkeypatch):
    out, _ = plan_output(capsys, monkeypatch, str(EXAMPLES), "-o", "wide", columns=80, tty=True)
    header = out.splitlines()[0].split()
    assert header == ["DEPLOYMENT", "PHASE", "SERVES", "PRECISION", "TIER", "POOL", "GPUS",
                      "REPLICAS", "MEMORY", "TTFT/TPOT", "ms", "$/h", "NAIVE", "$/h", "LORA",
                      "SAVING", "$/M", "tok"]  # fmt: skip
    assert not any(line.startswith("    ") for line in out.splitlines()[:9])


def test_output_to_a_pipe_does_not_depend_on_the_terminal_size(capsys, monkeypatch):
    narrow, _ = plan_output(capsys, monkeypatch, str(EXAMPLES), columns=80, tty=False)
    broad, _ = plan_output(capsys, monkeypatch, str(EXAMPLES), columns=300, tty=False)
    assert narrow == broad
    assert "\033[" not in narrow


def test_quiet_prints_the_table_only(capsys, monkeypatch, plans):
    out, err = plan_output(capsys, monkeypatch, str(EXAMPLES), "--quiet", columns=200, tty=False)
    lines = out.splitlines()
    assert len(lines) == 1 + len(plans)
    assert lines[0].startswith("DEPLOYMENT")
    assert "Total" not in out and err == ""


def test_an_input_without_deployments_plans_nothing_and_says_so(capsys, monkeypatch, tmp_path):
    (tmp_path / "pools.yaml").write_text((EXAMPLES / "pools.yaml").read_text())
    out, err = plan_output(capsys, monkeypatch, str(tmp_path), columns=120, tty=True)
    assert out == ""
    assert err.strip() == f"memplace plan: no ModelDeployment in {tmp_path}: nothing to plan"


def test_alternatives_show_replicas_and_gpus_per_replica(capsys, monkeypatch, plans):
    out, _ = plan_output(capsys, monkeypatch, str(EXAMPLES), columns=200, tty=False)
    shown = [
        a
        for p in plans
        for a in (p["alternatives"] if p["phase"] != "Placed" else p["alternatives"][:4])
        if a.get("gpusPerReplica") and a.get("replicas")
    ]
    assert shown
    for a in shown:
        assert f"{a['pool']} {a['replicas']} × {a['gpusPerReplica']} {a['gpuModel']} " in out


def test_the_cpu_tier_shows_host_memory_not_memory_per_gpu(capsys, monkeypatch):
    out, _ = plan_output(capsys, monkeypatch, str(EXAMPLES), columns=200, tty=False)
    row = next(line for line in out.splitlines() if line.startswith("batch/nightly-tagger "))
    assert " RAM " in row and "/GPU" not in row


def test_the_files_a_user_applies_plan_without_notices(capsys, monkeypatch):
    _, err = plan_output(capsys, monkeypatch, str(EXAMPLES), columns=200, tty=False)
    assert err == ""  # Namespace and Kustomization sit beside the deployments, quietly


def test_render_keeps_the_kept_columns_even_when_nothing_else_fits():
    columns = [Column("NAME", keep=True), Column("A", rank=1), Column("B", rank=2, fold="b {}")]
    text = render(columns, [["x" * 30, "aa", "bb"]], width=20)
    assert text.splitlines() == ["NAME", "x" * 30, "    aa · b bb"]


def test_render_folds_the_least_important_column_first():
    columns = [Column("N", keep=True), Column("LOW", rank=9), Column("HIGH", rank=1)]
    text = render(columns, [["n", "low", "high"]], width=len("N   HIGH"))
    assert text.splitlines() == ["N   HIGH", "n   high", "    low"]


def test_rules_that_restate_the_spec_come_last_in_every_list_of_alternatives(plans):
    listed = [p["alternatives"] for p in plans if p.get("alternatives")]
    assert any(any(a["code"] == "PoolNotAllowed" for a in alts) for alts in listed), (
        "the examples no longer exercise PoolNotAllowed")
    for alts in listed:
        codes = [a["code"] == "PoolNotAllowed" for a in alts]
        assert codes == sorted(codes), [a["code"] for a in alts]


def test_a_placed_deployment_shows_its_first_alternatives_and_counts_the_rest(
    capsys, monkeypatch, plans
):
    from memplace.cli.plan import SHOWN

    out, _ = plan_output(capsys, monkeypatch, str(EXAMPLES), columns=200, tty=False)
    long = [p for p in plans if p["phase"] == "Placed" and len(p.get("alternatives") or []) > SHOWN]
    assert long, "no example deployment has more alternatives than are shown"
    for p in long:
        block = out.split(f"\n{p['namespace']}/{p['name']} Placed:", 1)[1].split("\n\n", 1)[0]
        assert block.count("\n  - ") == SHOWN, block
        assert f"\n  +{len(p['alternatives']) - SHOWN} more (-o yaml lists every one)" in block

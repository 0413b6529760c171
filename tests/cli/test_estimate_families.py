"""`memplace estimate` on newly supported families, and the tensor-parallel refusal."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

CONFIGS = Path(__file__).parent.parent / "fixtures" / "configs"


def estimate(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "memplace", "estimate", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_three_gpus_do_not_fit_a_32_head_model():
    result = estimate(
        str(CONFIGS / "llama-3.1-8b.json"),
        *("--precision", "bf16", "--gpu", "H100-SXM5-80GB", "--gpus-per-replica", "3"),
        *("-o", "json"),
    )
    assert result.returncode == 0, result.stderr
    row = json.loads(result.stdout)
    assert row["fits"] is False and "32 attention heads" in row["reason"]


@pytest.mark.parametrize(
    "fixture",
    ["llama-4-scout-17b-16e-instruct.json", "glm-4.5-air.json", "jamba-1.5-mini.json"],
)
def test_new_families_are_estimated_at_every_precision(fixture):
    result = estimate(str(CONFIGS / fixture), "-o", "json")
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    weights = {r["precision"]: r["weightsBytes"] for r in rows}
    assert weights["bf16"] > weights["fp8"] > weights["int4"] > 0
    assert all(r["parameters"] == rows[0]["parameters"] > 0 for r in rows)

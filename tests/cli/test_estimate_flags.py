"""`memplace estimate` without a config (--parameters), on the CPU tier, and for slow models."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from memplace.cli import main
from memplace.cli.units import parse_count, significant
from memplace.planning.architecture import architecture_from_parameters
from memplace.planning.memory import estimate_memory

CONFIGS = Path(__file__).parent.parent / "fixtures" / "configs"


def run_json(capsys, *args: str):
    assert main(["estimate", *args, "-o", "json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_parameters_stand_in_for_a_config_as_spec_model_parameters_does(capsys):
    from memplace.planning.catalogue import default_catalogue

    row = run_json(capsys, "--parameters", "30B", "--active-parameters", "3e9", "--precision",
                   "int4")  # fmt: skip
    assert row["parameters"] == 30_000_000_000 and row["activeParameters"] == 3_000_000_000
    catalogue = default_catalogue()
    expected = estimate_memory(
        architecture_from_parameters(30e9, 3e9),
        catalogue.precisions["int4"],
        catalogue.kv_dtypes["bf16"],
        context_tokens=8192,
        concurrency=1,
        gpus_per_replica=1,
    )
    assert row["totalBytes"] == expected.total_bytes


def test_an_unknown_model_type_points_to_the_flags_that_exist(capsys, tmp_path):
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"model_type": "not-a-family"}))
    assert main(["estimate", str(config)]) == 2
    err = capsys.readouterr().err
    assert "--parameters N (and --active-parameters N for MoE)" in err
    assert "spec.model" not in err


@pytest.mark.parametrize(
    "args",
    [[], [str(CONFIGS / "qwen3-8b.json"), "--parameters", "8e9"], ["--active-parameters", "3e9"]],
)
def test_model_and_parameters_are_one_or_the_other(capsys, args):
    assert main(["estimate", *args]) == 2
    assert capsys.readouterr().err.startswith("memplace estimate: ")


def test_the_cpu_tier_does_not_speak_of_gpus(capsys):
    assert main(["estimate", str(CONFIGS / "qwen3-8b.json"), "--tier", "cpu",
                 "--instance", "r7i.8xlarge"]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert "GPU" not in out and "on CPU (r7i.8xlarge)" in out


def test_a_slow_model_keeps_its_throughput_digits(capsys):
    rows = run_json(capsys, str(CONFIGS / "llama-3.1-70b.json"), "--tier", "cpu", "--instance",
                    "r7i.8xlarge")  # fmt: skip
    slow = rows[0]["outputTokensPerSecondPerReplica"]
    assert 0 < slow < 1  # bf16 70B on a CPU: well under a token per second, yet not 0
    assert main(["estimate", str(CONFIGS / "llama-3.1-70b.json"), "--tier", "cpu",
                 "--instance", "r7i.8xlarge"]) == 0  # fmt: skip
    assert f" {significant(slow)} " in capsys.readouterr().out


@pytest.mark.parametrize(
    ("value", "text"),
    [(0.18, "0.180"), (0.0434, "0.0434"), (3.456, "3.46"), (58.9, "58.9"), (1234.5, "1234"),
     (0.0, "0")],
)  # fmt: skip
def test_significant_keeps_three_digits(value, text):
    assert significant(value) == text


@pytest.mark.parametrize(
    ("text", "count"),
    [("8.2e9", 8_200_000_000), ("8.2B", 8_200_000_000), ("235b", 235e9), ("70000", 70_000)],
)
def test_counts_read_as_users_write_them(text, count):
    assert parse_count(text) == count


@pytest.mark.parametrize("text", ["", "-5", "many", "1e20", "0"])
def test_bad_counts_are_refused(text):
    with pytest.raises(argparse.ArgumentTypeError):
        from memplace.cli.estimate import _count

        _count(text)

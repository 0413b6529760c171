"""`memplace estimate` and `memplace catalog`, run as a user runs them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from hub_server import hub_fixture  # noqa: F401 (the `hub` fixture)

CONFIGS = Path(__file__).parent.parent / "fixtures" / "configs"
LLAMA = str(CONFIGS / "llama-3.1-8b.json")


def memplace(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "memplace", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


def test_json_for_one_precision_has_the_status_estimate_keys():
    result = memplace(
        "estimate",
        LLAMA,
        "--precision",
        "bf16",
        "--gpu",
        "H100-SXM5-80GB",
        "--concurrency",
        "8",
        "-o",
        "json",
    )
    assert result.returncode == 0, result.stderr
    row = json.loads(result.stdout)
    for key in (
        "parameters",
        "activeParameters",
        "weightsBytes",
        "kvCacheBytes",
        "stateBytes",
        "overheadBytes",
        "totalBytes",
        "totalBytesPerGpu",
        "timeToFirstTokenMs",
        "timePerOutputTokenMs",
        "outputTokensPerSecondPerReplica",
        "fits",
    ):
        assert key in row
    assert row["weightsBytes"] / 2**30 == pytest.approx(14.96, abs=0.01)
    assert row["fits"] is True


def test_without_precision_every_precision_is_listed():
    result = memplace("estimate", LLAMA, "-o", "json")
    rows = json.loads(result.stdout)
    assert [r["precision"] for r in rows] == [
        "bf16",
        "fp16",
        "fp8",
        "int8",
        "int4",
        "nvfp4",
        "mxfp4",
    ]
    assert "timePerOutputTokenMs" not in rows[0]  # speed needs --gpu


def test_the_table_says_why_a_precision_does_not_fit():
    result = memplace("estimate", LLAMA, "--gpu", "L4", "--concurrency", "8")
    assert result.returncode == 0, result.stderr
    assert "usable on L4" in result.stdout
    assert "compute capability >= 10.0" in result.stdout  # nvfp4 on Ada


def test_offload_tier_moves_the_excess_to_host_memory():
    result = memplace(
        "estimate",
        LLAMA,
        "--precision",
        "bf16",
        "--gpu",
        "L4",
        "--tier",
        "offload",
        "--concurrency",
        "8",
        "-o",
        "json",
    )
    row = json.loads(result.stdout)
    assert row["fits"] and row["offloadBytesPerGpu"] > 0 and row["bound"] == "host-link"


def test_a_directory_holding_config_json_is_accepted(tmp_path):
    (tmp_path / "config.json").write_text(Path(LLAMA).read_text())
    assert memplace("estimate", str(tmp_path), "--precision", "int4").returncode == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["estimate", "/nonexistent/config.json"], "no such file"),
        (["estimate", LLAMA, "--gpu", "Z80"], "unknown GPU 'Z80'"),
        (["estimate", LLAMA, "--precision", "fp2"], "unknown precision 'fp2'"),
        (["estimate", LLAMA, "--tier", "cpu"], "needs --instance"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args, message):
    result = memplace(*args)
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr


def test_unknown_model_type_names_the_fallback(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"model_type": "bert"}))
    result = memplace("estimate", str(path))
    assert result.returncode == 2
    assert "no hidden_size" in result.stderr and "parameters" in result.stderr


def test_an_unknown_model_type_with_the_standard_fields_is_sized_and_says_so(tmp_path):
    """A fine-tune renamed to its own model_type keeps Llama's shapes: it is sized exactly as
    Llama-3.1-8B, and both the table and the JSON say that no family rules were applied."""
    config = json.loads(Path(LLAMA).read_text()) | {"model_type": "my_llama"}
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    table = memplace("estimate", str(path), "--precision", "bf16", "--gpu", "L4")
    assert table.returncode == 0, table.stderr
    assert "note: model_type 'my_llama' sized from standard fields (no family rules)" in (
        table.stdout
    )
    as_json = json.loads(memplace("estimate", str(path), "--precision=bf16", "-o=json").stdout)
    known = json.loads(memplace("estimate", LLAMA, "--precision=bf16", "-o=json").stdout)
    assert as_json["parameters"] == known["parameters"] == 8_030_261_248
    assert as_json["sizingNotes"] == [
        "model_type 'my_llama' sized from standard fields (no family rules)"
    ]
    assert known["sizingNotes"] == []


def test_malformed_json_names_the_file(tmp_path):
    path = tmp_path / "config.json"
    path.write_text("{not json")
    result = memplace("estimate", str(path))
    assert result.returncode == 2 and str(path) in result.stderr


def test_hub_source_offline_says_what_was_fetched_from_where():
    env = {"HF_ENDPOINT": "http://127.0.0.1:9", "PATH": "/usr/bin:/bin"}
    result = memplace("estimate", "hf://Qwen/Qwen3-8B", env=env)
    assert result.returncode == 2
    assert "http://127.0.0.1:9/Qwen/Qwen3-8B/resolve/main/config.json" in result.stderr
    assert "Traceback" not in result.stderr


def _hub_env(hub) -> dict:
    import os

    return {
        "HF_ENDPOINT": hub.url,
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": os.environ.get("PYTHONPATH", ""),
    }


def test_a_hub_model_is_weighed_by_its_checkpoint_headers(hub):
    args = ("estimate", "hf://openai/gpt-oss-20b", "--precision", "mxfp4", "-o", "json")
    result = memplace(*args, env=_hub_env(hub))
    assert result.returncode == 0, result.stderr
    row = json.loads(result.stdout)
    assert row["weightsBytes"] == 13_761_264_768 and row["weightsSource"] == "checkpoint"
    assert "weights from the checkpoint's headers: mxfp4" in result.stderr
    assert any(path.endswith(".safetensors") for path, _ in hub.requests)


def test_a_hub_model_whose_checkpoint_cannot_be_read_falls_back_to_config_and_says_so(hub):
    hub.files["Qwen/Qwen3-0.6B/model.safetensors"] = b"\x01\x00"  # 2 bytes: no header length
    result = memplace("estimate", "hf://Qwen/Qwen3-0.6B", "--precision", "bf16", env=_hub_env(hub))
    assert result.returncode == 0, result.stderr
    assert "bf16/bf16 " in result.stdout and "(checkpoint)" not in result.stdout
    assert "weights from config.json: the checkpoint could not be read" in result.stdout
    assert "model.safetensors ended after 2 bytes" in result.stdout


def test_a_tied_lm_head_in_the_checkpoint_is_named_as_not_loaded(hub):
    result = memplace("estimate", "hf://Qwen/Qwen3-0.6B", env=_hub_env(hub))
    assert result.returncode == 0, result.stderr
    assert "bf16/bf16 (checkpoint)" in result.stdout and "fp16/bf16 (checkpoint)" in result.stdout
    assert "not loaded: lm_head tied to the embeddings 0.29 GiB" in result.stdout


@pytest.mark.parametrize("what", ["gpus", "instances", "precisions"])
def test_catalog_lists_with_sources_in_json(what):
    result = memplace("catalog", what, "-o", "json")
    records = json.loads(result.stdout)
    assert records and all(
        any(key.endswith("source") and value for key, value in r.items()) for r in records
    )


def test_catalog_table_lists_the_ids_estimate_takes():
    assert "H100-SXM5-80GB" in memplace("catalog", "gpus").stdout

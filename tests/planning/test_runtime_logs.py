"""memplace's memory model against published engine start-up logs (tests/data/runtime_logs).

Each log names a model whose config is at hand; the figures are read from the log lines
themselves. Weights must come within 3 % of what the engine reports loading, and the KV cache
within 2 % of the memory the engine gave it for the tokens it reports (per GPU under tensor
parallelism).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from memplace.planning.architecture import architecture_from_config
from memplace.planning.catalogue import default_catalogue
from memplace.planning.memory import kv_bytes_per_sequence, kv_share_per_gpu, weights_bytes

HERE = Path(__file__).parents[1]
LOGS = yaml.safe_load((HERE / "data" / "runtime_logs" / "logs.yaml").read_text())["logs"]
CONFIGS = HERE / "fixtures" / "configs"
GiB, MiB = 1 << 30, 1 << 20
WEIGHTS_TOLERANCE = 0.03
KV_TOLERANCE = 0.02


def logged_weights_bytes(entry: dict) -> float:
    """The weights one GPU holds, as the engine printed them."""
    text = entry["excerpt"]
    if entry["engine"] == "vllm":
        found = re.findall(r"(?:Model loading took|Loading model weights took) ([\d.]+) Gi?B", text)
        assert len(found) == 1, entry["id"]
        return float(found[0]) * GiB
    buffers = re.findall(r"model buffer size = +([\d.]+) MiB", text)
    if buffers:
        return sum(float(b) for b in buffers) * MiB
    found = re.findall(r"(?:file|model) size += ([\d.]+) GiB", text)
    assert len(found) == 1, entry["id"]
    return float(found[0]) * GiB


def logged_kv(entry: dict) -> tuple[float, int]:
    """(KV cache bytes, tokens) on one GPU, from vLLM's two KV lines."""
    memory = re.findall(r"Available KV cache memory: ([\d.]+) GiB", entry["excerpt"])
    tokens = re.findall(r"GPU KV cache size: ([\d,]+) tokens", entry["excerpt"])
    assert len(memory) == len(tokens) == 1, entry["id"]
    return float(memory[0]) * GiB, int(tokens[0].replace(",", ""))


def architecture(entry: dict):
    return architecture_from_config(json.loads((CONFIGS / entry["config"]).read_text()))


def cases(check: str) -> list:
    return [pytest.param(e, id=e["id"]) for e in LOGS if check in e["checks"]]


def test_the_collection_covers_formats_engines_and_an_moe():
    assert len(LOGS) >= 9
    assert {e["engine"] for e in LOGS} == {"vllm", "llamacpp"}
    assert {"bf16", "fp8", "int8", "int4"} <= {e["precision"] for e in LOGS}
    moe = [e for e in LOGS if architecture(e).experts]
    assert {c for e in moe for c in e["checks"]} == {"weights", "kv"}


@pytest.mark.parametrize("entry", LOGS, ids=[e["id"] for e in LOGS])
def test_every_log_names_its_source_and_model(entry):
    assert entry["source"].strip() and entry["model"].strip()
    assert (CONFIGS / entry["config"]).is_file()
    assert set(entry["checks"]) <= {"weights", "kv"} and entry["checks"]


@pytest.mark.parametrize("entry", cases("weights"))
def test_weights_match_what_the_engine_loaded(entry):
    precision = default_catalogue().precisions[entry["precision"]]
    estimate = weights_bytes(architecture(entry), precision, entry["engine"])
    estimate /= entry["tensor_parallel"]
    logged = logged_weights_bytes(entry)
    assert estimate == pytest.approx(logged, rel=WEIGHTS_TOLERANCE), (
        f"{entry['id']}: estimated {estimate / GiB:.3f} GiB, logged {logged / GiB:.3f} GiB"
    )


@pytest.mark.parametrize("entry", cases("kv"))
def test_kv_cache_matches_what_the_engine_allocated(entry):
    arch = architecture(entry)
    kv = default_catalogue().kv_dtypes[entry["kv_dtype"]]
    logged, tokens = logged_kv(entry)
    estimate = kv_bytes_per_sequence(arch, kv, tokens) * kv_share_per_gpu(
        arch, entry["tensor_parallel"]
    )
    assert estimate == pytest.approx(logged, rel=KV_TOLERANCE), (
        f"{entry['id']}: estimated {estimate / GiB:.3f} GiB for {tokens} tokens, "
        f"logged {logged / GiB:.3f} GiB"
    )


def test_gguf_layout_matters_for_llamacpp():
    """The vLLM layout (16-bit embeddings, 4.25-bit int4) misses GGUF files by more than the
    tolerance: llama.cpp must be sized as GGUF."""
    catalogue = default_catalogue()
    for entry in (e for e in LOGS if e["engine"] == "llamacpp" and e["precision"] != "bf16"):
        precision = catalogue.precisions[entry["precision"]]
        vllm_layout = weights_bytes(architecture(entry), precision, "vllm")
        logged = logged_weights_bytes(entry)
        assert abs(vllm_layout / logged - 1) > WEIGHTS_TOLERANCE, entry["id"]

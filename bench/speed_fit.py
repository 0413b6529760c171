"""Fit the speed roofline's efficiency table to the public measurements in tests/data/speed/.

    python bench/speed_fit.py            # print the fitted table
    python bench/speed_fit.py --write    # rewrite the fitted part of planning/data/efficiency.yaml

The dataset (``measurements.csv``, sources in ``sources.yaml``) holds one published measurement
per row. About 30 % of the rows is held out, whole published tables at a time (``HELD_OUT_TABLES``,
``held_out``): rows of one table share a GPU, model and setup and differ in prompt length or
batch, so a split by row put near-copies of one measurement on both sides and flattered the
held-out figures. The rest trains. For every key (engine, GPU architecture, weight format) the
fit chooses the bandwidth fraction and one compute fraction per batch regime (single sequence,
batched), and for every engine one per-step overhead, that minimise the summed squared log
error of the key's training rows (bandwidth on decode rows, compute on the regime's rows that
can tell compute apart from fixed overheads: ``_compute_rows``), each row predicted by the same
``StepCost.seconds`` formula ``estimate_speed`` uses. The search is a
grid (fractions 0.05-1.00 in steps of 0.01, coarse 0.05 first; step overheads 0-3 ms in
steps of 0.25 ms; per-request overheads, fitted only for engines with TTFT rows, 0-80 ms in
steps of 5 ms; per-sequence step overheads, fitted only for engines with batched decode rows,
0-0.5 ms in steps of 0.05 ms), two rounds of coordinate descent, so the result is exact and
repeatable: the test suite re-fits and compares with the committed table. A fraction no
training row constrains is written as null (the lookup falls back to the nearest entry).

This module is also what ``bench/speed_fidelity.py`` and ``tests/planning/test_efficiency.py``
import to load the dataset and predict its rows.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "operator"))

from memplace.planning.architecture import Architecture, architecture_from_config  # noqa: E402
from memplace.planning.catalogue import Gpu, default_catalogue, load_catalogue  # noqa: E402
from memplace.planning.efficiency import (  # noqa: E402
    Efficiency,
    EfficiencyTable,
    batch_regime,
    default_table,
    gpu_architecture,
)
from memplace.planning.latency import StepCost, decode_step, prefill_step  # noqa: E402

DATA = ROOT / "tests" / "data" / "speed"
FIXTURE_CONFIGS = ROOT / "tests" / "fixtures" / "configs"
TABLE = ROOT / "operator" / "memplace" / "planning" / "data" / "efficiency.yaml"
MARKER = "# --- fitted by bench/speed_fit.py: everything below is generated ---"

GRID = [round(0.05 + 0.01 * i, 2) for i in range(96)]  # 0.05 .. 1.00
COARSE = [g for g in GRID if round(g * 100) % 5 == 0]
OVERHEADS_S = [round(0.00025 * i, 5) for i in range(13)]  # 0 .. 3 ms
REQUEST_OVERHEADS_S = [round(0.005 * i, 3) for i in range(17)]  # 0 .. 80 ms
SEQUENCE_OVERHEADS_S = [round(0.00005 * i, 5) for i in range(11)]  # 0 .. 0.5 ms per sequence

DECODE_METRICS = {
    "decode_tokens_per_s_per_sequence",
    "tpot_ms",
    "output_tokens_per_s",
    "batch_latency_ms",
}
PREFILL_METRICS = {"prefill_tokens_per_s", "ttft_ms"}
PER_TOKEN_METRICS = {"decode_tokens_per_s_per_sequence", "tpot_ms", "batch_latency_ms"}
TTFT_PROMPT_SPAN = 2
"""Which rows may set a compute fraction. Prefill throughput and whole-run throughput always do.
Per-token decode rows never do: at the batches measured (1 to 64) a step's FLOPs take a few
percent of its memory time at the datasheet peak, so a compute fraction fitted on them stands
in for per-step costs the roofline lacks (other requests' prefills interleaved by continuous
batching, dequantisation in eager mode) and prefill estimates inherit it. TTFT rows do only
where the key's rows of that regime span prompts at least ``TTFT_PROMPT_SPAN`` times apart:
at one prompt length a TTFT cannot tell prefill compute from the per-request overhead (API,
tokenisation, the client), which differs between measurement setups (vLLM at 233 tokens on an
H100 59 ms, gpustack; 25 ms at ~200 tokens on an A100 40GB, ree2raz-inference-bench). Fitting
compute there drove vllm/hopper-hbm/bf16 compute_batched to 0.06, a prefill 15 times slower
than vLLM's. Unfitted fractions fall back to the nearest entry (efficiency.py)."""


ACCELMARK_SUITES = {"ACD": "suites A, C and D (Llama 3 / 3.1 8B)", "F": "suite F (Qwen2.5-0.5B)"}
HELD_OUT_TABLES = frozenset(
    {
        # llama.cpp: the two tables besides "Professional GPUs" (168 rows, which trains):
        # GPUs and an older llama.cpp build the training rows never saw, 68 of 236 rows.
        ("xiongjiedai-llama3", "LLaMA 3 / NVIDIA Gaming GPUs"),
        ("xiongjiedai-llama2", "LLaMA 2 / NVIDIA GPUs (Dec 2023)"),
        # vLLM, TGI and NIM (TensorRT-LLM) on the A10G at concurrency 4 (concurrency 1 trains)
        ("llmperf-a10g-llama3-8b", "Concurrency User 4"),
        # TensorRT-LLM: the A100 tables of performance.md and gpustack's trtllm-serve run
        ("trtllm-performance-md", "Peak Throughput / A100 GPUs (FP16)"),
        ("trtllm-performance-md", "Low Latency / A100 GPUs (FP16), TensorRT-LLM v0.5"),
        (
            "gpustack-qwen3-8b-h100-latency",
            "1. Choosing the Inference Engine / TensorRT-LLM (trtllm-serve)",
        ),
        # SGLang bf16 on the H100 (fp8 and AccelMark's A100 runs train)
        ("gpustack-qwen3-8b-h100-latency", "1. Choosing the Inference Engine / SGLang"),
        # vLLM: the RTX 4090 sweep, the A100 Marlin run, and AccelMark's first four vLLM GPUs
        # in sha256 order of "<tier>/<chip>, <runner>" (RTX 4090, T4, RTX A6000, RTX 5090)
        ("mushfiqrahman-vllm-4090", "Part 1 - Full Concurrency Sweep, 256 input -> 128 output"),
        ("ree2raz-inference-bench", "results/v2_a100_vllm_marlin.jsonl, vllm-v0.20.1"),
        *(
            ("accelmark", f"verified/{gpu}, nvidia_vllm_47f5d58e ({version}), {suite}")
            for gpu, version, suites in (
                ("nvidia_geforce_rtx_4090x1", "vLLM 0.7.3", ("ACD", "F")),
                ("tesla_t4x1", "vLLM 0.7.3", ("F",)),
                ("nvidia_rtx_a6000x1", "vLLM 0.7.3", ("ACD", "F")),
                ("nvidia_geforce_rtx_5090x1", "vLLM 0.19.1rc1.dev339+gedc364896", ("ACD", "F")),
            )
            for suite in (ACCELMARK_SUITES[s] for s in suites)
        ),
    }
)
"""The held-out tables, a fixed list. A hash split, the tables whose
sha256("source/table") is 0-2 mod 10, holds out 17 % of the rows (72 of 434) and no TGI or
SGLang row, and no hash of table names can come near 30 %: one llama.cpp table (xiongjiedai
"Professional GPUs", 168 rows, 39 % of the dataset) falls on one side whole. The list instead
holds out 128 of 434 rows, about a third of each engine's (llama.cpp 68 of 236, vLLM 47 of 158,
TensorRT-LLM 9 of 23, TGI and SGLang together 4 of 17) with decode rows for every engine; the
AccelMark GPUs follow the hash order, the other tables were picked for that coverage (whole GPUs
or setups), not by their errors. Where a source has several tables of one engine,
near-copies (the same GPU and model at another prompt length or batch) are one table in
measurements.csv, so they fall on one side together."""


def held_out(source: str, table: str) -> bool:
    """The fixed split: whole published tables, never single rows of one."""
    return (source, table) in HELD_OUT_TABLES


@dataclass(frozen=True)
class Row:
    id: str
    source: str
    table: str
    gpu: Gpu
    engine: str
    model: str
    arch: Architecture
    weight_format: str
    kv: str
    batch: int
    prompt_tokens: int
    output_tokens: int
    metric: str
    value: float
    held_out: bool

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.engine, gpu_architecture(self.gpu), self.weight_format)

    @property
    def regime(self) -> str:
        return batch_regime(self.batch)

    @property
    def context_tokens(self) -> int:
        """Mean context over the generated tokens: the prompt plus half the output."""
        return max(1, self.prompt_tokens + self.output_tokens // 2)


@dataclass(frozen=True)
class RowCost:
    """A row's step costs at the datasheet peak; ``predict`` turns them into its metric."""

    row: Row
    decode: StepCost
    prefill: StepCost
    prefill_batch: StepCost


def catalogue_with_dataset_gpus():
    """The shipped catalogue plus the dataset's extra GPUs (tests/data/speed/gpus.yaml)."""
    data = ROOT / "operator" / "memplace" / "planning" / "data"
    gpus = yaml.safe_load((data / "gpus.yaml").read_text())
    gpus["gpus"] += yaml.safe_load((DATA / "gpus.yaml").read_text())["gpus"]
    return load_catalogue(
        yaml.safe_dump(gpus),
        (data / "instances.yaml").read_text(),
        (data / "precisions.yaml").read_text(),
    )


def _config(name: str) -> dict:
    for folder in (DATA / "configs", FIXTURE_CONFIGS):
        if (folder / f"{name}.json").exists():
            return json.loads((folder / f"{name}.json").read_text())
    raise FileNotFoundError(f"no config for {name!r} in tests/data/speed/configs or fixtures")


def load_rows() -> list[Row]:
    catalogue = catalogue_with_dataset_gpus()
    archs: dict[str, Architecture] = {}
    rows = []
    with (DATA / "measurements.csv").open(newline="") as f:
        for r in csv.DictReader(f):
            model = r["model"]
            if model not in archs:
                archs[model] = architecture_from_config(_config(model))
            rows.append(
                Row(
                    id=r["id"],
                    source=r["source"],
                    table=r["table"],
                    gpu=catalogue.gpu(r["gpu"]),
                    engine=r["engine"],
                    model=model,
                    arch=archs[model],
                    weight_format=r["weight_format"],
                    kv=r["kv_dtype"],
                    batch=int(r["batch"]),
                    prompt_tokens=int(r["prompt_tokens"]),
                    output_tokens=int(r["output_tokens"]),
                    metric=r["metric"],
                    value=float(r["value"]),
                    held_out=held_out(r["source"], r["table"]),
                )
            )
    return rows


def row_cost(row: Row, table: EfficiencyTable | None = None) -> RowCost:
    table = table or default_table()
    catalogue = default_catalogue()
    fmt = table.formats[row.weight_format]
    precision = catalogue.precisions[fmt.precision]
    kv = catalogue.kv_dtypes[row.kv]
    common = dict(tier="gpu", gpu=row.gpu, fmt=fmt)
    decode = decode_step(
        row.arch, precision, kv, concurrency=row.batch, context_tokens=row.context_tokens, **common
    )
    prompt = max(1, row.prompt_tokens)
    prefill = prefill_step(row.arch, precision, prompt_tokens=prompt, **common)
    batch = prefill_step(row.arch, precision, prompt_tokens=prompt, sequences=row.batch, **common)
    return RowCost(row, decode, prefill, batch)


def predict(cost: RowCost, eff: Efficiency) -> float:
    """The row's metric as the roofline predicts it with these fractions."""
    row = cost.row
    tpot = cost.decode.seconds(eff)
    if row.metric == "decode_tokens_per_s_per_sequence":
        return 1 / tpot
    if row.metric == "tpot_ms":
        return tpot * 1e3
    if row.metric == "ttft_ms":
        return (eff.request_overhead_s + cost.prefill.seconds(eff) + tpot) * 1e3
    if row.metric == "prefill_tokens_per_s":
        return row.prompt_tokens / cost.prefill.seconds(eff)
    if row.metric == "output_tokens_per_s":
        run = cost.prefill_batch.seconds(eff) + row.output_tokens * tpot
        return row.batch * row.output_tokens / run
    if row.metric == "batch_latency_ms":
        # the batch's prefill yields each sequence's first token; the rest are decode steps
        return (cost.prefill_batch.seconds(eff) + (row.output_tokens - 1) * tpot) * 1e3
    raise ValueError(f"row {row.id}: unknown metric {row.metric!r}")


def log_error(cost: RowCost, eff: Efficiency) -> float:
    return math.log(predict(cost, eff) / cost.row.value)


def _sse(costs: list[RowCost], eff: Efficiency) -> float:
    return sum(log_error(c, eff) ** 2 for c in costs)


def _best(error) -> float | None:
    """The grid value minimising ``error`` (coarse, then fine); None if no value matters."""
    coarse = [(error(v), v) for v in COARSE]
    if max(e for e, _ in coarse) - min(e for e, _ in coarse) < 1e-12:
        return None
    centre = min(coarse)[1]
    fine = [v for v in GRID if abs(v - centre) <= 0.045]
    return min((error(v), v) for v in fine)[1]


TTFT_QUEUEING_CONCURRENCY = 8
"""Above this many concurrent requests, time to first token is mostly queueing behind other
requests' prefills, which the roofline does not model: vLLM on an RTX 4090 goes 63, 79, 155,
362, 667 ms at concurrency 4, 8, 16, 32, 48 (mushfiqrahman-vllm-4090), the knee after 8."""


def fitted_on(row: Row) -> bool:
    """Rows the fit learns from: all but TTFT under heavy load (reported, not fitted)."""
    return not (row.metric == "ttft_ms" and row.batch > TTFT_QUEUEING_CONCURRENCY)


RUN_PREFILL_SHARE = 1 / 3
"""A whole-run throughput row may set a compute fraction only where its prefills take at least
this share of the run at the default fractions (``prefill_share``). Below that the row measures
decode steps, and a compute fraction fitted on it stands in for per-step costs the roofline
lacks, as for per-token rows (PER_TOKEN_METRICS): AccelMark's vLLM 0.7.3 serves
Qwen2.5-0.5B on an RTX A6000 at 5.12 ms a token alone but 16.7 ms a token with 32 sequences in
flight (1,917 tok/s), where the step reads 1 GB of weights (1.3 ms at 768 GB/s) and 32
sequences add a few GFLOPs; that growth is the engine's per-sequence CPU work, and fitting
compute to it made vLLM's prefill up to seven times too slow. TensorRT-LLM's peak-throughput
runs with 2,048-token prompts (prefill a third to three fifths of the run) still set it."""


def prefill_share(cost: RowCost, eff: Efficiency) -> float:
    """The share of a whole-run throughput row's time its prefills take with these fractions."""
    prefill = cost.prefill_batch.seconds(eff)
    return prefill / (prefill + cost.row.output_tokens * cost.decode.seconds(eff))


def _compute_rows(costs: list[RowCost], defaults: Efficiency | None = None) -> list[RowCost]:
    """The rows of one key and regime that may set its compute fraction (see PER_TOKEN_METRICS
    and RUN_PREFILL_SHARE)."""
    if defaults is None:
        table = default_table()
        defaults = Efficiency(table.default_bandwidth, table.default_compute, 0.0, "defaults")
    ttft = [c.row.prompt_tokens for c in costs if c.row.metric == "ttft_ms"]
    spans = bool(ttft) and max(ttft) >= TTFT_PROMPT_SPAN * max(1, min(ttft))
    return [
        c
        for c in costs
        if c.row.metric not in PER_TOKEN_METRICS
        and (c.row.metric != "ttft_ms" or spans)
        and (
            c.row.metric != "output_tokens_per_s"
            or prefill_share(c, defaults) >= RUN_PREFILL_SHARE
        )
    ]


def _fit_key(
    costs: list[RowCost],
    overhead: float,
    request: float,
    defaults: Efficiency,
    sequence: float = 0.0,
):
    """Bandwidth on the key's decode rows, compute per regime on that regime's compute rows."""
    regimes = ("single", "batched")
    costs = [c for c in costs if fitted_on(c.row)]
    decode = [c for c in costs if c.row.metric in DECODE_METRICS]
    split = {r: _compute_rows([c for c in costs if c.row.regime == r], defaults) for r in regimes}
    bandwidth, compute = None, dict.fromkeys(regimes)

    def eff(b: float, computes: dict, r: str) -> Efficiency:
        return Efficiency(b, computes[r] or defaults.compute, overhead, "fit", request, sequence)

    def error(b: float, computes: dict, rows=None) -> float:
        rows = costs if rows is None else rows
        return sum(
            _sse([c for c in rows if c.row.regime == r], eff(b, computes, r)) for r in regimes
        )

    for _ in range(2):
        bandwidth = _best(lambda v: error(v, compute, decode))
        b = bandwidth if bandwidth is not None else defaults.bandwidth
        for r in regimes:
            if split[r]:
                compute[r] = _best(lambda v, r=r, b=b: error(b, compute | {r: v}, split[r]))
    b = bandwidth if bandwidth is not None else defaults.bandwidth
    return bandwidth, compute["single"], compute["batched"], error(b, compute)


def fit(rows: list[Row]) -> dict:
    """The fitted overheads and entries (what ``--write`` stores), from the training rows."""
    table = default_table()
    defaults = Efficiency(table.default_bandwidth, table.default_compute, 0.0, "defaults")
    train = [row_cost(r, table) for r in rows if not r.held_out and fitted_on(r)]
    by_engine: dict[str, dict[tuple, list[RowCost]]] = defaultdict(lambda: defaultdict(list))
    for c in train:
        by_engine[c.row.engine][c.row.key].append(c)
    overheads, requests, sequences, entries = {}, {}, {}, []
    for engine in sorted(by_engine):
        keys = by_engine[engine]
        has_ttft = any(c.row.metric == "ttft_ms" for v in keys.values() for c in v)
        batched = any(
            c.row.batch > 1 and c.row.metric in DECODE_METRICS for v in keys.values() for c in v
        )
        best = None
        for overhead in OVERHEADS_S:
            for request in REQUEST_OVERHEADS_S if has_ttft else [0.0]:
                for sequence in SEQUENCE_OVERHEADS_S if batched else [0.0]:
                    fitted = {
                        k: _fit_key(v, overhead, request, defaults, sequence)
                        for k, v in sorted(keys.items())
                    }
                    total = sum(f[3] for f in fitted.values())
                    if best is None or total < best[0] - 1e-12:
                        best = (total, overhead, request, sequence, fitted)
        _, overhead, request, sequence, fitted = best
        overheads[engine] = overhead
        if has_ttft:
            requests[engine] = request
        if batched:
            sequences[engine] = sequence
        for key, (bandwidth, single, batched, _) in fitted.items():
            entries.append(
                {
                    "engine": key[0],
                    "arch": key[1],
                    "format": key[2],
                    "bandwidth": bandwidth,
                    "compute_single": single,
                    "compute_batched": batched,
                    "rows": len(keys[key]),
                }
            )
    sources = sorted({c.row.source for c in train})
    return {
        "provenance": (
            f"fitted by bench/speed_fit.py on {len(train)} training rows of {len(rows)} "
            f"({sum(r.held_out for r in rows)} held out, "
            f"{sum(not fitted_on(r) for r in rows if not r.held_out)} TTFT rows under heavy "
            f"load not fitted) from {', '.join(sources)} "
            "(tests/data/speed/sources.yaml)"
        ),
        "step_overhead_s": overheads,
        "request_overhead_s": requests,
        "sequence_overhead_s": sequences,
        "entries": entries,
    }


def render(fitted: dict) -> str:
    """The generated tail of efficiency.yaml, one flow mapping per entry for easy review."""
    lines = [MARKER, f"provenance: {json.dumps(fitted['provenance'])}", "step_overhead_s:"]
    lines += [f"  {e}: {v}" for e, v in fitted["step_overhead_s"].items()]
    lines.append("request_overhead_s:")
    lines += [f"  {e}: {v}" for e, v in fitted["request_overhead_s"].items()]
    lines.append("sequence_overhead_s:")
    lines += [f"  {e}: {v}" for e, v in fitted["sequence_overhead_s"].items()]
    lines.append("entries:")
    for e in fitted["entries"]:
        cells = ", ".join(f"{k}: {'null' if v is None else v}" for k, v in e.items())
        lines.append(f"  - {{{cells}}}")
    return "\n".join(lines) + "\n"


def committed() -> dict:
    """The fitted part of the committed table, in ``fit``'s shape."""
    raw = yaml.safe_load(TABLE.read_text())
    keys = ("provenance", "step_overhead_s", "request_overhead_s", "sequence_overhead_s", "entries")
    return {k: raw[k] for k in keys}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="rewrite efficiency.yaml's tail")
    args = parser.parse_args()
    fitted = fit(load_rows())
    text = render(fitted)
    if args.write:
        head = TABLE.read_text().split(MARKER)[0]
        TABLE.write_text(head + text)
        default_table.cache_clear()
    print(text, end="")


if __name__ == "__main__":
    main()

"""How much of a GPU's peak each serving engine reaches: the roofline's efficiency table.

The roofline (``latency.py``) divides bytes by bandwidth and FLOPs by compute. What fraction of
the datasheet peak a real engine reaches depends on the engine's kernels, the GPU, the weight
format and the batch, so the fractions live in one small table keyed by

    (engine, GPU architecture, weight format) -> bandwidth
    (engine, GPU architecture, weight format, batch regime) -> compute

plus, per engine, one fixed per-step overhead (launches, sampling, scheduling), one per-step
overhead per sequence in the step (the engine's per-sequence CPU work: AccelMark's vLLM 0.7.3
decodes Qwen2.5-0.5B on an RTX A6000 at 5.12 ms a token alone, 16.7 ms with 32 sequences, where
the GPU work barely grows) and one fixed
per-request overhead before the first token (an API server's HTTP, tokenisation and admission:
vLLM's time to first token for a 233-token prompt on an H100 is 59 ms, of which prefill at the
roofline is a few ms). Bandwidth has no regime: a step reads its bytes the same way whatever the
batch (and so decode time never falls as the batch grows); what changes with the batch is the
matrix kernels' compute. The numbers are the output of ``bench/speed_fit.py``, fitted to the
training split of the public measurements in ``tests/data/speed/`` (each row cites its source);
``data/efficiency.yaml`` says on how many rows of which sources each entry was fitted, and a
test re-fits them so they cannot drift from the data. Nothing is fitted here: this module only
reads the table and answers lookups.

Why these keys. llama.cpp decoding Llama-3-8B Q4_K_M reads 4.9 GB per token; an RTX 3090
(936 GB/s) does it at 115 tokens/s, an A100 PCIe (1,935 GB/s) at only 141: the same engine
reaches about three quarters of GDDR bandwidth and half of HBM bandwidth, so the architecture
key tells HBM parts apart (``gpu_architecture``). Weight-only int4 kernels dequantise on the
fly, which costs compute that matters once a batch forms, so the format and the batch regime
are keys too.

A key without data falls back, and says so in ``Efficiency.source``: to the nearest entry,
nearness ranked as (same memory kind, the engine before its stand-ins, the regime asked before
the other, same format, same kernel kind (weight-only int4 or not), nearest generation, nearest
bits per weight). ``engine_fallbacks``
names each engine's stand-in (TGI, measured here on an A10G only, borrows vLLM's entries
elsewhere; llama.cpp has none: its kernels are its own). An entry fitted on fewer than
``min_rows`` training rows is kept in the table for review but never used: one or two rows
fit noise (a TTFT under load, a mean over a ShareGPT mix). Without any usable entry the global
defaults apply.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from types import MappingProxyType
from typing import Any, Literal

import yaml

from memplace.planning.catalogue import Gpu

__all__ = [
    "GENERATIONS",
    "Efficiency",
    "EfficiencyTable",
    "Regime",
    "WeightFormat",
    "batch_regime",
    "default_table",
    "gpu_architecture",
    "load_table",
]

Regime = Literal["single", "batched"]

GENERATIONS: tuple[tuple[tuple[int, int], str], ...] = (
    ((7, 0), "volta"),
    ((7, 5), "turing"),
    ((8, 0), "ampere"),
    ((8, 9), "ada"),
    ((9, 0), "hopper"),
    ((10, 0), "blackwell"),
)
"""First CUDA compute capability of each generation (NVIDIA CUDA C Programming Guide,
"Compute Capabilities": 7.0 Volta, 7.5 Turing, 8.x Ampere, 8.9 Ada, 9.0 Hopper, 10.x/12.x
Blackwell)."""


def gpu_architecture(gpu: Gpu) -> str:
    """The table's architecture key: generation, plus ``-hbm`` for HBM parts.

    NVIDIA's data-centre dies (compute capability 7.0, 8.0, 9.0 and 10.x: V100, A100, A30,
    H100, H200, B200, B300) carry HBM; the others (T4 7.5, A10/A40/RTX 3090 8.6, L4/L40S/RTX 4090
    8.9, RTX 5090 and RTX PRO 6000 12.0) carry GDDR (the datasheets of each).
    A100 PCIe -> "ampere-hbm", RTX 3090 -> "ampere", RTX 5090 -> "blackwell".
    """
    cc = gpu.compute_capability
    generation = GENERATIONS[0][1]
    for first, name in GENERATIONS:
        if cc >= first:
            generation = name
    hbm = cc[0] == 10 or (cc[0] < 10 and cc[1] == 0)
    return f"{generation}-hbm" if hbm else generation


def batch_regime(concurrency: int) -> Regime:
    """One sequence decodes with matrix-vector kernels; a batch with matrix-matrix ones."""
    return "single" if concurrency <= 1 else "batched"


@dataclass(frozen=True)
class WeightFormat:
    """A weight format as an engine loads it, e.g. GGUF Q4_K_M for llama.cpp's int4."""

    id: str
    precision: str
    """The catalogue precision it serves (memory, hardware support and quality come from it)."""
    bits_per_weight: float | None
    """Whole-model bits per parameter where the format quantises every tensor its own way
    (GGUF); None: the catalogue precision's own accounting applies."""
    source: str


@dataclass(frozen=True)
class Efficiency:
    """Fractions of peak one estimate uses, and which table entry (or fallback) gave them."""

    bandwidth: float
    compute: float
    step_overhead_s: float
    source: str
    request_overhead_s: float = 0.0
    """Added once to time-to-first-token."""
    sequence_overhead_s: float = 0.0
    """Added to every step once per sequence in it: an engine's per-sequence CPU work
    (scheduling, sampling, detokenising each sequence's token), which grows with the batch."""


@dataclass(frozen=True)
class _Entry:
    bandwidth: float | None
    compute_single: float | None
    compute_batched: float | None
    rows: int


@dataclass(frozen=True)
class EfficiencyTable:
    formats: Mapping[str, WeightFormat]
    engine_formats: Mapping[str, Mapping[str, str]]
    """engine -> precision id -> format id, where an engine serves a precision its own way."""
    engine_fallbacks: Mapping[str, str]
    step_overhead_s: Mapping[str, float]
    request_overhead_s: Mapping[str, float]
    sequence_overhead_s: Mapping[str, float]
    entries: Mapping[tuple[str, str, str], _Entry]
    default_bandwidth: float
    default_compute: float
    default_step_overhead_s: float
    min_rows: int
    provenance: str
    _looked_up: dict = field(default_factory=dict, init=False, repr=False, compare=False)
    """``lookup``'s answers by (engine, GPU architecture, format, regime): a pure function of
    the table, asked for every speed estimate (thousands per plan of a big cluster)."""

    def weight_format(self, engine: str, precision: str) -> WeightFormat:
        """The format ``engine`` serves ``precision`` in (llama.cpp int4 -> GGUF Q4_K_M)."""
        fid = self.engine_formats.get(engine, {}).get(precision, precision)
        return self.formats.get(fid) or WeightFormat(fid, precision, None, "catalogue precision")

    def overhead_s(self, engine: str) -> float:
        for e in self._engines(engine):
            if e in self.step_overhead_s:
                return self.step_overhead_s[e]
        return self.default_step_overhead_s

    def request_overhead(self, engine: str) -> float:
        for e in self._engines(engine):
            if e in self.request_overhead_s:
                return self.request_overhead_s[e]
        return 0.0

    def sequence_overhead(self, engine: str) -> float:
        for e in self._engines(engine):
            if e in self.sequence_overhead_s:
                return self.sequence_overhead_s[e]
        return 0.0

    def lookup(self, engine: str, gpu: Gpu, fmt: str, concurrency: int) -> Efficiency:
        """Bandwidth and compute fractions for one estimate, each from the nearest entry."""
        arch, regime = gpu_architecture(gpu), batch_regime(concurrency)
        key = (engine, arch, fmt, regime)
        found = self._looked_up.get(key)
        if found is None:
            found = self._looked_up[key] = self._lookup(engine, arch, fmt, regime)
        return found

    def _lookup(self, engine: str, arch: str, fmt: str, regime: str) -> Efficiency:
        bandwidth, b_src = self._field(("bandwidth",), engine, arch, fmt)
        other = "batched" if regime == "single" else "single"
        compute, c_src = self._field((f"compute_{regime}", f"compute_{other}"), engine, arch, fmt)
        wanted = f"{engine}/{arch}/{fmt}"
        if b_src == wanted and c_src == f"{wanted} compute_{regime}":
            source = f"fitted {c_src}"
        else:
            source = f"bandwidth from {b_src}, {c_src} (no fit for {wanted}/{regime})"
        return Efficiency(
            bandwidth,
            compute,
            self.overhead_s(engine),
            source,
            self.request_overhead(engine),
            self.sequence_overhead(engine),
        )

    def _engines(self, engine: str) -> list[str]:
        chain, seen = [engine], {engine}
        while chain[-1] in self.engine_fallbacks and self.engine_fallbacks[chain[-1]] not in seen:
            chain.append(self.engine_fallbacks[chain[-1]])
            seen.add(chain[-1])
        return chain

    def _field(self, names: tuple[str, ...], engine: str, arch: str, fmt: str):
        """The first of ``names`` some usable entry of the engine (or its stand-ins) has, from
        the nearest such entry; the global default if none has it."""
        engines = self._engines(engine)
        have = [
            (self._distance(k, engines, arch, fmt, rank), k, name, getattr(v, name))
            for k, v in self.entries.items()
            for rank, name in enumerate(names)
            if k[0] in engines and v.rows >= self.min_rows and getattr(v, name) is not None
        ]
        if have:
            _, key, name, value = min(have)
            label = "/".join(key)
            return value, label if name == "bandwidth" else f"{label} {name}"
        if names[0] == "bandwidth":
            return self.default_bandwidth, "the global default"
        return self.default_compute, "compute from the global default"

    def _distance(self, key, engines: list[str], arch: str, fmt: str, regime_rank: int):
        """Nearness of an entry: memory kind, engine, regime, format, kernel kind, generation,
        bits."""
        k_engine, k_arch, k_fmt = key
        generations = [name for _, name in GENERATIONS]
        return (
            k_arch.endswith("-hbm") != arch.endswith("-hbm"),
            engines.index(k_engine),
            regime_rank,
            k_fmt != fmt,
            _dequantises(self.weight_format("", k_fmt))
            != _dequantises(self.weight_format("", fmt)),
            abs(
                generations.index(k_arch.removesuffix("-hbm"))
                - generations.index(arch.removesuffix("-hbm"))
            ),
            abs(_bits(self.weight_format("", k_fmt)) - _bits(self.weight_format("", fmt))),
        )


def _dequantises(fmt: WeightFormat) -> bool:
    """Weight-only int4 (AWQ/GPTQ W4A16) unpacks its weights to 16 bits in the GEMM; bf16, fp16,
    fp8 and int8 run on the Tensor Cores as stored. The two kinds reach different fractions of
    the peak (vLLM on an L4: Qwen2.5-7B AWQ at 64 sequences takes 67.7 ms a token, the same
    model in bf16 75.7 ms for four times the bytes; ree2raz-inference-bench), so a format
    without an entry borrows one of its own kind before the nearest bits: fp8 on an L4 takes
    bf16's entry, not AWQ's."""
    return fmt.precision == "int4"


def _bits(fmt: WeightFormat) -> float:
    if fmt.bits_per_weight:
        return fmt.bits_per_weight
    return {"bf16": 16, "fp16": 16, "fp8": 8, "int8": 8}.get(fmt.precision, 4.25)


def load_table(text: str) -> EfficiencyTable:
    """Build the table from ``efficiency.yaml``'s text (tests pass their own)."""
    raw: Mapping[str, Any] = yaml.safe_load(text)
    formats = {
        f["id"]: WeightFormat(
            id=f["id"],
            precision=f["precision"],
            bits_per_weight=float(f["bits_per_weight"]) if f.get("bits_per_weight") else None,
            source=f["source"],
        )
        for f in raw["formats"]
    }
    entries = {}
    for e in raw["entries"]:
        key = (e["engine"], e["arch"], e["format"])
        if key in entries:
            raise ValueError(f"duplicate efficiency entry {key}")
        entries[key] = _Entry(
            e.get("bandwidth"),
            e.get("compute_single"),
            e.get("compute_batched"),
            int(e.get("rows", 0)),
        )
    d = raw["defaults"]
    return EfficiencyTable(
        formats=MappingProxyType(formats),
        engine_formats=MappingProxyType(
            {k: MappingProxyType(dict(v)) for k, v in raw["engine_formats"].items()}
        ),
        engine_fallbacks=MappingProxyType(dict(raw["engine_fallbacks"])),
        step_overhead_s=MappingProxyType(
            {k: float(v) for k, v in (raw.get("step_overhead_s") or {}).items()}
        ),
        request_overhead_s=MappingProxyType(
            {k: float(v) for k, v in (raw.get("request_overhead_s") or {}).items()}
        ),
        sequence_overhead_s=MappingProxyType(
            {k: float(v) for k, v in (raw.get("sequence_overhead_s") or {}).items()}
        ),
        entries=MappingProxyType(entries),
        default_bandwidth=float(d["bandwidth"]),
        default_compute=float(d["compute"]),
        default_step_overhead_s=float(d["step_overhead_s"]),
        min_rows=int(d["min_rows"]),
        provenance=str(raw.get("provenance", "")),
    )


@functools.cache
def default_table() -> EfficiencyTable:
    """The table shipped in ``memplace/planning/data/efficiency.yaml``, read once."""
    data = resources.files("memplace.planning") / "data" / "efficiency.yaml"
    return load_table(data.read_text(encoding="utf-8"))

"""``memplace estimate MODEL``: footprint and speed of one model, per precision.

MODEL is a config.json file (or a directory holding one), ``hf://org/name[@revision]`` or an
https URL. Without ``--precision`` it prints every precision; with ``--gpu`` it adds the
roofline speed and whether a replica fits that GPU. With ``--lora-rank`` it adds what vLLM
reserves for LoRA adapters (``--max-loras`` slots of that rank, rounded up to a rank vLLM
accepts, in every module it wraps) and their decode penalty (``memplace.planning.adapters``);
``--lora-targets`` sizes each adapter's own weights (default: every linear module).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from memplace.cli import UsageError
from memplace.planning import lora
from memplace.planning.adapters import ALL_TARGETS, Adapter, LoraSlots, shapes_from_config
from memplace.planning.architecture import ConfigError, architecture_from_config
from memplace.planning.catalogue import default_catalogue
from memplace.planning.feasibility import hardware_refusal
from memplace.planning.inventory import gib
from memplace.planning.latency import estimate_speed
from memplace.planning.memory import estimate_memory, offload_bytes_needed, usable_gpu_bytes
from memplace.planning.precision import PRECISION_ORDER

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "estimate",
        help="GPU memory and speed of a model at each precision",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("model", help="config.json path or directory, hf://org/name, or URL")
    parser.add_argument("--precision", help="one weight precision (default: all)")
    parser.add_argument("--kv-dtype", default="bf16", help="KV cache dtype (default bf16)")
    parser.add_argument("--context", type=_positive, default=8192, help="tokens per sequence")
    parser.add_argument("--concurrency", type=_positive, default=1, help="sequences in flight")
    parser.add_argument("--prompt", type=_positive, default=1024, help="prompt tokens (TTFT)")
    parser.add_argument("--gpu", help="GPU id from `memplace catalog gpus` (adds speed, fit)")
    parser.add_argument("--gpus-per-replica", type=_positive, default=1)
    parser.add_argument("--tier", choices=("gpu", "offload", "cpu"), default="gpu")
    parser.add_argument("--instance", help="instance type for the cpu tier's host figures")
    parser.add_argument("--lora-rank", type=_positive, help="LoRA adapters of this rank (vLLM)")
    parser.add_argument(
        "--max-loras", type=_positive, default=1, help="adapters resident on the GPU (default 1)"
    )
    parser.add_argument(
        "--lora-targets",
        type=_targets,
        default=ALL_TARGETS,
        help="comma-separated modules each adapter adapts (default: all linear modules)",
    )
    parser.add_argument("-o", "--output", choices=("table", "json"), default="table")
    parser.set_defaults(handler=run)


def _targets(text: str) -> tuple[str, ...]:
    from typing import get_args

    from memplace.api import LoraTarget

    names = tuple(t.strip() for t in text.split(",") if t.strip())
    unknown = [n for n in names if n not in get_args(LoraTarget)]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown module {', '.join(unknown) or '(none)'}; choose from "
            + ", ".join(get_args(LoraTarget))
        )
    return names


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be ≥ 1")
    return value


def load_config(model: str) -> dict:
    """config.json from a path, a directory, or a remote source (hf://, https://)."""
    if model.startswith(("hf://", "https://", "http://")):
        from memplace.operator.sources import SourceError, fetch_config

        try:
            return dict(fetch_config(model))
        except SourceError as error:
            raise UsageError(str(error)) from None
    path = Path(model)
    if path.is_dir():
        path = path / "config.json"
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise UsageError(
            f"{path}: no such file (give a config.json path or hf://org/name)"
        ) from None
    except json.JSONDecodeError as error:
        raise UsageError(f"{path}: not valid JSON: {error}") from None


def estimates(args: argparse.Namespace) -> list[dict]:
    """One row per precision, camelCase keys as in ``status.estimate``."""
    catalogue = default_catalogue()
    config = load_config(args.model)
    try:
        arch = architecture_from_config(config)
    except ConfigError as error:
        raise UsageError(str(error)) from None
    slots = None
    if args.lora_rank is not None:
        try:
            shapes = shapes_from_config(config)
        except (KeyError, TypeError, ValueError, ZeroDivisionError) as error:
            raise UsageError(f"config.json lacks the shapes LoRA needs: {error!r}") from None
        adapters = [
            Adapter(f"lora-{i}", args.lora_rank, args.lora_targets) for i in range(args.max_loras)
        ]
        slots = LoraSlots.plan("vllm", shapes, adapters, args.max_loras)
    gpu = _lookup(catalogue.gpu, args.gpu, "GPU") if args.gpu else None
    host = _lookup(catalogue.instance, args.instance, "instance") if args.instance else None
    kv = _lookup(catalogue.kv_dtypes.get, args.kv_dtype, "KV dtype")
    names = [args.precision] if args.precision else list(PRECISION_ORDER)
    rows = []
    for name in names:
        precision = _lookup(catalogue.precisions.get, name, "precision")
        memory = estimate_memory(
            arch,
            precision,
            kv,
            context_tokens=args.context,
            concurrency=args.concurrency,
            gpus_per_replica=args.gpus_per_replica,
        )
        if slots is not None:
            memory = lora.with_adapters(memory, slots, args.gpus_per_replica)
        row = {
            "precision": precision.id,
            "kvCacheDtype": kv.id,
            "parameters": arch.total_parameters,
            "activeParameters": arch.active_parameters,
            "weightsBytes": memory.weights_bytes,
            "kvCacheBytes": memory.kv_cache_bytes,
            "stateBytes": memory.state_bytes,
            "activationBytes": memory.activation_bytes,
            "overheadBytes": memory.overhead_bytes,
            "totalBytes": memory.total_bytes,
            "totalBytesPerGpu": memory.total_bytes_per_gpu,
        }
        if slots is not None:
            row |= {
                "adapterBytes": memory.adapter_bytes,
                "adapterBytesEach": slots.bytes_of(slots.adapters[0]),
                "adapterHostBytes": slots.host_bytes,
                "maxLoraRank": slots.max_rank,
            }
        if gpu is not None or args.tier == "cpu":
            row |= _speed(args, arch, precision, kv, gpu, host, memory, slots)
        rows.append(row)
    return rows


def _speed(args, arch, precision, kv, gpu, host, memory, slots=None) -> dict:
    """Speed and fit on ``gpu`` (or ``host`` for the cpu tier)."""
    if args.tier == "cpu":
        if host is None:
            raise UsageError("--tier cpu needs --instance (a CPU instance type) for its speed")
        offloaded, reason = 0, None
    else:
        reason = hardware_refusal(precision, kv, gpu)
        offloaded = 0
        usable = usable_gpu_bytes(gpu.memory_bytes)
        if args.tier == "offload":
            offloaded = offload_bytes_needed(memory, usable)
            if offloaded is None:
                reason = reason or "does not fit even with all weights offloaded"
        elif memory.total_bytes_per_gpu > usable:
            reason = reason or (
                f"needs {gib(memory.total_bytes_per_gpu)} per GPU > "
                f"{gib(usable)} usable on {gpu.id}"
            )
    speed = estimate_speed(
        arch,
        precision,
        kv,
        tier=args.tier,
        gpu=gpu,
        host=host,
        gpus_per_replica=args.gpus_per_replica,
        concurrency=args.concurrency,
        context_tokens=args.context,
        prompt_tokens=args.prompt,
        offloaded_bytes_per_gpu=offloaded or 0,
    )
    if slots is not None:
        speed = lora.slowed(speed, slots, memory.weights_bytes)
    return {
        "timeToFirstTokenMs": round(speed.time_to_first_token_ms, 2),
        "timePerOutputTokenMs": round(speed.time_per_output_token_ms, 2),
        "outputTokensPerSecondPerReplica": round(speed.output_tokens_per_second_per_replica, 1),
        "bound": speed.bound,
        "offloadBytesPerGpu": offloaded or 0,
        "fits": reason is None,
        "reason": reason,
    }


def _lookup(find, key: str, what: str):
    try:
        found = find(key)
    except KeyError as error:
        raise UsageError(error.args[0]) from None
    if found is None:
        raise UsageError(f"unknown {what} {key!r}; see `memplace catalog`")
    return found


def run(args: argparse.Namespace) -> int:
    rows = estimates(args)
    if args.output == "json":
        print(json.dumps(rows[0] if args.precision else rows, indent=2))
        return 0
    from rich import box
    from rich.console import Console
    from rich.table import Table

    gib = 2**30
    first = rows[0]
    title = (
        f"{args.model}: {first['parameters'] / 1e9:.2f} B parameters "
        f"({first['activeParameters'] / 1e9:.2f} B active), context {args.context}, "
        f"concurrency {args.concurrency}, {args.gpus_per_replica} GPU(s)"
        + (f" of {args.gpu}" if args.gpu else "")
    )
    table = Table(title=title, box=box.SIMPLE_HEAD)
    columns = [
        "precision",
        "weights GiB",
        "KV GiB",
        "state GiB",
        "act GiB",
        "overhead GiB",
        *(["LoRA GiB"] if "adapterBytes" in first else []),
        "total GiB",
        "per GPU GiB",
    ]
    speed = "timePerOutputTokenMs" in first
    if speed:
        columns += ["TTFT ms", "TPOT ms", "tok/s", "fits"]
    for column in columns:
        table.add_column(column, justify="left" if column in ("precision", "fits") else "right")
    for row in rows:
        cells = [f"{row['precision']}/{row['kvCacheDtype']}"] + [
            f"{row[key] / gib:.2f}"
            for key in (
                "weightsBytes",
                "kvCacheBytes",
                "stateBytes",
                "activationBytes",
                "overheadBytes",
                *(["adapterBytes"] if "adapterBytes" in row else []),
                "totalBytes",
                "totalBytesPerGpu",
            )
        ]
        if speed:
            cells += [
                f"{row['timeToFirstTokenMs']:.0f}",
                f"{row['timePerOutputTokenMs']:.1f}",
                f"{row['outputTokensPerSecondPerReplica']:.0f}",
                "yes" if row["fits"] else f"no: {row['reason']}",
            ]
        table.add_row(*cells)
    Console(width=200).print(table)
    return 0

"""``memplace estimate MODEL``: footprint and speed of one model, per precision.

MODEL is a config.json file (or a directory holding one), ``hf://org/name[@revision]`` or an
https URL. Without ``--precision`` it prints every precision; with ``--gpu`` it adds the
roofline speed and whether a replica fits that GPU. For a remote MODEL the checkpoint's own
safetensors headers are read too (``HF_ENDPOINT``, ``HF_TOKEN``): at the precision it is
published in, its bytes are the weights; offline, config.json sizes them, and it says so
(``weightsSource`` in each row).

For a model whose family is not supported, give ``--parameters`` (and ``--active-parameters``
for MoE) instead of MODEL, as ``spec.model.parameters`` does. ``--tier cpu --instance TYPE``
gives the CPU tier's speed, with memory in host RAM (no "per GPU").

With ``--lora-rank`` it adds what the engine holds for LoRA adapters (vLLM: ``--max-loras``
slots of that rank, rounded up to a rank vLLM accepts, in every module it wraps; llama.cpp and
TGI: the adapters themselves) and their decode penalty (``memplace.planning.adapters``);
``--lora-targets`` sizes each adapter's own weights (default: every linear module).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from memplace.cli import UsageError
from memplace.cli.units import parse_count, significant
from memplace.planning import lora
from memplace.planning.adapters import (
    ALL_TARGETS,
    Adapter,
    LoraSlots,
    adapter_refusal,
    shapes_from_architecture,
    shapes_from_config,
)
from memplace.planning.architecture import (
    ConfigError,
    architecture_from_config,
    architecture_from_parameters,
)
from memplace.planning.catalogue import default_catalogue
from memplace.planning.checkpoint import Checkpoint, native_precision, with_checkpoint
from memplace.planning.feasibility import hardware_refusal, tensor_parallel_refusal
from memplace.planning.latency import estimate_speed
from memplace.planning.memory import (
    estimate_memory,
    offload_bytes_needed,
    usable_gpu_bytes,
    weights_source,
)
from memplace.planning.precision import PRECISION_ORDER
from memplace.planning.quantities import gib

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "estimate",
        help="GPU memory and speed of a model at each precision",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "model", nargs="?", help="config.json path or directory, hf://org/name, or URL"
    )
    parser.add_argument(
        "--parameters",
        type=_count,
        metavar="N",
        help="total parameters (8.2e9, 8.2B) instead of a config.json; a dense shape is assumed",
    )
    parser.add_argument(
        "--active-parameters",
        type=_count,
        metavar="N",
        help="parameters active per token (MoE), with --parameters",
    )
    parser.add_argument("--precision", help="one weight precision (default: all)")
    parser.add_argument("--kv-dtype", default="bf16", help="KV cache dtype (default bf16)")
    parser.add_argument("--context", type=_positive, default=8192, help="tokens per sequence")
    parser.add_argument("--concurrency", type=_positive, default=1, help="sequences in flight")
    parser.add_argument("--prompt", type=_positive, default=1024, help="prompt tokens (TTFT)")
    parser.add_argument("--gpu", help="GPU id from `memplace catalog gpus` (adds speed, fit)")
    parser.add_argument("--gpus-per-replica", type=_positive, default=1)
    parser.add_argument("--tier", choices=("gpu", "offload", "cpu"), default="gpu")
    parser.add_argument("--instance", help="instance type for the cpu tier's host figures")
    parser.add_argument(
        "--engine",
        choices=("vllm", "llamacpp", "tgi", "custom"),
        default="vllm",
        help="serving engine: its efficiency-table entries shape the speed (default vllm)",
    )
    parser.add_argument("--lora-rank", type=_positive, help="LoRA adapters of this rank")
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


def _slots(args: argparse.Namespace, arch, config) -> LoraSlots | None:
    """``--max-loras`` adapters of ``--lora-rank`` on the base's module shapes, or None."""
    if args.lora_rank is None:
        return None
    try:
        shapes = shapes_from_config(config) if config else shapes_from_architecture(arch)
    except (KeyError, TypeError, ValueError, ZeroDivisionError):
        shapes = shapes_from_architecture(arch)
    given = args.lora_targets != ALL_TARGETS  # the default sizes every module, refuses none
    adapters = [
        Adapter(f"lora-{i}", args.lora_rank, args.lora_targets, targets_given=given)
        for i in range(args.max_loras)
    ]
    refused = adapter_refusal(adapters[0], args.engine, shapes)  # the planner's own check
    if refused is not None:
        raise UsageError(f"--lora-rank {args.lora_rank} on {args.engine}: {refused.reason}")
    return LoraSlots.plan(args.engine, shapes, adapters, args.max_loras)


def _count(text: str) -> int:
    try:
        return parse_count(text)
    except UsageError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


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


def load_checkpoint(model: str, config: dict) -> tuple[Checkpoint | None, str]:
    """The published checkpoint of a remote MODEL, and a line saying where weights come from."""
    if not model.startswith(("hf://", "https://", "http://")):
        return None, "weights from config.json (a local file: no checkpoint read)"
    from memplace.operator.sources import SourceError, fetch_checkpoint

    try:
        checkpoint = fetch_checkpoint(model, config)
    except SourceError as error:
        return None, f"weights from config.json: the checkpoint could not be read ({error})"
    if checkpoint is None:
        return None, "weights from config.json: the source has no safetensors checkpoint"
    return checkpoint, describe_checkpoint(checkpoint)


def describe_checkpoint(checkpoint: Checkpoint) -> str:
    """One line: what the headers held and what an engine loads of it."""
    fmt = checkpoint.format
    how = f"{fmt.precision}" + (f" ({fmt.method})" if fmt.method else "")
    groups = dict(checkpoint.loaded_bytes_by_group)
    apart = [f"{g} {groups[g] / 2**30:.2f} GiB" for g in ("vision", "audio") if g in groups]
    skipped = [f"{why} {size / 2**30:.2f} GiB" for why, size in checkpoint.skipped]
    return (
        f"weights from the checkpoint's headers: {how}, {checkpoint.tensors} tensors in "
        f"{checkpoint.shards} file(s), {checkpoint.stored_bytes / 2**30:.2f} GiB stored, "
        f"{checkpoint.loaded_bytes / 2**30:.2f} GiB loaded"
        + (f" (of which {', '.join(apart)})" if apart else "")
        + (f"; not loaded: {', '.join(skipped)}" if skipped else "")
        + (f"; revision {checkpoint.revision}" if checkpoint.revision else "")
    )


def estimates(args: argparse.Namespace) -> tuple[list[dict], str]:
    """One row per precision, camelCase keys as in ``status.estimate``; and where the weights
    came from, in a line."""
    catalogue = default_catalogue()
    arch, config = _architecture(args)
    if config is None:
        note, native = "weights from --parameters (a dense shape assumed)", None
    else:
        checkpoint, note = load_checkpoint(args.model, config)
        native = native_precision(config)
        if checkpoint is not None:
            arch, native = with_checkpoint(arch, checkpoint), checkpoint.native
    gpu = _lookup(catalogue.gpu, args.gpu, "GPU") if args.gpu else None
    host = _lookup(catalogue.instance, args.instance, "instance") if args.instance else None
    kv = _lookup(catalogue.kv_dtypes.get, args.kv_dtype, "KV dtype")
    names = [args.precision] if args.precision else list(PRECISION_ORDER)
    slots = _slots(args, arch, config)
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
            engine=args.engine,
        )
        if slots is not None:
            memory = lora.with_adapters(memory, slots, args.gpus_per_replica)
        row = {
            "precision": precision.id,
            "kvCacheDtype": kv.id,
            "parameters": arch.total_parameters,
            "activeParameters": arch.active_parameters,
            "weightsBytes": memory.weights_bytes,
            "weightsSource": weights_source(arch, precision, native),
            "sizingNotes": list(arch.notes),
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
    return rows, note


def _architecture(args: argparse.Namespace):
    """From MODEL's config.json, or from ``--parameters`` (the same stand-in the planner uses);
    with the config, None for ``--parameters``."""
    if (args.model is None) == (args.parameters is None):
        raise UsageError("give a MODEL (config.json, hf://org/name) or --parameters N, not both")
    if args.active_parameters is not None and args.parameters is None:
        raise UsageError("--active-parameters needs --parameters")
    try:
        if args.parameters is not None:
            return architecture_from_parameters(args.parameters, args.active_parameters), None
        config = load_config(args.model)
        return architecture_from_config(config), config
    except ConfigError as error:
        # The planner's hint names the ModelDeployment field; here the same lever is a flag.
        hint = str(error).replace(
            "spec.model.parameters (and activeParameters for MoE)",
            "--parameters N (and --active-parameters N for MoE)",
        )
        raise UsageError(hint) from None


def _speed(args, arch, precision, kv, gpu, host, memory, slots=None) -> dict:
    """Speed and fit on ``gpu`` (or ``host`` for the cpu tier)."""
    if args.tier == "cpu":
        if host is None:
            raise UsageError("--tier cpu needs --instance (a CPU instance type) for its speed")
        offloaded, reason = 0, None
    else:
        reason = hardware_refusal(precision, kv, gpu) or tensor_parallel_refusal(
            "vllm", arch, args.gpus_per_replica
        )
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
        engine=args.engine,
    )
    if slots is not None:
        speed = lora.slowed(speed, slots, memory.weights_bytes)
    return {
        "timeToFirstTokenMs": round(speed.time_to_first_token_ms, 2),
        "timePerOutputTokenMs": round(speed.time_per_output_token_ms, 2),
        "outputTokensPerSecondPerReplica": float(
            significant(speed.output_tokens_per_second_per_replica)
        ),
        "bound": speed.bound,
        "weightFormat": speed.weight_format,
        "efficiencySource": speed.efficiency_source,
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
    rows, note = estimates(args)
    if args.output == "json":
        print(json.dumps(rows[0] if args.precision else rows, indent=2))
        print(note, file=sys.stderr)
        return 0
    from rich import box
    from rich.console import Console
    from rich.table import Table

    gib = 2**30
    first = rows[0]
    on_cpu = args.tier == "cpu"  # no GPU: memory is host RAM per replica
    where = (
        f"on CPU ({args.instance})"
        if on_cpu
        else f"{args.gpus_per_replica} GPU(s)" + (f" of {args.gpu}" if args.gpu else "")
    )
    model = args.model or "assumed dense shape"
    title = (
        f"{model}: {first['parameters'] / 1e9:.2f} B parameters "
        f"({first['activeParameters'] / 1e9:.2f} B active), context {args.context}, "
        f"concurrency {args.concurrency}, {where}"
        + (f", served by {args.engine}" if args.gpu and not on_cpu else "")
    )
    table = Table(box=box.SIMPLE_HEAD)
    keys = {
        "weights GiB": "weightsBytes",
        "KV GiB": "kvCacheBytes",
        "state GiB": "stateBytes",
        "act GiB": "activationBytes",
        "overhead GiB": "overheadBytes",
        **({"LoRA GiB": "adapterBytes"} if "adapterBytes" in first else {}),
        "total GiB": "totalBytes",
    }
    if not on_cpu:
        keys["per GPU GiB"] = "totalBytesPerGpu"
    columns = ["precision", *keys]
    speed = "timePerOutputTokenMs" in first
    if speed:
        columns += ["TTFT ms", "TPOT ms", "tok/s", "fits"]
    for column in columns:
        table.add_column(column, justify="left" if column in ("precision", "fits") else "right")
    for row in rows:
        source = "" if row["weightsSource"] == "config" else f" ({row['weightsSource']})"
        cells = [f"{row['precision']}/{row['kvCacheDtype']}{source}"]
        cells += [f"{row[key] / gib:.2f}" for key in keys.values()]
        if speed:
            cells += [
                f"{row['timeToFirstTokenMs']:.0f}",
                f"{row['timePerOutputTokenMs']:.1f}",
                significant(row["outputTokensPerSecondPerReplica"]),
                "yes" if row["fits"] else f"no: {row['reason']}",
            ]
        table.add_row(*cells)
    console = Console(width=200)
    console.print(title, markup=False, highlight=False, soft_wrap=True)  # never cut or wrapped
    console.print(table)
    console.print(note, markup=False, highlight=False)
    for sizing in first["sizingNotes"]:
        console.print(f"note: {sizing}", markup=False, highlight=False)
    return 0

"""``memplace catalog gpus|instances|precisions``: what the planner knows, with sources.

The ids in the first column are what ``memplace estimate --gpu`` and PlacementPool
``spec.instanceType`` take.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import fields

from memplace.planning.catalogue import default_catalogue

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("catalog", help="list GPUs, instance types or precisions")
    parser.add_argument("what", choices=("gpus", "instances", "precisions"))
    parser.add_argument("-o", "--output", choices=("table", "json"), default="table")
    parser.set_defaults(handler=run)


def _rows(what: str) -> tuple[list[str], list[list[str]], list[dict]]:
    catalogue = default_catalogue()
    if what == "gpus":
        items = sorted(catalogue.gpus.values(), key=lambda g: g.id)
        header = [
            "id",
            "memory GiB",
            "bandwidth TB/s",
            "bf16 TF",
            "fp8 TF",
            "fp4 TF",
            "int8 TOPS",
            "compute",
            "host link",
        ]
        rows = [
            [
                g.id,
                f"{g.memory_bytes / 2**30:.0f}",
                f"{g.memory_bandwidth_bytes_per_s / 1e12:.2f}",
                *(
                    f"{g.dense_tflops[k]:.0f}" if k in g.dense_tflops else "-"
                    for k in ("bf16", "fp8", "fp4", "int8")
                ),
                "{}.{}".format(*g.compute_capability),
                g.host_link,
            ]
            for g in items
        ]
    elif what == "instances":
        items = sorted(catalogue.instances.values(), key=lambda i: (i.cloud, i.id))
        header = ["id", "cloud", "region", "GPUs", "vCPUs", "RAM GiB", "$/h", "price date"]
        rows = [
            [
                i.id,
                i.cloud,
                i.region,
                f"{i.gpu_count}× {i.gpu}" if i.gpu else "-",
                str(i.vcpus),
                f"{i.memory_bytes / 2**30:.0f}",
                f"{i.price_per_hour:.3f}",
                i.price_date,
            ]
            for i in items
        ]
    else:
        items = [catalogue.precisions[k] for k in catalogue.precisions]
        header = ["id", "bits/weight", "compute", "min compute", "quality loss", "vLLM"]
        rows = [
            [
                p.id,
                f"{p.bits_per_weight:.2f}",
                p.compute,
                "{}.{}".format(*p.min_compute_capability),
                f"{p.quality_loss:.1%}",
                p.vllm_quantization or "auto",
            ]
            for p in items
        ]
    return (
        header,
        rows,
        [_plain({f.name: getattr(item, f.name) for f in fields(item)}) for item in items],
    )


def _plain(value):
    if isinstance(value, dict) or hasattr(value, "items"):
        return {k: _plain(v) for k, v in dict(value).items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def run(args: argparse.Namespace) -> int:
    header, rows, records = _rows(args.what)
    if args.output == "json":
        print(json.dumps(records, indent=2))
        return 0
    from rich import box
    from rich.console import Console
    from rich.table import Table

    table = Table(
        box=box.SIMPLE_HEAD,
        title=f"memplace catalogue: {args.what} (sources: memplace catalog {args.what} -o json)",
    )
    for column in header:
        table.add_column(column)
    for row in rows:
        table.add_row(*row)
    Console(width=200).print(table)
    return 0

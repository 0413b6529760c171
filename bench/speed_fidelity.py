"""How close the speed model comes to published measurements, on fitted and held-out rows.

    python bench/speed_fidelity.py [--worst 10]

For every row of tests/data/speed/measurements.csv it predicts the published metric with the
shipped efficiency table (planning/data/efficiency.yaml, looked up exactly as estimate_speed
does) and prints, per engine and overall, the median and p90 of |predicted / measured - 1|
for decode rows (tokens/s per sequence, TPOT, run throughput, batch latency) and prefill
rows (prefill tokens/s, TTFT), split into the rows the table was fitted on and the held-out
tables (about 30 % of the rows, whole tables: speed_fit.HELD_OUT_TABLES), with TGI and SGLang
also pooled (each has too few rows alone). First it prints the split: per engine, held-out
tables, rows and decode rows (n) of the totals. The "former" columns use the constants the
roofline had before the table (bandwidth 0.75, compute 0.5, 1 ms per step, for every engine and
GPU). Then the worst held-out rows.
Target (issue 9): held-out decode median <= 15 %, p90 <= 35 %.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from speed_fit import DECODE_METRICS, load_rows, predict, row_cost  # noqa: E402

from memplace.planning.efficiency import Efficiency, default_table  # noqa: E402

FORMER = Efficiency(0.75, 0.5, 1e-3, "former constants")
POOLED = {"tgi+sglang": {"tgi", "sglang"}}
"""Engine groups printed besides each engine: TGI and SGLang have a handful of rows each."""


def _engine_groups(engines: set[str]) -> list[tuple[str, set[str] | None]]:
    """Each engine, the pooled groups, then all rows (None)."""
    return (
        [(e, {e}) for e in sorted(engines)]
        + [(name, members) for name, members in POOLED.items() if members <= engines]
        + [("overall", None)]
    )


def _split(rows) -> None:
    print(f"{'engine':<14}{'held-out tables':>17}{'rows':>12}{'decode rows (n)':>19}")
    for name, members in _engine_groups({r.engine for r in rows}):
        mine = [r for r in rows if members is None or r.engine in members]
        tables = {(r.source, r.table) for r in mine}
        held = {(r.source, r.table) for r in mine if r.held_out}
        decode = [r for r in mine if r.metric in DECODE_METRICS]
        cells = (
            f"{len(held):>3} of {len(tables):<3}",
            f"{sum(r.held_out for r in mine):>3} of {len(mine):<3}",
            f"{sum(r.held_out for r in decode):>3} of {len(decode):<3}",
        )
        print(f"{name:<14}{cells[0]:>17}{cells[1]:>12}{cells[2]:>19}")


def _p(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _cell(errors: list[float]) -> str:
    if not errors:
        return f"{'-':>5} {'-':>6} {'-':>6}"
    return f"{len(errors):>5} {statistics.median(errors):>6.1%} {_p(errors, 0.9):>6.1%}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worst", type=int, default=10, help="held-out rows to list")
    args = parser.parse_args()
    table = default_table()
    rows = load_rows()
    print("-- split (held out of all)")
    _split(rows)
    results = []
    for row in rows:
        cost = row_cost(row, table)
        eff = table.lookup(row.engine, row.gpu, row.weight_format, row.batch)
        pred = predict(cost, eff)
        former = predict(cost, FORMER)
        results.append((row, pred, abs(pred / row.value - 1), abs(former / row.value - 1), eff))

    kinds = (("decode", True), ("prefill/TTFT", False))
    print(
        f"{'engine':<14}{'rows':<14}{'':1}{'n':>5} {'median':>6} {'p90':>6}  | former: median p90"
    )
    for kind, is_decode in kinds:
        print(f"-- {kind}")
        for engine, members in _engine_groups({r[0].engine for r in results}):
            for split, held in (("fitted", False), ("held-out", True)):
                chosen = [
                    r
                    for r in results
                    if (members is None or r[0].engine in members)
                    and r[0].held_out == held
                    and (r[0].metric in DECODE_METRICS) == is_decode
                ]
                if not chosen:
                    continue
                new = [r[2] for r in chosen]
                old = [r[3] for r in chosen]
                print(
                    f"{engine:<14}{split:<14} {_cell(new)}  | "
                    f"{statistics.median(old):>13.1%} {_p(old, 0.9):>6.1%}"
                )
    print(f"-- worst {args.worst} held-out rows")
    held = sorted((r for r in results if r[0].held_out), key=lambda r: -r[2])
    for row, pred, err, _, eff in held[: args.worst]:
        print(
            f"{err:>6.1%}  {row.id:<34} {row.engine}/{row.gpu.id}/{row.weight_format}/b{row.batch}"
            f" {row.metric}={row.value:g} predicted {pred:.4g}  [{eff.source}]"
        )


if __name__ == "__main__":
    main()

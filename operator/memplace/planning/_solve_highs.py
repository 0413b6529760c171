"""``solve``'s HiGHS backend (``highspy``), the same two stages as a MILP.

Kept for ``bench/plan_quality.py``'s comparison with CP-SAT. Costs are doubles here, so the
tie-break term is scaled below the cost unit rather than multiplied above it, and the MIP gap
is set to zero so that "optimal" means what it says."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence

import highspy
import numpy as np

from .solve import Item, Room, Solution, model_parts


def _highs(seconds: float) -> highspy.Highs:
    h = highspy.Highs()
    h.silent()
    h.setOptionValue("time_limit", max(seconds, 0.01))
    h.setOptionValue("mip_rel_gap", 0.0)
    h.setOptionValue("mip_abs_gap", 0.0)
    h.setOptionValue("threads", 1)
    h.setOptionValue("random_seed", 0)
    return h


def _build(
    h: highspy.Highs, items: Sequence[Item], rows: list, objective: list[float]
) -> list[list[int]]:
    n = len(objective)
    h.addCols(
        n,
        np.array(objective),
        np.zeros(n),
        np.ones(n),
        0,
        np.array([], dtype=np.int32),
        np.array([], dtype=np.int32),
        np.array([]),
    )
    h.changeColsIntegrality(n, np.arange(n, dtype=np.int32), np.ones(n, dtype=np.uint8))
    ids, k = [], 0
    for it in items:
        ids.append(list(range(k, k + len(it.options))))
        k += len(it.options)
    for cols in ids:
        if len(cols) > 1:
            h.addRow(
                -highspy.kHighsInf,
                1.0,
                len(cols),
                np.array(cols, dtype=np.int32),
                np.ones(len(cols)),
            )
    for terms, bound in rows:
        idx = np.array([ids[i][j] for i, j, _ in terms], dtype=np.int32)
        h.addRow(
            -highspy.kHighsInf,
            float(bound),
            len(idx),
            idx,
            np.array([float(c) for _, _, c in terms]),
        )
    return ids


_OK = {highspy.HighsModelStatus.kOptimal: "optimal"}


def _status(h: highspy.Highs) -> str:
    status = _OK.get(h.getModelStatus())
    if status is not None:
        return status
    return "feasible" if h.getInfo().primal_solution_status == 2 else "none"


def solve_highs(
    items: Sequence[Item], rooms: Mapping[str, Room], threshold: float, time_limit_s: float
) -> Solution:
    start = time.perf_counter()
    weights, costs, ranks, rows = model_parts(items, rooms, threshold)
    stage1 = [-float(w) for w, it in zip(weights, items, strict=True) for _ in it.options]
    h = _highs(time_limit_s / 2)
    ids = _build(h, items, rows, stage1)
    h.run()
    status = _status(h)
    if status == "none":
        return Solution([None] * len(items), "none", seconds=time.perf_counter() - start)
    values = np.array(h.getSolution().col_value)
    best = round(-float(np.dot(stage1, values)))
    tie = float(sum(max(r, default=0) for r in ranks) + 1)
    stage2 = [
        costs[i][j] + ranks[i][j] / tie
        for i, it in enumerate(items)
        for j in range(len(it.options))
    ]
    h2 = _highs(time_limit_s - (time.perf_counter() - start))
    _build(h2, items, rows, stage2)
    n = len(stage1)
    h2.addRow(
        float(best) - 0.5, highspy.kHighsInf, n, np.arange(n, dtype=np.int32), -np.array(stage1)
    )
    h2.setSolution(_solution(values))
    h2.run()
    status2 = _status(h2)
    if status2 != "none":
        values = np.array(h2.getSolution().col_value)
    chosen: list[int | None] = []
    for cols in ids:
        chosen.append(next((j for j, c in enumerate(cols) if values[c] > 0.5), None))
    final = "optimal" if status == "optimal" and status2 == "optimal" else "feasible"
    return Solution(
        chosen,
        final,
        placed_weight=best,
        seconds=time.perf_counter() - start,
        stats={"variables": n, "rows": len(rows)},
    )


def _solution(values: np.ndarray) -> highspy.HighsSolution:
    s = highspy.HighsSolution()
    s.col_value = list(values)
    s.value_valid = True
    return s

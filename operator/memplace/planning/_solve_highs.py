"""``solve``'s HiGHS backend (``highspy``): the same stages as a MILP on one ``Highs`` model.

A variable per (item, option): how many of the item's ``count`` deployments take it (a
Boolean for a single deployment).

Each stage sets the objective, solves from the previous answer, then bounds that objective by
its optimum for the stages after it. One thread, a fixed seed and a zero MIP gap, so that
"optimal" means what it says and the same input gives the same answer."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence

import highspy
import numpy as np
from highspy._core import _Highs

from .solve import (
    STAGE_SHARES,
    Item,
    Room,
    Solution,
    cell_values,
    chosen_from,
    first_fit,
    model_parts,
    polish,
)

_INF = highspy.kHighsInf


def _model(cells: list, rows: list, items: Sequence[Item]) -> tuple[_Highs, list]:
    # the bare model class: ``highspy.Highs()`` enables callbacks before any option can be
    # set, which prints HiGHS's banner on stdout (ERGO-Code/HiGHS#1702: output_flag must be
    # false before any other call), and ``memplace plan -o json`` must print only JSON
    h = _Highs()
    h.setOptionValue("output_flag", False)
    for name, value in (
        ("mip_rel_gap", 0.0),
        ("mip_abs_gap", 0.0),
        ("threads", 1),
        ("random_seed", 0),
    ):
        h.setOptionValue(name, value)
    n = len(cells)
    empty = np.array([], dtype=np.int32)
    upper = np.array([float(items[i].count) for i, _ in cells])
    h.addCols(n, np.zeros(n), np.zeros(n), upper, 0, empty, empty, np.array([]))
    h.changeColsIntegrality(n, np.arange(n, dtype=np.int32), np.ones(n, dtype=np.uint8))
    per_item: dict[int, list[int]] = {}
    for k, (i, _) in enumerate(cells):
        per_item.setdefault(i, []).append(k)
    placing = []  # per item: its row, or its one column, to make "all of it placed" a bound
    for i, ks in per_item.items():
        count = float(items[i].count)
        if len(ks) > 1:
            placing.append((i, "row", h.getNumRow(), count))
            h.addRow(-_INF, count, len(ks), np.array(ks, dtype=np.int32), np.ones(len(ks)))
        else:
            placing.append((i, "col", ks[0], count))
    at = {cell: k for k, cell in enumerate(cells)}
    for terms, bound in rows:
        idx = np.array([at[(i, j)] for i, j, _ in terms], dtype=np.int32)
        values = np.array([float(c) for _, _, c in terms])
        h.addRow(-_INF, float(bound), len(idx), idx, values)
    return h, placing


def _keep_placed(
    h: _Highs, items: Sequence[Item], cells: list, values: np.ndarray, placing: list
) -> None:
    """Stage 1's answer kept for the stages after it, per priority level: a level placed in
    full as "each of its items places all of its count" (bounds, which the LP handles far
    better than one dense row of weights), any other as "at least as many of it placed". With
    level weights (``level_weights``) that is the same as keeping the placed weight when stage
    1 is optimal; at a time limit it keeps each level's count of the best answer so far."""
    got: dict[int, float] = {}
    cols: dict[int, list[int]] = {}
    for k, (i, _) in enumerate(cells):
        level = items[i].priority
        got[level] = got.get(level, 0.0) + float(values[k])
        cols.setdefault(level, []).append(k)
    total: dict[int, int] = {}
    for item in items:
        if item.options:
            total[item.priority] = total.get(item.priority, 0) + item.count
    for level, ks in sorted(cols.items()):
        placed = round(got[level])
        if placed >= total[level]:
            for i, kind, at, count in placing:
                if items[i].priority != level:
                    continue
                if kind == "row":
                    h.changeRowBounds(at, count, count)
                else:
                    h.changeColBounds(at, count, count)
        elif placed > 0:
            h.addRow(float(placed), _INF, len(ks), np.array(ks, dtype=np.int32), np.ones(len(ks)))


def _status(h: _Highs) -> str:
    if h.getModelStatus() == highspy.HighsModelStatus.kOptimal:
        return "optimal"
    return "feasible" if h.getInfo().primal_solution_status == 2 else "none"


def solve_highs(
    items: Sequence[Item], rooms: Mapping[str, Room], threshold: float, time_limit_s: float
) -> Solution:
    start = time.perf_counter()
    cells, stages, rows = model_parts(items, rooms, threshold)
    n = len(cells)
    h, placing = _model(cells, rows, items)
    every = np.arange(n, dtype=np.int32)
    start_from = first_fit(items, rows)
    values = np.array(cell_values(items, cells, start_from), dtype=float)
    first = values
    objectives = [
        np.array(coefficients, dtype=float) * (-1.0 if sense > 0 else 1.0)  # HiGHS minimises
        for _, coefficients, sense in stages
    ]
    status, placed, solved = "optimal", 0, False
    for s, (name, _, _) in enumerate(stages):
        share = STAGE_SHARES[name]
        c = objectives[s]
        h.changeColsCost(n, every, c)
        left = time_limit_s - (time.perf_counter() - start)
        h.setOptionValue(
            "time_limit",
            max(0.01, left if s == len(stages) - 1 else min(left, time_limit_s * share)),
        )
        solution = highspy.HighsSolution()  # the last answer (first fit before stage 1)
        solution.col_value = list(values)
        solution.value_valid = True
        h.setSolution(solution)
        h.run()
        stage_status = _status(h)
        if stage_status == "none":
            if not solved:  # nothing in time: the caller falls back to greedy, saying so
                return Solution([None] * len(items), "none", seconds=time.perf_counter() - start)
            status = "feasible"  # keep the previous stage's answer
            break
        values = np.array(h.getSolution().col_value)
        solved = True
        if stage_status != "optimal":
            status = "feasible"
        value = round(float(np.dot(c, values)))
        placed = -value if s == 0 else placed
        if name == "placed":
            _keep_placed(h, items, cells, values, placing)
        else:
            h.addRow(-_INF, value + 0.5, n, every, c)  # keep this stage's optimum
    if status != "optimal":
        # a best-so-far at the time limit is never worse than the first fit it started from
        # (HiGHS may not take that start: it must be feasible for every row, stage rows too)
        def score(v: np.ndarray) -> tuple:
            return tuple(round(float(np.dot(c, v))) for c in objectives)

        if score(first) < score(values):
            values = first
        placed = -score(values)[0] if objectives and stages[0][0] == "placed" else 0
    chosen = chosen_from(items, cells, [round(float(v)) for v in values])
    chosen = polish(items, rows, chosen, threshold)
    return Solution(
        chosen, status, placed, time.perf_counter() - start, {"variables": n, "rows": len(rows)}
    )

"""``solve``'s OR-Tools CP-SAT backend: a Boolean per (deployment, option), or an integer
0..count per (aggregated item, option), one stage per objective. One worker with a fixed
seed, so the same input gives the same answer."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence

from ortools.sat.python import cp_model

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

_STATUS = {cp_model.OPTIMAL: "optimal", cp_model.FEASIBLE: "feasible"}


def _run(model: cp_model.CpModel, seconds: float) -> tuple[cp_model.CpSolver, str]:
    solver = cp_model.CpSolver()
    solver.parameters.max_time_in_seconds = max(seconds, 0.01)
    solver.parameters.num_workers = 1
    solver.parameters.random_seed = 0
    code = solver.solve(model)
    return solver, _STATUS.get(code, "none")


def solve_cpsat(
    items: Sequence[Item], rooms: Mapping[str, Room], threshold: float, time_limit_s: float
) -> Solution:
    start = time.perf_counter()
    cells, stages, rows = model_parts(items, rooms, threshold)
    model = cp_model.CpModel()
    x = [
        model.new_bool_var(f"x{k}")
        if items[i].count == 1
        else model.new_int_var(0, items[i].count, f"x{k}")
        for k, (i, _) in enumerate(cells)
    ]
    per_item: dict[int, list] = {}
    for (i, _), v in zip(cells, x, strict=True):
        per_item.setdefault(i, []).append(v)
    for i, vs in per_item.items():
        if len(vs) > 1:
            if items[i].count == 1:
                model.add_at_most_one(vs)
            else:
                model.add(sum(vs) <= items[i].count)
    at = {cell: k for k, cell in enumerate(cells)}
    for terms, bound in rows:
        model.add(sum(c * x[at[(i, j)]] for i, j, c in terms) <= bound)
    start_from = first_fit(items, rows)
    for v, hint in zip(x, cell_values(items, cells, start_from), strict=True):
        model.add_hint(v, hint)
    solver, status, placed = None, "optimal", 0
    for n, (name, coefficients, sense) in enumerate(stages):
        share = STAGE_SHARES[name]
        objective = sum(c * v for c, v in zip(coefficients, x, strict=True) if c)
        if sense > 0:
            model.maximize(objective)
        else:
            model.minimize(objective)
        left = time_limit_s - (time.perf_counter() - start)
        found, stage_status = _run(
            model, left if n == len(stages) - 1 else min(left, time_limit_s * share)
        )
        if stage_status == "none":
            if solver is None:
                return Solution([None] * len(items), "none", seconds=time.perf_counter() - start)
            status = "feasible"  # keep the previous stage's answer
            break
        solver = found
        if stage_status != "optimal":
            status = "feasible"
        value = round(solver.objective_value)
        placed = value if n == 0 else placed
        model.clear_objective()
        model.add(objective >= value if sense > 0 else objective <= value)
        model.clear_hints()
        for v in x:
            model.add_hint(v, solver.value(v))
    assert solver is not None
    chosen = chosen_from(items, cells, [solver.value(v) for v in x])
    chosen = polish(items, rows, chosen, threshold)
    return Solution(
        chosen,
        status,
        placed,
        time.perf_counter() - start,
        {"variables": len(cells), "rows": len(rows)},
    )

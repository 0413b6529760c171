"""``solve``'s OR-Tools CP-SAT backend: Booleans per (deployment, option), two stages.

One worker, so the same input gives the same answer (CP-SAT's parallel portfolio may return a
different one of several optima); the tie-break term makes the optimum unique anyway."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence

from ortools.sat.python import cp_model

from .solve import Item, Room, Solution, model_parts

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
    weights, costs, ranks, rows = model_parts(items, rooms, threshold)
    model = cp_model.CpModel()
    x = [
        [model.new_bool_var(f"x{i}_{j}") for j in range(len(it.options))]
        for i, it in enumerate(items)
    ]
    for xs in x:
        if len(xs) > 1:
            model.add_at_most_one(xs)
    for terms, bound in rows:
        model.add(sum(c * x[i][j] for i, j, c in terms) <= bound)
    cells = [(i, j) for i in range(len(items)) for j in range(len(x[i]))]
    stages = [  # (coefficient per cell, sense): placed, then cost, then the tie-break
        ([weights[i] for i, _ in cells], +1),
        ([costs[i][j] for i, j in cells], -1),
        ([ranks[i][j] for i, j in cells], -1),
    ]
    shares = (0.4, 0.4, 0.2)
    solver = None
    status = "optimal"
    best_placed = 0
    for n, ((coefficients, sense), share) in enumerate(zip(stages, shares, strict=True)):
        objective = sum(c * x[i][j] for c, (i, j) in zip(coefficients, cells, strict=True) if c)
        if sense > 0:
            model.maximize(objective)
        else:
            model.minimize(objective)
        left = time_limit_s - (time.perf_counter() - start)
        budget = left if n == len(stages) - 1 else min(left, time_limit_s * share)
        found, stage_status = _run(model, budget)
        if stage_status == "none":
            if solver is None:
                return Solution([None] * len(items), "none", seconds=time.perf_counter() - start)
            status = "feasible"  # keep the previous stage's answer
            break
        solver = found
        if stage_status != "optimal":
            status = "feasible"
        value = round(solver.objective_value)
        if n == 0:
            best_placed = value
        model.clear_objective()
        model.add(objective >= value if sense > 0 else objective <= value)
        model.clear_hints()
        for i, j in cells:
            model.add_hint(x[i][j], solver.boolean_value(x[i][j]))
    assert solver is not None
    chosen: list[int | None] = [
        next((j for j, v in enumerate(xs) if solver.boolean_value(v)), None) for xs in x
    ]
    return Solution(
        chosen,
        status,
        placed_weight=best_placed,
        seconds=time.perf_counter() - start,
        stats={"variables": len(cells), "rows": len(rows)},
    )

"""The batch as one optimisation problem: one option per deployment, over plain data.

The planner (``batch``) hands over, per deployment, its distinct feasible options (pool, GPUs
per replica, bytes per GPU, replicas, cost: the planner's own candidates, one per room key) and,
per pool, its free room. This module chooses, lexicographically:

1. the most placed, weighted by priority so that a deployment is never left out to place any
   number of lower-priority ones (level weights: each exceeds the total of all levels below);
2. then the fewest moves of running placements to options that save no more than the
   consolidation threshold (so such a move happens only when stage 1 needs it, to place
   something; and only to place something of higher priority: ``_only_for_higher`` solves
   again with the running placements of a level held where a move of theirs placed nothing
   above it);
3. then the least total cost per hour;
4. then the planner's own rank order as the tie-break (it prefers the running placement at
   equal cost), earlier deployments first, so that equal-cost answers are the same every run:
   ``polish`` moves each deployment, earliest first, to its best-ranked option of no higher
   cost and no more moves that the room left allows (a MIP stage for this tie-break alone took
   longer than the three before it and rarely proved its optimum in the time limit; after a
   best-so-far at the time limit the same pass is a descent that only lowers the cost).

Deployments of one spec are one item with a count (``aggregate``): the same optima with a
variable per (spec, option) instead of per (deployment, option).

Capacity is modelled per pool by necessary conditions that are linear (exact node packing
would need a variable per node): whole GPUs (slots, for CPU nodes) in total; for every
GPUs-per-replica size G, replicas of ≥ G GPUs against the pool's G-sized holes
(Σ floor(free_n ÷ G) over nodes); in pools that share GPUs, bytes. The planner then packs
the chosen options onto nodes with its own ``PoolCapacity`` and repairs any the packing
refuses, so the conditions being necessary rather than exact never yields a wrong plan.

Each stage is solved with the earlier stages' optima as constraints (and the previous answer
as the starting solution; stage 1's optimum is kept per priority level, as bounds where a
level is placed in full: ``_solve_highs._keep_placed``).
Solvers: HiGHS (``highspy``, the default: on one core its LP bounds prove these
knapsack-like models optimal in a fraction of a second, where CP-SAT with one worker often
cannot close the gap in minutes; see ``bench/plan_quality.py``) and OR-Tools CP-SAT, kept
for that comparison. Each stage runs under its share of ``time_limit_s``
(``STAGE_SHARES``); a stage that ends without proof keeps its best solution
(``Solution.optimal`` False); none at all gives ``Solution.status`` "none" and the caller
falls back to greedy.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "SOLVERS",
    "STAGE_SHARES",
    "Item",
    "Option",
    "Room",
    "Solution",
    "aggregate",
    "cell_values",
    "chosen_from",
    "level_weights",
    "solve",
    "spread",
]

SOLVERS = ("highs", "cp-sat")
STAGE_SHARES = {"placed": 0.5, "moves": 0.1, "cost": 0.4}
"""The share of the time limit each stage may use (the last takes what is left)."""
OPTIONS_KEPT = 16
"""Options per deployment given to the solver, cheapest first (after dropping dominated ones,
``batch``): with ~50 pools a deployment has hundreds, and the 17th-cheapest way to place one
deployment almost never decides a batch; the cap keeps 1,000 deployments under a second."""

COST_UNIT = 1e-4
"""Costs are integers in units of $0.0001/h: the precision the plans print (``per_hour``
rounded to 4 digits), so the exact integer objective sees every difference a plan shows."""


@dataclass(frozen=True, slots=True)
class Option:
    """One distinct way to place one deployment."""

    key: int
    """The caller's handle (the planner's ranking index)."""
    pool: str
    slots: int
    """GPUs per replica (1 for a CPU replica: it takes a node)."""
    resident: int
    """Bytes per GPU it holds (what a shared GPU gives up)."""
    replicas: int
    cost: float
    """$/h for all its replicas."""
    shared: bool = False
    """Packed by bytes on a shared GPU (a one-GPU replica in a pool that shares GPUs)."""


@dataclass(frozen=True)
class Item:
    """One deployment: its options in the planner's rank order, its priority, and which option
    (if any) is its running placement."""

    options: tuple[Option, ...]
    priority: int = 0
    current: int | None = None
    """Position in ``options`` of the running placement."""
    count: int = 1
    """How many interchangeable deployments this item stands for (``aggregate``): the backends
    choose how many of them take each option, an integer in 0..count per option."""


@dataclass(frozen=True)
class Room:
    """One pool's free room: untouched GPUs (slots) per node, and free bytes when it shares."""

    whole_per_node: tuple[int, ...]
    free_bytes: int = 0
    gpu_bytes: int = 0
    """Usable bytes of one GPU (what a whole-GPU replica takes from a shared pool's bytes)."""

    def holes(self, size: int) -> int:
        return sum(k // size for k in self.whole_per_node)


@dataclass
class Solution:
    chosen: list[int | None]
    """Per item, the position of its chosen option, or None (left out)."""
    status: str
    """``optimal``, ``feasible`` (time limit: best so far) or ``none`` (nothing in time)."""
    placed_weight: int = 0
    seconds: float = 0.0
    stats: dict = field(default_factory=dict)

    @property
    def optimal(self) -> bool:
        return self.status == "optimal"


def aggregate(items: Sequence[Item]) -> tuple[list[Item], list[list[int]]]:
    """Items that are interchangeable (the same options, the same priority, no running
    placement: deployments of one spec in a fleet) as one item with their ``count``, in the
    order of each group's first member; and per group its members' positions, in order.

    The capacity rows, the placed weight and the cost see only how many of a group take each
    option, so the aggregated model has the same optima as the one with a variable per
    deployment, with a variable per (spec, option) instead: at 1,000 deployments of ~120 specs
    ~1,900 integers instead of ~15,600 Booleans, and none of the symmetry between
    interchangeable deployments that keeps a MIP solver from proving the optimum."""
    groups: list[Item] = []
    members: list[list[int]] = []
    at: dict[tuple, int] = {}
    by_id: dict[tuple[int, int], int] = {}  # the same tuple object: no need to hash its options
    for i, item in enumerate(items):
        if item.current is not None or item.count != 1:
            groups.append(item)
            members.append([i])
            continue
        g = by_id.get((id(item.options), item.priority))
        if g is None:
            key = (item.options, item.priority)
            g = at.get(key)
            if g is None:
                g = at[key] = len(groups)
                groups.append(item)
                members.append([])
            by_id[(id(item.options), item.priority)] = g
        members[g].append(i)
    return [
        item if len(m) == 1 else Item(item.options, item.priority, None, len(m))
        for item, m in zip(groups, members, strict=True)
    ], members


def spread(
    chosen: Sequence[int | None], groups: Sequence[Item], members: Sequence[list[int]]
) -> list[int | None]:
    """The per-deployment answer of an aggregated one (``aggregate``; ``chosen`` per group: an
    option, or with ``Item.count`` > 1 a tuple of how many take each option): within a group,
    the earlier deployment (the caller's order) gets the better-ranked option, and those left
    out are the last."""
    out: list[int | None] = [None] * sum(len(m) for m in members)
    for g, (item, m) in enumerate(zip(groups, members, strict=True)):
        picked = chosen[g]
        if item.count == 1 or picked is None or isinstance(picked, int):
            out[m[0]] = picked  # type: ignore[assignment]
            continue
        order = [j for j, n in enumerate(picked) for _ in range(n)]
        for i, j in zip(m, order, strict=False):
            out[i] = j
    return out


def level_weights(priorities: Sequence[int]) -> dict[int, int]:
    """Per priority, the weight of placing one deployment of it: 1 for the lowest level, and
    each level above one more than everything below it together, so that placing one of a
    higher priority always outweighs placing all of the lower ones."""
    weights: dict[int, int] = {}
    below = 0
    for level in sorted(set(priorities)):
        weights[level] = below + 1
        below += weights[level] * sum(1 for p in priorities if p == level)
    return weights


def _weights(items: Sequence[Item]) -> dict[int, int]:
    return level_weights([item.priority for item in items for _ in range(item.count)])


def _costs_and_moves(
    items: Sequence[Item], threshold: float
) -> tuple[list[list[int]], list[list[int]]]:
    """Per item and option: its integer cost, and 1 where taking it moves a running placement
    for a saving of no more than the threshold (a move only stage 1 may ask for)."""
    costs = [[round(o.cost / COST_UNIT) for o in item.options] for item in items]
    moves = []
    for item, row in zip(items, costs, strict=True):
        if item.current is None:
            moves.append([0] * len(row))
            continue
        limit = row[item.current] * (1.0 - threshold)
        moves.append([int(j != item.current and c >= limit) for j, c in enumerate(row)])
    return costs, moves


def _rows(items: Sequence[Item], rooms: Mapping[str, Room], labelled: bool = False) -> list:
    """The capacity rows: ([(item, option, coefficient)], bound), and the pool when
    ``labelled``; options in pools not in ``rooms`` take no row (nothing constrains them)."""
    rows = []
    by_pool: dict[str, list[tuple[int, int, Option]]] = {}
    for i, item in enumerate(items):
        for j, o in enumerate(item.options):
            by_pool.setdefault(o.pool, []).append((i, j, o))
    for pool, members in sorted(by_pool.items()):
        room = rooms.get(pool)
        if room is None:
            continue
        label = (pool,) if labelled else ()
        whole = [(i, j, o) for i, j, o in members if not o.shared]
        shared = [(i, j, o) for i, j, o in members if o.shared]
        if shared:
            terms = [(i, j, o.replicas * o.resident) for i, j, o in shared]
            terms += [(i, j, o.replicas * o.slots * room.gpu_bytes) for i, j, o in whole]
            rows.append((terms, room.free_bytes, *label))
        if whole:
            terms = [(i, j, o.replicas * o.slots) for i, j, o in whole]
            rows.append((terms, sum(room.whole_per_node), *label))
            for size in sorted({o.slots for _, _, o in whole if o.slots > 1}):
                terms = [
                    (i, j, o.replicas * (o.slots // size)) for i, j, o in whole if o.slots >= size
                ]
                rows.append((terms, room.holes(size), *label))
    return rows


def solve(
    items: Sequence[Item],
    rooms: Mapping[str, Room],
    *,
    threshold: float = 0.10,
    time_limit_s: float = 1.0,
    solver: str = "highs",
) -> Solution:
    """Choose one option (or none) per item, lexicographically as the module says, then hold
    running placements to the priority rule (``_only_for_higher``)."""
    if solver not in SOLVERS:
        raise ValueError(f"unknown solver {solver!r}; choose from {', '.join(SOLVERS)}")
    found = _solve(items, rooms, threshold, time_limit_s, solver)
    return _only_for_higher(items, rooms, threshold, time_limit_s, solver, found)


def _only_for_higher(
    items: Sequence[Item],
    rooms: Mapping[str, Room],
    threshold: float,
    time_limit_s: float,
    solver: str,
    found: Solution,
) -> Solution:
    """A running placement moves (for no more than the threshold's saving) only to place
    something of HIGHER priority: the placed weight of stage 1 would also move one to place
    another of its own priority. Per priority level whose running placements moved, lowest
    first: solve again with those placements held to their own option (and the moves that pass
    the threshold); when that places as many of every higher level, the held answer is the one
    (the moves placed only equals or lower ones). One more solve per such level, and only when a
    running placement moved: a rare event in a batch."""
    if found.status == "none":
        return found
    _, moves = _costs_and_moves(items, threshold)

    def moved_levels(chosen: Sequence[int | None]) -> list[int]:
        return sorted(
            {
                item.priority
                for item, j, row in zip(items, chosen, moves, strict=True)
                if item.current is not None and j is not None and row[j]
            }
        )

    held: set[int] = set()  # positions of the items held so far
    for level in moved_levels(found.chosen):
        hold = held | {
            i for i, item in enumerate(items) if item.current is not None and item.priority == level
        }
        keep = [
            [j for j in range(len(item.options)) if i not in hold or not moves[i][j]]
            for i, item in enumerate(items)
        ]
        narrowed = [
            Item(
                tuple(item.options[j] for j in kept),
                item.priority,
                kept.index(item.current) if item.current is not None else None,
                item.count,
            )
            for item, kept in zip(items, keep, strict=True)
        ]
        again = _solve(narrowed, rooms, threshold, time_limit_s, solver)
        if again.status == "none":
            continue
        chosen = [
            None if j is None else kept[j] for j, kept in zip(again.chosen, keep, strict=True)
        ]
        if _placed_above(items, chosen, level) >= _placed_above(items, found.chosen, level):
            held = hold
            found = Solution(
                chosen,
                again.status,
                again.placed_weight,
                found.seconds + again.seconds,
                {**again.stats, "held_levels": sorted({items[i].priority for i in hold})},
            )
        else:
            found.seconds += again.seconds
    return found


def _placed_above(items: Sequence[Item], chosen: Sequence[int | None], level: int) -> list[int]:
    """Per priority above ``level``, highest first, how many are placed (compared as a list:
    lexicographically, as stage 1 weighs them)."""
    above = sorted({item.priority for item in items if item.priority > level}, reverse=True)
    return [
        sum(
            item.count
            for item, j in zip(items, chosen, strict=True)
            if item.priority == p and j is not None
        )
        for p in above
    ]


def _solve(
    items: Sequence[Item],
    rooms: Mapping[str, Room],
    threshold: float,
    time_limit_s: float,
    solver: str,
) -> Solution:
    """Choose one option (or none) per item, lexicographically as the module says.

    Only the contested part goes to the solver: a pool whose rows hold even if every item took
    its largest option there (``_contested``) constrains nothing, and an item whose options are
    all in such pools takes its own best option (most placed, fewest moves, least cost, rank:
    the stages restricted to it). The objectives add up over independent parts, so the
    lexicographic optimum of the whole is the union of the parts' optima."""
    start = time.perf_counter()
    groups, members = aggregate(items)
    contested = _contested(groups, rooms)
    hard = [g for g, item in enumerate(groups) if any(o.pool in contested for o in item.options)]
    chosen: list = [_own_best(item, threshold) for item in groups]
    for g, item in enumerate(groups):
        if item.count > 1 and chosen[g] is not None:  # all of them: their pools have room
            chosen[g] = tuple(item.count if j == chosen[g] else 0 for j in range(len(item.options)))
    stats = {"deployments": len(items), "groups": len(groups)}
    if not hard:
        stats.update(variables=0, rows=0, contested=0)
        return Solution(
            spread(chosen, groups, members),
            "optimal",
            seconds=time.perf_counter() - start,
            stats=stats,
        )
    sub = [groups[g] for g in hard]
    sub_rooms = {pool: room for pool, room in rooms.items() if pool in contested}
    if solver == "cp-sat":
        from ._solve_cpsat import solve_cpsat as backend
    else:
        from ._solve_highs import solve_highs as backend
    found = backend(sub, sub_rooms, threshold, time_limit_s)
    seconds = time.perf_counter() - start
    if found.status == "none":
        return Solution([None] * len(items), "none", seconds=seconds)
    for g, j in zip(hard, found.chosen, strict=True):
        chosen[g] = j
    stats.update(found.stats)
    stats["contested"] = sum(groups[g].count for g in hard)
    return Solution(
        spread(chosen, groups, members), found.status, found.placed_weight, seconds, stats
    )


def _contested(items: Sequence[Item], rooms: Mapping[str, Room]) -> set[str]:
    """The pools where the items' largest options together (times each item's count) could
    exceed a capacity row."""
    out = set()
    for terms, bound, pool in _rows(items, rooms, labelled=True):
        largest: dict[int, int] = {}
        for i, _, c in terms:
            c *= items[i].count
            if c > largest.get(i, 0):
                largest[i] = c
        if sum(largest.values()) > bound:
            out.add(pool)
    return out


def _own_best(item: Item, threshold: float) -> int | None:
    """An item's best option alone: fewest moves, least cost, then rank."""
    if not item.options:
        return None
    (costs,), (moves,) = _costs_and_moves([item], threshold)
    return min(range(len(item.options)), key=lambda j: (moves[j], costs[j], j))


Stage = tuple[str, list[int], int]
"""One objective: its name, a coefficient per cell (item, option) in ``cells`` order, and +1
to maximise or -1 to minimise."""


def model_parts(
    items: Sequence[Item], rooms: Mapping[str, Room], threshold: float
) -> tuple[list[tuple[int, int]], list[Stage], list]:
    """What both backends build from: the cells (item, option), the objectives in
    lexicographic order (placed by priority, moves below the threshold, cost) and the capacity
    rows (the tie-break is ``polish``'s)."""
    weights = _weights(items)
    costs, moves = _costs_and_moves(items, threshold)
    cells = [(i, j) for i, item in enumerate(items) for j in range(len(item.options))]
    stages: list[Stage] = [
        ("placed", [weights[items[i].priority] for i, _ in cells], +1),
        ("moves", [moves[i][j] for i, j in cells], -1),
        ("cost", [costs[i][j] for i, j in cells], -1),
    ]
    stages = [stage for stage in stages if any(stage[1])]  # e.g. no running placement
    return cells, stages, _rows(items, rooms)


def first_fit(items: Sequence[Item], rows: list) -> list:
    """A starting solution: the items by priority, then smallest first (the share of the
    pools' room their leanest option takes), each of an item's ``count`` deployments taking
    its first (cheapest) option that the capacity rows still allow. Smallest first is the
    classic greedy for placing the most; the solver starts from it and improves the cost, and
    a best-so-far at the time limit is never worse than it. Per item, the option taken (None:
    none), or with ``count`` > 1 how many take each option."""
    used = [0] * len(rows)
    by_cell = _by_cell(rows)

    def share(i: int, j: int) -> float:
        return sum(c / max(rows[r][1], 1) for r, c in by_cell.get((i, j), ()))

    lean = [
        min(range(len(item.options)), key=lambda j, i=i: (share(i, j), j), default=None)
        for i, item in enumerate(items)
    ]
    order = sorted(
        range(len(items)),
        key=lambda i: (-items[i].priority, share(i, lean[i]) if lean[i] is not None else 0, i),
    )
    chosen: list = [None] * len(items)
    for i in order:
        if lean[i] is None:
            continue
        taken = [0] * len(items[i].options)
        j = 0
        for _ in range(items[i].count):
            while j < len(taken):
                need = by_cell.get((i, j), ())
                if all(used[r] + c <= rows[r][1] for r, c in need):
                    for r, c in need:
                        used[r] += c
                    taken[j] += 1
                    break
                j += 1  # full for this one: full for the rest of the item too
        chosen[i] = _answer(items[i], taken)
    return chosen


def chosen_from(
    items: Sequence[Item], cells: Sequence[tuple[int, int]], taken: Sequence[int]
) -> list:
    """A backend's answer per item: the option taken (None: none), or with ``count`` > 1 how
    many take each option, from each cell's (item, option) value."""
    chosen: list = [(0,) * len(item.options) if item.count > 1 else None for item in items]
    for (i, j), n in zip(cells, taken, strict=True):
        if n <= 0:
            continue
        if items[i].count > 1:
            counts = list(chosen[i])
            counts[j] = n
            chosen[i] = tuple(counts)
        else:
            chosen[i] = j
    return chosen


def polish(items: Sequence[Item], rows: list, chosen: Sequence, threshold: float) -> list:
    """The tie-break (stage 4): per item in order, each of its deployments moved to its
    best-ranked option of no higher (integer) cost and no more moves, where the capacity rows'
    room left allows it. Placed weight and moves stay what the solver made them, and so does
    the cost of a proven optimum; a best-so-far at the time limit only gets cheaper."""
    costs, moves = _costs_and_moves(items, threshold)
    by_cell = _by_cell(rows)
    counts = [counts_of(item, picked) for item, picked in zip(items, chosen, strict=True)]
    used = [0] * len(rows)
    for i, row in enumerate(counts):
        for j, n in enumerate(row):
            for r, c in by_cell.get((i, j), ()) if n else ():
                used[r] += c * n
    for i, row in enumerate(counts):
        for better in range(len(row)):
            for worse in range(len(row) - 1, better, -1):
                if not row[worse]:
                    continue
                if costs[i][better] > costs[i][worse] or moves[i][better] > moves[i][worse]:
                    continue
                delta: dict[int, int] = {}
                for r, c in by_cell.get((i, better), ()):
                    delta[r] = delta.get(r, 0) + c
                for r, c in by_cell.get((i, worse), ()):
                    delta[r] = delta.get(r, 0) - c
                while row[worse] and all(used[r] + d <= rows[r][1] for r, d in delta.items()):
                    for r, d in delta.items():
                        used[r] += d
                    row[worse] -= 1
                    row[better] += 1
    return [_answer(item, row) for item, row in zip(items, counts, strict=True)]


def _by_cell(rows: list) -> dict[tuple[int, int], list[tuple[int, int]]]:
    """Per cell (item, option), the capacity rows it takes from and how much: (row, amount)."""
    by_cell: dict[tuple[int, int], list[tuple[int, int]]] = {}
    for r, (terms, _) in enumerate(rows):
        for i, j, c in terms:
            by_cell.setdefault((i, j), []).append((r, c))
    return by_cell


def counts_of(item: Item, picked: Any) -> list[int]:
    """How many of ``item``'s deployments take each option in one answer's entry ``picked``
    (an option, None, or with ``count`` > 1 a tuple of counts)."""
    if isinstance(picked, tuple):
        return list(picked)
    return [int(j == picked) for j in range(len(item.options))]


def cell_values(
    items: Sequence[Item], cells: Sequence[tuple[int, int]], chosen: Sequence
) -> list[int]:
    """An answer as each cell's (item, option) value: what a backend starts from."""
    counts = [counts_of(item, picked) for item, picked in zip(items, chosen, strict=True)]
    return [counts[i][j] for i, j in cells]


def _answer(item: Item, counts: Sequence[int]) -> Any:
    """The answer's entry for ``item`` from its per-option counts (``counts_of`` inverted)."""
    if item.count > 1:
        return tuple(counts)
    return next((j for j, n in enumerate(counts) if n), None)

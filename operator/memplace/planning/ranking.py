"""Step 4, score: the feasible candidates in ``choose``'s rank order, memoised per spec.

``_static`` is everything about a deployment that free capacity does not change: its
requirements, its ranking (``_rank``: cheapest first, ``choose.candidate_rank_key``'s
tie-breaks), the variants refused, the naive plan's cost and the funnel. One ranking serves
every deployment with the same spec; ``_Ranked`` keeps its candidates as rows of ints and
builds an ``Evaluation`` only for one a plan shows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from memplace.api import (
    Alternative,
)

from . import lora
from .choose import (
    Ranking,
    candidate_rank_key,
    candidate_room_key,
    index,
)
from .evaluation import _evaluate, _evaluate_all, _Row
from .feasibility import (
    Evaluation,
    Requirements,
)
from .grouping import _Base, _bases, _Shape
from .inventory import Cluster
from .memo import STATICS_KEPT, _arch_id, _table
from .plan_types import DeploymentRequest
from .sizing import _applicable, _variants


class _Ranked(Sequence[Evaluation]):
    """A ranking's candidates as light rows; ``[i]`` builds the i-th's ``Evaluation`` (the
    nearest misses come built, with their rejections). Nothing built is kept: the planner asks
    for the few it shows."""

    __slots__ = ("bases", "rows", "requirements", "misses")

    def __init__(
        self, bases: list[_Base], rows: list[_Row], r: Requirements, misses: dict[int, Evaluation]
    ) -> None:
        self.bases, self.rows, self.requirements, self.misses = bases, rows, r, misses

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> Evaluation:  # type: ignore[override]
        at, replicas, for_demand = self.rows[i]
        missed = self.misses.get(at)
        if missed is not None:
            return missed
        return _evaluate(self.bases[at], self.requirements, replicas, for_demand, check=False)

    def candidate_at(self, i: int) -> Any:
        """``self[i].candidate`` without building the Evaluation."""
        return self.bases[self.rows[i][0]].candidate

    def per_hour_at(self, i: int) -> float:
        """``self[i].per_hour`` without building the Evaluation (the same product)."""
        at, replicas, _ = self.rows[i]
        return self.bases[at].per_replica * replicas


def _rank(
    shape: _Shape,
    feasible: list[_Row],
    missed: dict[int, Evaluation],
    r: Requirements,
    current: Any,
) -> Ranking:
    """``choose``'s ranking, on rows: the order is ``candidate_rank_key``'s."""
    bases = shape.bases
    rows = list(feasible)
    rows += [(at, e.replicas, e.replicas_for_demand) for at, e in missed.items()]

    def key(row: _Row) -> tuple:
        b, replicas = bases[row[0]], row[1]
        if current is not None:
            return candidate_rank_key(b.candidate, b.per_replica * replicas, replicas, current)
        c = b.candidate  # the same key, its spec-independent part built once per candidate
        return (round(b.per_replica * replicas, 6), replicas * max(c.gpus, 1)) + b.rank_tail

    rows.sort(key=key)
    facts = []
    nearest = {}
    for i, (at, replicas, _) in enumerate(rows):
        b = bases[at]
        pool = b.candidate.pool.name
        if at in missed:
            facts.append((pool, None))
            nearest[pool] = i
        else:
            facts.append((pool, candidate_room_key(b.candidate, b.resident, replicas)))
    return index(_Ranked(bases, rows, r, missed), facts, nearest)


@dataclass
class _Static:
    """Everything about a deployment that free capacity does not change (memoised)."""

    requirements: Requirements
    ranking: Ranking
    variant_problems: list[Alternative]
    naive_per_hour: float | None
    steps: list[tuple[str, int]]


def _static(request: DeploymentRequest, cluster: Cluster) -> _Static:
    variants, problems = _variants(request, cluster.memo)
    r = lora.requirements(Requirements.from_spec(request.spec), request.lora)
    current = request.current
    current_key = (
        None
        if current is None
        else (
            current.pool,
            current.precision,
            current.kv_cache_dtype,
            current.tier,
            current.gpus_per_replica,
            current.variant,
        )
    )
    applicable = _applicable(variants, r.engine, request.calibration, cluster.memo)
    memo = _table(cluster.memo, "static", STATICS_KEPT)
    key = (
        tuple(
            (v.name, _arch_id(cluster.memo, v.architecture), v.quality_loss, v.native)
            for v in variants
        ),
        r,
        current_key,
        applicable,
        tuple((p.variant, p.code, p.reason) for p in problems),  # variants refused, listed
    )
    found = memo.get(key)
    if found is None:
        shape = _bases(variants, r, cluster, applicable)
        kept, misses, steps, naive = _evaluate_all(shape, r)
        ranking = _rank(shape, kept, misses, r, current)
        found = memo.put(key, _Static(r, ranking, problems, naive, steps))
    return found

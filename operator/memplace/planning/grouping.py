"""Step 2, candidates with their estimates, in groups: what the checks and ranking read.

``_bases`` enumerates every candidate (``candidates``) of a shape (sizes, context,
concurrency, prompt, engine) and gives each its memory (``memory``), speed (``latency``), cost
per replica (``cost``) and fit, once per shape (memoised) and once per hardware class of pools
(``_hardware``: pools equal in GPU, host, price and room per GPU give equal figures). Groups
(``_Group``) share pool, tier, precision, KV dtype and variant, so every check before memory is
asked once per group; ``_Judged`` holds the groups' verdicts per ``Requirements.group_rules``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from . import lora
from .calibration import (
    Factors,
    ProfileKey,
    calibrate_memory,
    calibrate_speed,
)
from .candidates import Variant, enumerate_candidates
from .choose import rank_tail
from .cost import replica_cost
from .feasibility import (
    TENSOR_PARALLEL_ENGINES,
    Requirements,
    engine_refusal,
    excess,
    hardware_refusal,
    host_share,
    memory_need,
    spec_allows,
    tensor_parallel_refusal,
    within_budget,
)
from .inventory import Cluster
from .latency import estimate_speed
from .memo import ESTIMATES_KEPT, JUDGED_KEPT, SHAPES_KEPT, _arch_id, _fingerprint, _Lru, _table
from .memory import estimate_memory, offload_bytes_needed
from .precision import quality_loss
from .sizing import _Applicable


class _Base:
    """What a candidate is whatever the SLO, budget, demand and allow-lists: memoised per
    (sizes, context, concurrency, prompt) on the cluster and shared by every deployment with
    that shape. What its group shares (pool, tier, precision, KV dtype, variant) is on the
    ``_Group``."""

    __slots__ = (
        "candidate",
        "memory",
        "speed",
        "offload",
        "resident",
        "host_bytes",
        "per_replica",
        "fits",
        "excess",
        "tps",
        "ttft",
        "tpot",
        "order",
        "index",
        "loss",
        "rank_tail",
    )


class _Group:
    """Candidates that share pool, tier, precision, KV dtype, variant and the engines that refuse
    their tensor-parallel size (``TENSOR_PARALLEL_ENGINES``; none for most shapes), and so every
    fact the checks before memory read: computed once here, not per member."""

    __slots__ = (
        "pool",
        "tier",
        "precision",
        "kv",
        "native",
        "tp_refused",
        "loss",
        "hardware_ok",
        "plain",
        "members",
        "_engine_ok",
    )

    def __init__(self, c: Any, loss: float, tp_refused: frozenset[str]) -> None:
        self.pool, self.tier = c.pool.name, c.tier
        self.precision, self.kv, self.native = c.precision.id, c.kv.id, c.variant.native
        self.tp_refused = tp_refused
        self.loss = loss
        self.hardware_ok = hardware_refusal(c.precision, c.kv, c.pool.gpu) is None
        self.plain = (
            c.precision.id == "bf16"
            and c.kv.id == "bf16"
            and c.tier == "gpu"
            and c.variant.name is None
        )
        self.members: list[_Base] = []
        self._engine_ok: dict[str, bool] = {}

    def engine_ok(self, engine: str) -> bool:
        ok = self._engine_ok.get(engine)
        if ok is None:
            why = engine in self.tp_refused or engine_refusal(
                engine, self.tier, self.precision, self.kv, self.native
            )
            ok = self._engine_ok[engine] = why is None
        return ok

    def verdicts(self, r: Requirements) -> tuple[bool, bool, bool]:
        """The first three stages: allowed by the spec, supported, within the quality budget."""
        return (
            spec_allows(self.pool, self.tier, self.precision, self.kv, r),
            self.hardware_ok and self.engine_ok(r.engine),
            within_budget(self.loss, r),
        )


class _Shape:
    """Every candidate of one shape (sizes, context, concurrency, prompt), in groups, and the
    groups' verdicts per ``Requirements.group_rules`` (memoised)."""

    __slots__ = ("groups", "bases", "judged")

    def __init__(self, groups: list[_Group], bases: list[_Base]) -> None:
        self.groups = groups
        self.bases = bases
        """Every candidate, by ``_Base.index``: what a ranking's rows point into."""
        self.judged = _Lru(JUDGED_KEPT)

    def judge(self, r: Requirements) -> _Judged:
        found = self.judged.get(r.group_rules)
        if found is None:
            found = self.judged.put(r.group_rules, _Judged(self.groups, r))
        return found


class _Judged:
    """The groups' verdicts on the first three stages: the groups that pass them, and per pool
    the others by the stage they fail, furthest first (each with its candidate count, and per
    group its index in the shape's ``groups`` and how many of the three stages it passed: plain
    ints, so a shape's many verdicts are no work for the garbage collector)."""

    __slots__ = ("total", "passing", "failing")

    def __init__(self, groups: Sequence[_Group], r: Requirements) -> None:
        self.total = sum(len(g.members) for g in groups)
        self.passing: list[_Group] = []
        failing: dict[str, dict[int, list]] = {}
        for gi, g in enumerate(groups):
            allowed, supported, good = g.verdicts(r)
            first = 0 if not allowed else 1 if not supported else 2 if not good else 3
            if first == 3:
                self.passing.append(g)
                continue
            bucket = failing.setdefault(g.pool, {}).setdefault(first, [first, 0, []])
            bucket[1] += len(g.members)
            bucket[2].append((gi, allowed + supported + good))
        self.failing: list[tuple[str, list[tuple[int, int, list[tuple[int, int]]]]]] = [
            (pool, [tuple(by_stage[f]) for f in sorted(by_stage, reverse=True)])
            for pool, by_stage in failing.items()
        ]


def _hardware(pool: Any) -> tuple:
    """Everything of a pool that a candidate's estimates, cost and fit read (all but its name
    and nodes): pools equal in it are interchangeable for ``_bases``."""
    instance = pool.instance
    return (
        None if pool.gpu is None else pool.gpu.id,
        id(pool.gpu),
        pool.gpus_per_node,
        None if instance is None else instance.id,
        id(instance),
        pool.price_per_node_hour,
        pool.vcpus_per_node,
        pool.memory_bytes_per_node,
        pool.sharing,
        pool.usable_bytes_per_gpu,
        pool.host_bytes_per_node,
        pool.disk_bytes_per_node,
    )


def _bases(
    variants: Sequence[Variant], r: Requirements, cluster: Cluster, applicable: _Applicable = ()
) -> _Shape:
    """Every candidate with its estimates and cost per replica (no requirement applied), in
    groups that share pool, tier, precision, KV dtype and variant (and so every check before
    memory: the planner asks those once per group). A candidate whose PerformanceProfile is in
    ``applicable`` carries its calibrated estimates (``calibrate_memory`` / ``_speed``)."""
    memo = cluster.memo
    key = (
        tuple((_arch_id(memo, v.architecture), v.name, v.quality_loss, v.native) for v in variants),
        r.context_tokens,
        r.concurrency,
        r.prompt_tokens,
        r.engine,  # memory (GGUF layout) and speed (efficiency.py) depend on the engine
        applicable,
        r.lora,
    )
    shapes = _table(memo, "shape", SHAPES_KEPT)
    found = shapes.get(key)
    if found is not None:
        return found
    mem_memo = _table(memo, "memory", ESTIMATES_KEPT)
    speed_memo = _table(memo, "speed", ESTIMATES_KEPT)
    ctx, conc, prompt = r.context_tokens, r.concurrency, r.prompt_tokens
    arch_ids = {id(v): _arch_id(memo, v.architecture) for v in variants}
    learned: dict[ProfileKey, Factors] = dict(applicable)
    prints = {id(v): _fingerprint(memo, v.architecture) for v in variants} if learned else {}
    pools = cluster.pools  # every CPU-only pool has an instance (generic when unknown)
    out: list[_Base] = []
    groups: dict[tuple, _Group] = {}
    tp_memo: dict[tuple[int, int], frozenset[str]] = {}

    def facts(c: Any, arch: Any, aid: int, pool: Any) -> tuple | None:
        """What the candidate's estimates, cost and fit are, or None (no offload needed)."""
        gpus = max(c.gpus, 1)
        mkey = (aid, c.precision.id, c.kv.id, ctx, conc, gpus, r.engine)
        mem = mem_memo.get(mkey)
        if mem is None:
            mem = mem_memo.put(
                mkey,
                estimate_memory(
                    arch,
                    c.precision,
                    c.kv,
                    context_tokens=ctx,
                    concurrency=conc,
                    gpus_per_replica=gpus,
                    engine=r.engine,
                ),
            )
        factors = None
        if learned and pool.gpu is not None and c.tier != "cpu":
            factors = learned.get(
                ProfileKey(
                    prints[id(c.variant)],
                    pool.gpu.id,
                    c.precision.id,
                    c.kv.id,
                    r.engine,
                    gpus,
                    c.tier,
                )
            )
            if factors is not None:
                mem = calibrate_memory(mem, factors)
        if r.lora is not None:
            mem = lora.with_adapters(mem, r.lora, gpus)
        offload: int | None = 0
        host_bytes = 0
        resident = mem.total_bytes_per_gpu
        if c.tier == "offload":
            offload = offload_bytes_needed(mem, pool.usable_bytes_per_gpu)
            if offload == 0:
                return None  # fits without offloading: the gpu-tier candidate covers it
            if offload is not None:
                resident = mem.total_bytes_per_gpu - offload
                host_bytes = offload * gpus
        elif c.tier == "cpu":
            host_bytes, resident = mem.total_bytes, 0
        speed = None
        if offload is not None:
            gpu_id = None if pool.gpu is None else pool.gpu.id
            host_id = pool.instance.id if c.tier == "cpu" else None
            skey = (
                aid,
                c.precision.id,
                c.kv.id,
                c.tier,
                gpu_id,
                host_id,
                gpus,
                conc,
                ctx,
                prompt,
                offload or 0,
                r.engine,
            )
            speed = speed_memo.get(skey)
            if speed is None:
                speed = speed_memo.put(
                    skey,
                    estimate_speed(
                        arch,
                        c.precision,
                        c.kv,
                        tier=c.tier,
                        gpu=pool.gpu,
                        host=pool.instance,
                        gpus_per_replica=gpus,
                        concurrency=conc,
                        context_tokens=ctx,
                        prompt_tokens=prompt,
                        offloaded_bytes_per_gpu=offload or 0,
                        engine=r.engine,
                    ),
                )
            if factors is not None:
                speed = calibrate_speed(speed, factors)
            if r.lora is not None:
                speed = lora.slowed(speed, r.lora, mem.weights_bytes)
        fraction = 1.0
        if pool.shares_gpus and c.gpus == 1 and c.tier == "gpu" and pool.usable_bytes_per_gpu:
            fraction = min(1.0, resident / pool.usable_bytes_per_gpu)
        per_replica = replica_cost(pool, c.gpus, fraction).total
        host, disk = host_share(pool, c.gpus)
        # fits and how far it misses, without and with offloadToDisk
        fits, over = [], []
        for to_disk in (False, True):
            need, have = memory_need(
                c.tier,
                mem.total_bytes_per_gpu,
                mem.weights_bytes_per_gpu,
                pool.usable_bytes_per_gpu,
                offload,
                host_bytes,
                host,
                disk,
                to_disk,
            )
            fits.append(need <= have)
            over.append(excess(need, have))
        return (
            mem,
            speed,
            offload,
            resident,
            host_bytes,
            per_replica,
            tuple(fits),
            tuple(over),
            speed.output_tokens_per_second_per_replica if speed is not None else 0.0,
            speed.time_to_first_token_ms if speed is not None else math.inf,
            speed.time_per_output_token_ms if speed is not None else math.inf,
        )

    # pools with the same hardware, price and room per GPU give their candidates the same facts:
    # worked out once per such class (``_hardware``), not once per pool
    classes: dict[int, tuple] = {}
    known: dict[tuple, tuple | None] = {}
    skip = ()
    for c in enumerate_candidates(variants, pools, cluster.catalogue):
        arch, aid, pool = c.variant.architecture, arch_ids[id(c.variant)], c.pool
        hardware = classes.get(id(pool))
        if hardware is None:
            hardware = classes[id(pool)] = _hardware(pool)
        fkey = (hardware, id(c.variant), c.precision.id, c.kv.id, c.tier, c.gpus)
        found = known.get(fkey, skip)
        if found is skip:
            found = known[fkey] = facts(c, arch, aid, pool)
        if found is None:
            continue
        b = _Base()
        b.candidate = c
        (
            b.memory,
            b.speed,
            b.offload,
            b.resident,
            b.host_bytes,
            b.per_replica,
            b.fits,
            b.excess,
            b.tps,
            b.ttft,
            b.tpot,
        ) = found
        b.index = len(out)
        out.append(b)
        tkey = (aid, c.gpus)
        tp_refused = tp_memo.get(tkey)
        if tp_refused is None:
            tp_refused = tp_memo[tkey] = frozenset(
                e for e in TENSOR_PARALLEL_ENGINES if tensor_parallel_refusal(e, arch, c.gpus)
            )
        gkey = (pool.name, c.tier, c.precision.id, c.kv.id, c.variant.name, tp_refused)
        group = groups.get(gkey)
        if group is None:
            loss = quality_loss(c.precision, c.kv, c.variant.quality_loss, native=c.variant.native)
            group = groups[gkey] = _Group(c, loss, tp_refused)
        b.loss = group.loss
        group.members.append(b)
    for b in out:  # ``candidate_rank_key`` after cost and GPUs, for no running placement
        b.rank_tail = rank_tail(b.candidate)
    # the tie-break alone (the running flag is the same for all): the static order
    for order, i in enumerate(sorted(range(len(out)), key=lambda i: out[i].rank_tail)):
        out[i].order = order
    return shapes.put(key, _Shape(list(groups.values()), out))

"""The planner's one entry point: a deployment and a cluster in, a ``Plan`` out.

``plan_deployment`` decides one ModelDeployment against the cluster as it is; ``plan_cluster``
decides many in a fixed order (namespace, name), each taking the room it is given, so that when
the cheapest pool fills up the next deployment goes to the next pool. Both are pure: no I/O, no
clock, no Kubernetes; the operator applies the result (``Plan.status_fields``) and ``memplace
plan`` prints it. Same input, byte-identical output.

Steps (names as in the modules):

1. size the model and its variants (``architecture``): the inline ``spec.model.config``, else the
   config the shell resolved (``DeploymentRequest.model_config``), else ``parameters``;
2. ``candidates.enumerate_candidates`` → ``Evaluation``: memory (``memory``), speed
   (``latency``), replicas = max(minReplicas, ⌈demand ÷ per-replica throughput⌉), cost
   (``cost``); then every check (``feasibility``);
3. ``choose.rank``, then ``choose.cheapest`` with room (``inventory.PoolCapacity``);
4. the plan: placement, estimate, cost (and the naive plan's: bf16 weights and KV, all in GPU
   memory, the model itself, cheapest feasible pool), alternatives, a one-line message.

Speed: estimates are memoised per (architecture, precision, KV dtype, context, concurrency,
GPUs …) and whole rankings per (sizes, requirements, current placement), on the cluster
(``Cluster.memo``); placing a replica is an index lookup, not a scan of every node.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from memplace.api import (
    Alternative,
    CostStatus,
    EstimateStatus,
    ModelDeploymentSpec,
    PlacementStatus,
)

from .architecture import ConfigError, architecture_from_config, architecture_from_parameters
from .candidates import Variant, enumerate_candidates
from .choose import TIER_ORDER, Ranking, alternatives, cheapest, no_capacity, rank
from .cost import cost_per_million_tokens, replica_cost
from .feasibility import Evaluation, Requirements, check_all
from .inventory import Cluster
from .latency import estimate_speed
from .memory import estimate_memory, offload_bytes_needed
from .precision import quality_loss

__all__ = ["DeploymentRequest", "Plan", "plan_cluster", "plan_deployment"]

NATIVE_FORMATS = {"mxfp4": "mxfp4", "fp8": "fp8"}
"""``quantization_config.quant_method`` values whose checkpoint *is* that precision."""


@dataclass(frozen=True)
class DeploymentRequest:
    """One ModelDeployment to plan, with what the shell resolved for it."""

    namespace: str
    name: str
    spec: ModelDeploymentSpec
    model_config: Mapping[str, Any] | None = None
    """config.json from ``spec.model.configMapRef`` or ``source``, when the shell fetched it."""
    current: PlacementStatus | None = None
    """The running placement: wins exact cost ties, so replanning never moves it for nothing."""
    full_pools: frozenset[str] = frozenset()
    """Pools where this deployment's pods stayed unschedulable: excluded (NoCapacity)."""
    variant_configs: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    """config.json per variant name, for variants sized by configMapRef or source."""

    @property
    def owner(self) -> tuple[str, str]:
        return (self.namespace, self.name)


@dataclass(frozen=True)
class Plan:
    """What the planner decided for one deployment: the fields of its ``status``."""

    namespace: str
    name: str
    phase: str
    """``Placed``, ``Unschedulable`` or ``Invalid``."""
    placement: PlacementStatus | None = None
    estimate: EstimateStatus | None = None
    cost: CostStatus | None = None
    alternatives: tuple[Alternative, ...] = ()
    message: str = ""
    funnel: tuple[tuple[str, int], ...] = ()
    """Candidates surviving each stage of checks: what the message summarises."""
    resolvable: bool = False
    """Unschedulable only: whether it may place later without a spec change (capacity)."""

    def status_fields(self) -> dict[str, Any]:
        """The status fields this plan sets, camelCase, every key present (null = clear)."""
        return {
            "phase": self.phase,
            "placement": None if self.placement is None else self.placement.to_wire(),
            "estimate": None if self.estimate is None else self.estimate.to_wire(),
            "cost": None if self.cost is None else self.cost.to_wire(),
            "alternatives": [a.to_wire() for a in self.alternatives],
            "message": self.message,
        }


# --- sizing ----------------------------------------------------------------------------------


class _Invalid(Exception):
    pass


def _native(config: Mapping[str, Any] | None) -> str | None:
    quant = (config or {}).get("quantization_config") or {}
    return NATIVE_FORMATS.get(str(quant.get("quant_method", "")).lower())


def _size(sized: Any, resolved: Mapping[str, Any] | None, what: str) -> tuple[Any, str | None]:
    config = sized.config if sized.config is not None else resolved
    try:
        if config is not None:
            return architecture_from_config(config), _native(config)
        if sized.parameters is not None:
            return architecture_from_parameters(sized.parameters, sized.active_parameters), None
    except ConfigError as error:
        raise _Invalid(f"{what}: {error}") from error
    if sized.config_map_ref is not None:
        raise _Invalid(
            f"{what}: config.json from ConfigMap {sized.config_map_ref.name!r} "
            f"(key {sized.config_map_ref.key!r}) was not resolved"
        )
    raise _Invalid(
        f"{what}: config.json from {sized.source} was not resolved; "
        "give spec.model.parameters to plan without it"
    )


def _variants(request: DeploymentRequest) -> tuple[list[Variant], list[Alternative]]:
    model = request.spec.model
    arch, native = _size(model, request.model_config, f"model {model.name}")
    variants = [Variant(None, arch, 0.0, native)]
    problems = []
    for v in model.variants:
        try:
            varch, vnative = _size(v, request.variant_configs.get(v.name), f"variant {v.name}")
        except _Invalid as error:
            problems.append(Alternative(variant=v.name, reason=str(error), code="Invalid"))
            continue
        variants.append(Variant(v.name, varch, v.quality_loss, vnative))
    return variants, problems


# --- evaluating candidates -------------------------------------------------------------------


def _arch_id(memo: dict, arch: Any) -> int:
    ids = memo.setdefault("arch", {})
    return ids.setdefault(arch, len(ids))


class _Base:
    """What a candidate is whatever the SLO, budget, demand and allow-lists: memoised per
    (sizes, context, concurrency, prompt) on the cluster and shared by every deployment with
    that shape."""

    __slots__ = (
        "candidate",
        "memory",
        "speed",
        "offload",
        "resident",
        "host_bytes",
        "per_replica",
        "loss",
        "hardware_ok",
        "fits",
        "fits_host",
        "fits_disk",
        "tps",
        "ttft",
        "tpot",
        "pool",
        "tier",
        "precision",
        "kv",
        "order",
        "plain",
    )


def _bases(variants: Sequence[Variant], r: Requirements, cluster: Cluster) -> list[list[_Base]]:
    """Every candidate with its estimates and cost per replica (no requirement applied), in
    groups that share pool, tier, precision, KV dtype and variant (and so every check before
    memory: the planner asks those once per group)."""
    from .feasibility import _host_share
    from .precision import unsupported

    memo = cluster.memo
    key = (
        tuple((_arch_id(memo, v.architecture), v.name, v.quality_loss, v.native) for v in variants),
        r.context_tokens,
        r.concurrency,
        r.prompt_tokens,
    )
    shapes = memo.setdefault("shape", {})
    if key in shapes:
        return shapes[key]
    mem_memo = memo.setdefault("memory", {})
    speed_memo = memo.setdefault("speed", {})
    ctx, conc, prompt = r.context_tokens, r.concurrency, r.prompt_tokens
    arch_ids = {id(v): _arch_id(memo, v.architecture) for v in variants}
    pools = [p for p in cluster.pools if not (p.cpu_only and p.instance is None)]
    out: list[_Base] = []
    for c in enumerate_candidates(variants, pools, cluster.catalogue):
        arch, aid, pool = c.variant.architecture, arch_ids[id(c.variant)], c.pool
        gpus = max(c.gpus, 1)
        mkey = (aid, c.precision.id, c.kv.id, ctx, conc, gpus)
        mem = mem_memo.get(mkey)
        if mem is None:
            mem = mem_memo[mkey] = estimate_memory(
                arch,
                c.precision,
                c.kv,
                context_tokens=ctx,
                concurrency=conc,
                gpus_per_replica=gpus,
            )
        offload: int | None = 0
        host_bytes = 0
        resident = mem.total_bytes_per_gpu
        if c.tier == "offload":
            offload = offload_bytes_needed(mem, pool.usable_bytes_per_gpu)
            if offload == 0:
                continue  # fits without offloading: the gpu-tier candidate covers it
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
            )
            speed = speed_memo.get(skey)
            if speed is None:
                speed = speed_memo[skey] = estimate_speed(
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
                )
        fraction = 1.0
        if pool.shares_gpus and c.gpus == 1 and c.tier == "gpu" and pool.usable_bytes_per_gpu:
            fraction = min(1.0, resident / pool.usable_bytes_per_gpu)
        b = _Base()
        b.candidate, b.memory, b.speed = c, mem, speed
        b.offload, b.resident, b.host_bytes = offload, resident, host_bytes
        b.per_replica = replica_cost(pool, c.gpus, fraction).total
        b.loss = quality_loss(c.precision, c.kv, c.variant.quality_loss, native=c.variant.native)
        b.hardware_ok = pool.gpu is None or not (
            unsupported(c.precision, pool.gpu) or unsupported(c.kv, pool.gpu)
        )
        host_share, disk_share = _host_share(
            Evaluation(c, mem, speed, 0.0, offload, resident, host_bytes, 1, 1, 0.0, 0.0)
        )
        b.fits_host = b.fits_disk = False
        if c.tier == "gpu":
            b.fits = mem.total_bytes_per_gpu <= pool.usable_bytes_per_gpu
        elif c.tier == "cpu":
            b.fits = host_bytes <= host_share
        else:
            b.fits = None  # depends on offloadToDisk
            b.fits_host = offload is not None and host_bytes <= host_share
            b.fits_disk = offload is not None and host_bytes <= host_share + disk_share
        b.tps = speed.output_tokens_per_second_per_replica if speed is not None else 0.0
        b.ttft = speed.time_to_first_token_ms if speed is not None else math.inf
        b.tpot = speed.time_per_output_token_ms if speed is not None else math.inf
        b.pool, b.tier = pool.name, c.tier
        b.precision, b.kv = c.precision.id, c.kv.id
        b.plain = (
            c.precision.id == "bf16"
            and c.kv.id == "bf16"
            and c.tier == "gpu"
            and c.variant.name is None
        )
        out.append(b)
    static_order = sorted(
        range(len(out)),
        key=lambda i: (
            -out[i].candidate.precision.weight_bits,
            -out[i].candidate.kv.bits,
            TIER_ORDER[out[i].tier],
            out[i].pool,
            out[i].candidate.gpus,
            out[i].candidate.variant.name or "",
            out[i].precision,
            out[i].kv,
        ),
    )
    for order, i in enumerate(static_order):
        out[i].order = order
    groups: dict[tuple, list[_Base]] = {}
    for b in out:
        c = b.candidate
        groups.setdefault((b.pool, b.tier, b.precision, b.kv, c.variant.name), []).append(b)
    shapes[key] = list(groups.values())
    return shapes[key]


def _evaluate(
    b: _Base, r: Requirements, replicas: int, for_demand: int, check: bool = True
) -> Evaluation:
    e = Evaluation(
        candidate=b.candidate,
        memory=b.memory,
        speed=b.speed,
        quality_loss=b.loss,
        offload_bytes_per_gpu=b.offload,
        resident_bytes_per_gpu=b.resident,
        host_bytes=b.host_bytes,
        replicas=replicas,
        replicas_for_demand=for_demand,
        per_replica_hour=b.per_replica,
        per_hour=b.per_replica * replicas,
    )
    if check:
        e.rejections = check_all(e, r)
    return e


def _evaluate_all(
    bases: Sequence[Sequence[_Base]], r: Requirements
) -> tuple[list[Evaluation], list[tuple[str, int]], float | None]:
    """Every check on every candidate, as inline predicates (the check functions then explain
    the few candidates people see): the feasible candidates and, per pool without one, the
    candidate that got furthest; the survivors of each stage; the naive plan's cost."""
    from .feasibility import ENGINE_SUPPORT, STAGES

    pools, tiers, precisions, kvs = r.pools, r.tiers, r.precisions, r.kv_cache_dtypes
    engine = ENGINE_SUPPORT.get(r.engine)
    demand, floor, ceiling = r.demand_tokens_per_second, r.min_replicas, r.max_replicas
    ttft_slo = r.ttft_ms if r.ttft_ms is not None else math.inf
    tpot_slo = r.tpot_ms if r.tpot_ms is not None else math.inf
    budget = r.max_loss + 1e-12
    to_disk = r.offload_to_disk
    stages = len(STAGES)
    firsts = [0] * (stages + 1)
    kept: list[Evaluation] = []
    nearest: dict[str, tuple[tuple, _Base, int, int]] = {}
    naive_ok = naive_fit = None
    total = 0
    # groups that pass the spec, hardware and quality checks first, so that the others can
    # mostly be counted without comparing them (a pool with a candidate further along wins)
    passing, failing = [], []
    for members in bases:
        total += len(members)
        b0 = members[0]
        ok = (
            (not pools or b0.pool in pools)
            and b0.tier in tiers
            and (precisions is None or b0.precision in precisions)
            and (kvs is None or b0.kv in kvs)
            and b0.hardware_ok
            and (
                engine is None
                or (
                    b0.tier in engine["tiers"]
                    and b0.precision in engine["precisions"]
                    and b0.kv in engine["kv"]
                )
            )
            and b0.loss <= budget
        )
        (passing if ok else failing).append(members)
    for members in passing + failing:
        b0 = members[0]
        if not (
            (not pools or b0.pool in pools)
            and b0.tier in tiers
            and (precisions is None or b0.precision in precisions)
            and (kvs is None or b0.kv in kvs)
            and b0.hardware_ok
            and (
                engine is None
                or (
                    b0.tier in engine["tiers"]
                    and b0.precision in engine["precisions"]
                    and b0.kv in engine["kv"]
                )
            )
            and b0.loss <= budget
        ):
            best = nearest.get(b0.pool)
            if best is not None and best[0][0] <= -3:
                # the pool already has a candidate further along: count, don't compare
                allowed = (
                    (not pools or b0.pool in pools)
                    and b0.tier in tiers
                    and (precisions is None or b0.precision in precisions)
                    and (kvs is None or b0.kv in kvs)
                )
                supported = b0.hardware_ok and (
                    engine is None
                    or (
                        b0.tier in engine["tiers"]
                        and b0.precision in engine["precisions"]
                        and b0.kv in engine["kv"]
                    )
                )
                first = 0 if not allowed else 1 if not supported else 2
                firsts[first] += len(members)
                continue
        for b in members:
            if demand > 0:
                for_demand = math.ceil(demand / b.tps - 1e-9) if b.tps > 0 else 10**9
            else:
                for_demand = 0
            replicas = for_demand if for_demand > floor else floor
            if ceiling is not None and replicas > ceiling:
                replicas = ceiling
            allowed = (
                (not pools or b.pool in pools)
                and b.tier in tiers
                and (precisions is None or b.precision in precisions)
                and (kvs is None or b.kv in kvs)
            )
            supported = b.hardware_ok and (
                engine is None
                or (
                    b.tier in engine["tiers"]
                    and b.precision in engine["precisions"]
                    and b.kv in engine["kv"]
                )
            )
            good = b.loss <= budget
            fits = b.fits if b.fits is not None else (b.fits_host or (to_disk and b.fits_disk))
            fast = (
                b.ttft <= ttft_slo
                and b.tpot <= tpot_slo
                and (ceiling is None or for_demand <= ceiling)
            )
            if not allowed:
                first = 0
            elif not supported:
                first = 1
            elif not good:
                first = 2
            elif not fits:
                first = 3
            elif not fast:
                first = 4
            else:
                first = stages
            firsts[first] += 1
            per_hour = b.per_replica * replicas
            if b.plain and allowed and supported and fits:
                if fast and (naive_ok is None or per_hour < naive_ok):
                    naive_ok = per_hour
                if naive_fit is None or per_hour < naive_fit:
                    naive_fit = per_hour
            if first == stages:
                kept.append(_evaluate(b, r, replicas, for_demand, check=False))
                nearest[b.pool] = ((-stages, 0, 0.0, 0), b, replicas, for_demand)
                continue
            best = nearest.get(b.pool)
            if best is not None and -first > best[0][0]:
                continue
            failed = 5 - (allowed + supported + good + bool(fits) + fast)
            closeness = (-first, failed, per_hour, b.order)
            if best is None or closeness < best[0]:
                nearest[b.pool] = (closeness, b, replicas, for_demand)
    feasible_pools = {e.candidate.pool.name for e in kept}
    for pool, (_, b, replicas, for_demand) in sorted(nearest.items()):
        if pool not in feasible_pools:
            kept.append(_evaluate(b, r, replicas, for_demand))
    steps = [("candidates", total)]
    steps += [(name, sum(firsts[i + 1 :])) for i, (name, _) in enumerate(STAGES)]
    steps.append(("have free capacity", 0))
    return kept, steps, naive_ok if naive_ok is not None else naive_fit


@dataclass
class _Static:
    """Everything about a deployment that free capacity does not change (memoised)."""

    requirements: Requirements
    ranking: Ranking
    variant_problems: list[Alternative]
    naive_per_hour: float | None
    steps: list[tuple[str, int]]


def _static(request: DeploymentRequest, cluster: Cluster) -> _Static:
    variants, problems = _variants(request)
    r = Requirements.from_spec(request.spec)
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
    memo = cluster.memo.setdefault("static", {})
    key = (
        tuple(
            (v.name, _arch_id(cluster.memo, v.architecture), v.quality_loss, v.native)
            for v in variants
        ),
        r,
        current_key,
    )
    found = memo.get(key)
    if found is None:
        kept, steps, naive = _evaluate_all(_bases(variants, r, cluster), r)
        found = memo[key] = _Static(r, rank(kept, current), problems, naive, steps)
    return found


# --- deciding --------------------------------------------------------------------------------


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def _estimate_status(e: Evaluation) -> EstimateStatus:
    m, s, arch = e.memory, e.speed, e.candidate.variant.architecture
    per_gpu = m.total_bytes if e.candidate.tier == "cpu" else m.total_bytes_per_gpu
    return EstimateStatus(
        parameters=int(arch.total_parameters),
        active_parameters=int(arch.active_parameters),
        weights_bytes=m.weights_bytes,
        kv_cache_bytes=m.kv_cache_bytes,
        state_bytes=m.state_bytes,
        activation_bytes=m.activation_bytes,
        overhead_bytes=m.overhead_bytes,
        total_bytes=m.total_bytes,
        total_bytes_per_gpu=per_gpu,
        time_to_first_token_ms=_round(s.time_to_first_token_ms, 1),
        time_per_output_token_ms=_round(s.time_per_output_token_ms, 2),
        output_tokens_per_second_per_replica=_round(s.output_tokens_per_second_per_replica, 1),
    )


def _alternative(e: Evaluation, code: str, reason: str) -> Alternative:
    c = e.candidate
    return Alternative(
        pool=c.pool.name,
        gpu_model=c.pool.gpu_name,
        precision=c.precision.id,
        kv_cache_dtype=c.kv.id,
        tier=c.tier,
        variant=c.variant.name,
        gpus_per_replica=c.gpus,
        replicas=e.replicas,
        per_hour=round(e.per_hour, 4),
        reason=reason,
        code=code,
    )


def _what(e: Evaluation) -> str:
    c = e.candidate
    variant = f"{c.variant.name} " if c.variant.name else ""
    if c.tier == "cpu":
        node = c.pool.instance.id if c.pool.instance is not None else "CPU"
        where = f"{e.replicas} × {node} node"
    else:
        where = f"{e.replicas} × {c.gpus} {c.pool.gpu_name}"
        if c.tier == "offload":
            offloaded = e.offload_bytes_per_gpu * c.gpus / (1 << 30)
            where += f", {offloaded:.1f} GiB of weights per replica in host memory"
    return f"{variant}{c.precision.id} ({c.kv.id} KV) on {c.pool.name}: {where}"


def _unschedulable_message(steps: Sequence[tuple[str, int]]) -> str:
    parts = [f"{steps[0][1]} candidates"]
    for name, count in steps[1:]:
        parts.append(f"{count} {name}")
        if count == 0:  # this check emptied the list
            break
    if steps[0][1] == 0:
        return "no placement: no pool can run this model (no candidates)"
    return f"no placement: {', '.join(parts)}"


def _decide(request: DeploymentRequest, cluster: Cluster, consume: bool) -> Plan:
    try:
        static = _static(request, cluster)
    except _Invalid as error:
        return Plan(request.namespace, request.name, "Invalid", message=str(error))
    ranking = static.ranking
    cache: dict[tuple, Any] = {}

    def room(e: Evaluation) -> Any:
        c = e.candidate
        key = (c.pool.name, c.gpus, e.resident_bytes_per_gpu, e.replicas)
        if key not in cache:
            cache[key] = no_capacity(e, cluster.capacity(c.pool.name), request.full_pools)
        return cache[key]

    chosen, full = cheapest(ranking, room)
    alts = [
        _alternative(e, why.code, why.message) for e, why in alternatives(ranking, chosen, full)
    ]
    allowed = static.requirements.pools
    alts += [
        Alternative(pool=x.name, reason=x.reason, code=x.code)
        for x in cluster.excluded
        if not allowed or x.name in allowed
    ]
    alts += static.variant_problems
    steps = list(static.steps)
    steps[-1] = (steps[-1][0], len(ranking.feasible) - len(full))

    if chosen is None:
        message = _unschedulable_message(steps)
        return Plan(
            request.namespace,
            request.name,
            "Unschedulable",
            cost=CostStatus(naive_per_hour=_round(static.naive_per_hour, 4))
            if static.naive_per_hour is not None
            else None,
            alternatives=tuple(alts),
            message=message,
            funnel=tuple(steps),
            resolvable=bool(ranking.feasible),
        )

    e = ranking.ranked[chosen]
    c = e.candidate
    capacity = cluster.capacity(c.pool.name)
    if not consume:
        capacity = capacity.copy()
    nodes = capacity.place(c.gpus, e.resident_bytes_per_gpu, e.replicas, owner=request.owner)
    r = static.requirements
    tokens = r.demand_tokens_per_second or (
        e.replicas * e.speed.output_tokens_per_second_per_replica
    )
    placement = PlacementStatus(
        pool=c.pool.name,
        gpu_model=c.pool.gpu_name,
        precision=c.precision.id,
        kv_cache_dtype=c.kv.id,
        tier=c.tier,
        variant=c.variant.name,
        gpus_per_replica=c.gpus,
        replicas=e.replicas,
        nodes=nodes or None,
        offload_bytes_per_replica=(e.offload_bytes_per_gpu or 0) * c.gpus
        if c.tier == "offload"
        else None,
    )
    cost = CostStatus(
        per_hour=round(e.per_hour, 4),
        per_million_output_tokens=_round(cost_per_million_tokens(e.per_hour, tokens), 4),
        naive_per_hour=_round(static.naive_per_hour, 4),
    )
    message = f"{_what(e)}, ${e.per_hour:.2f}/h"
    return Plan(
        request.namespace,
        request.name,
        "Placed",
        placement=placement,
        estimate=_estimate_status(e),
        cost=cost,
        alternatives=tuple(alts),
        message=message,
        funnel=tuple(steps),
    )


def _released(cluster: Cluster, owner: tuple[str, str], in_place: bool) -> Cluster:
    """The cluster without ``owner``'s own reservations (it is being replanned)."""
    for pool in cluster.pools:
        capacity = cluster.capacity(pool.name)
        if owner in capacity.owners:
            if in_place:
                capacity.release(owner)
            else:
                capacity = capacity.copy()
                capacity.release(owner)
                cluster = cluster.with_capacity(pool.name, capacity)
    return cluster


def plan_deployment(request: DeploymentRequest, cluster: Cluster) -> Plan:
    """Decide one deployment against the cluster as it is (the cluster is not changed)."""
    return _decide(request, _released(cluster, request.owner, in_place=False), consume=False)


def plan_cluster(requests: Iterable[DeploymentRequest], cluster: Cluster) -> list[Plan]:
    """Decide many deployments in (namespace, name) order, each consuming the room it takes."""
    state = cluster.mutable_copy()
    plans = []
    for request in sorted(requests, key=lambda r: (r.namespace, r.name)):
        _released(state, request.owner, in_place=True)
        plans.append(_decide(request, state, consume=True))
    return plans

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
GPUs …) and whole rankings per (sizes, requirements, current placement, applicable calibration
factors), on the cluster (``Cluster.memo``); the estimate tables hold uncalibrated figures,
the shapes and rankings calibrated ones, keyed by the factors that apply to them
(``Calibration.relevant``); placing a replica is an index lookup, not a scan of every node.
Every memo table is a bounded LRU (``_Lru``; the ``…_KEPT`` constants), and a ranking keeps its
candidates as rows of ints (``_Ranked``): an ``Evaluation`` is built only for a candidate a plan
shows or a check explains, so a big plan leaves few long-lived objects for the garbage collector.

Batch: ``batch.plan_batch`` decides many deployments together (a solver over the candidates
ranked here, ``solve``) and builds each plan with ``_decide`` given its choice; the greedy
``plan_cluster`` stays as its fallback and as ``--strategy greedy``.
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections import OrderedDict
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from memplace.api import (
    Alternative,
    CalibrationStatus,
    CostStatus,
    EstimateStatus,
    ModelDeploymentSpec,
    PlacementStatus,
)

from . import lora
from .architecture import ConfigError, architecture_from_config, architecture_from_parameters
from .calibration import (
    Calibration,
    Factors,
    ProfileKey,
    calibrate_memory,
    calibrate_speed,
    factors_of,
    fingerprint,
)
from .candidates import Variant, enumerate_candidates
from .checkpoint import Checkpoint, native_precision, with_checkpoint
from .choose import (
    RUNNERS_UP,
    TIER_ORDER,
    Full,
    Ranking,
    alternative_indices,
    candidate_rank_key,
    candidate_room_key,
    has_room,
    index,
    is_current,
    no_room,
)
from .cost import cost_per_million_tokens, replica_cost
from .feasibility import (
    STAGES,
    TENSOR_PARALLEL_ENGINES,
    Evaluation,
    Rejection,
    Requirements,
    check_all,
    engine_refusal,
    excess,
    hardware_refusal,
    host_share,
    meets_slo,
    memory_need,
    slo_excess,
    spec_allows,
    stage_of,
    tensor_parallel_refusal,
    within_budget,
)
from .inventory import GENERIC_CPU, Cluster
from .latency import estimate_speed
from .memory import estimate_memory, offload_bytes_needed, usable_gpu_bytes, weights_source
from .precision import quality_loss

__all__ = ["DeploymentRequest", "Plan", "plan_cluster", "plan_deployment"]


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
    calibration: Calibration | None = None
    """The PerformanceProfiles' learned factors: a candidate whose profile has enough samples
    is judged and costed on its calibrated estimates (``calibration``)."""
    checkpoints: Mapping[str | None, Checkpoint] = field(default_factory=dict)
    """The published checkpoint (``planning.checkpoint``) per variant name, None for the model
    itself, where the shell could read its safetensors headers: its bytes are the weights at
    its native precision, and its format sets that precision."""
    model_adapters: tuple[Any, ...] = ()
    """``lora.Listed``: the ModelAdapters naming this deployment as their base."""
    lora: Any = None
    """``adapters.LoraSlots`` the plan sizes in (set by ``lora.decide``, not by callers)."""

    target: PlacementStatus | None = None
    """A placement the batch planner chose for this deployment (``batch``; the operator's
    batched re-plans and consolidation): taken when it is still feasible and has room, so that
    one deployment's re-plan keeps to the batch's answer; else the cheapest, as without it."""

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
    adapters: tuple[Any, ...] = ()
    """``AdapterStatus`` per LoRA adapter (``lora.decide``); () = the spec has none."""
    lora: Any = None
    """``adapters.LoraSlots`` of the adapters Loaded: what the engine's arguments load."""

    def status_fields(self) -> dict[str, Any]:
        """The status fields this plan sets, camelCase, every key present (null = clear)."""
        return {
            "phase": self.phase,
            "placement": None if self.placement is None else self.placement.to_wire(),
            "estimate": None if self.estimate is None else self.estimate.to_wire(),
            "cost": None if self.cost is None else self.cost.to_wire(),
            "alternatives": [a.to_wire() for a in self.alternatives],
            "message": self.message,
            "adapters": [a.to_wire() for a in self.adapters] if self.adapters else None,
        }


# --- memo ------------------------------------------------------------------------------------


class _Lru:
    """A dict that keeps at most ``size`` entries, dropping the least recently used.

    Every table the planner keeps across calls (on ``Cluster.memo``) is one of these, so a
    long-running operator's memo stays bounded however many specs and capacities it sees. The
    values are pure functions of their keys: an evicted entry is recomputed, never wrong."""

    __slots__ = ("size", "_entries")

    def __init__(self, size: int) -> None:
        self.size = size
        self._entries: OrderedDict[Hashable, Any] = OrderedDict()

    def get(self, key: Hashable) -> Any:
        found = self._entries.get(key)
        if found is not None:
            self._entries.move_to_end(key)
        return found

    def put(self, key: Hashable, value: Any) -> Any:
        self._entries[key] = value
        self._entries.move_to_end(key)
        if len(self._entries) > self.size:
            self._entries.popitem(last=False)
        return value

    def __len__(self) -> int:
        return len(self._entries)


PARAMETER_MODELS_KEPT = 64
"""Architectures sized from ``parameters`` (and ``activeParameters``) kept in the memo."""
ARCHITECTURES_KEPT = 256
"""Architectures given a short id for the other tables' keys (ids are never reused)."""
ESTIMATES_KEPT = 8192
"""Memory estimates, and speed estimates, kept (each table): a shape needs a few hundred."""
SHAPES_KEPT = 64
"""Shapes (sizes × context × concurrency × prompt) kept, with every candidate's estimates."""
STATICS_KEPT = 8192
"""Rankings kept, one per (sizes, requirements, current placement): each is rows of ints and a
few built nearest misses (tens of KiB); ``bench/plan_scale.py`` draws ~9,600 distinct specs."""
JUDGED_KEPT = 256
"""Verdicts kept per shape, one per distinct ``Requirements.group_rules``."""
ALTERNATIVES_PER_RANKING = 128
"""MoreExpensive alternatives a ranking keeps for its next deployments, by (candidate, the
chosen one's cost): a pool's entry is the same while both are; the table starts afresh past
this size."""
ALTERNATIVES_KEPT = 4096
"""Alternatives kept for reuse: the same fields, the same (frozen) object, in every plan that
lists it (a 10,000-deployment plan lists ~200,000, of ~15,000 distinct values)."""


def _table(memo: dict, name: str, size: int) -> _Lru:
    table = memo.get(name)
    if table is None:
        table = memo[name] = _Lru(size)
    return table


# --- sizing ----------------------------------------------------------------------------------


class _Invalid(Exception):
    pass


def _size(
    sized: Any,
    resolved: Mapping[str, Any] | None,
    what: str,
    memo: dict,
    checkpoint: Checkpoint | None = None,
) -> tuple[Any, str | None]:
    config = sized.config if sized.config is not None else resolved
    try:
        if config is not None:
            arch = architecture_from_config(config)
            if checkpoint is not None:
                return with_checkpoint(arch, checkpoint), checkpoint.native
            return arch, native_precision(config)
        if sized.parameters is not None:
            key = (sized.parameters, sized.active_parameters)
            by_parameters = _table(memo, "parameters", PARAMETER_MODELS_KEPT)
            arch = by_parameters.get(key)
            if arch is None:
                arch = by_parameters.put(key, architecture_from_parameters(*key))
            return arch, None
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


def _variants(request: DeploymentRequest, memo: dict) -> tuple[list[Variant], list[Alternative]]:
    model = request.spec.model
    checkpoints = request.checkpoints
    arch, native = _size(
        model, request.model_config, f"model {model.name}", memo, checkpoints.get(None)
    )
    if (why := _context_refusal(arch, request)) is not None:
        raise _Invalid(f"model {model.name}: {why}")
    variants = [Variant(None, arch, 0.0, native)]
    problems = []
    if request.lora is not None and request.lora.adapters:
        return variants, [lora.variant_problem(v.name) for v in model.variants]
    for v in model.variants:
        try:
            varch, vnative = _size(
                v,
                request.variant_configs.get(v.name),
                f"variant {v.name}",
                memo,
                checkpoints.get(v.name),
            )
        except _Invalid as error:
            problems.append(Alternative(variant=v.name, reason=str(error), code="Invalid"))
            continue
        if (why := _context_refusal(varch, request)) is not None:
            reason = f"variant {v.name}: {why}"
            problems.append(Alternative(variant=v.name, reason=reason, code="Invalid"))
            continue
        variants.append(Variant(v.name, varch, v.quality_loss, vnative))
    return variants, problems


def _context_refusal(arch: Any, request: DeploymentRequest) -> str | None:
    """contextTokens beyond what the model serves: vLLM refuses a ``--max-model-len`` above the
    derived maximum ("User-specified max_model_len … is greater than the derived
    max_model_len", vllm/config/model.py), so the deployment cannot start anywhere."""
    longest = getattr(arch, "max_context_tokens", None)
    asked = request.spec.workload.context_tokens
    if longest is None or asked <= longest:
        return None
    return (
        f"contextTokens {asked} is above the {longest} tokens the model serves "
        "(max_position_embeddings and rope scaling in config.json)"
    )


# --- evaluating candidates -------------------------------------------------------------------


def _arch_id(memo: dict, arch: Any) -> int:
    ids = _table(memo, "arch", ARCHITECTURES_KEPT)
    found = ids.get(arch)
    if found is None:
        found = ids.put(arch, next(memo.setdefault("arch_serial", itertools.count())))
    return found


def _fingerprint(memo: dict, arch: Any) -> str:
    """``calibration.fingerprint``, memoised like the architecture ids."""
    prints = _table(memo, "fingerprint", ARCHITECTURES_KEPT)
    found = prints.get(arch)
    if found is None:
        found = prints.put(arch, fingerprint(arch))
    return found


_Applicable = tuple
"""``Calibration.relevant``: the (key, factors) that apply to a deployment; () = none."""


def _applicable(
    variants: Sequence[Variant], engine: str, calibration: Calibration | None, memo: dict
) -> _Applicable:
    if calibration is None or not len(calibration):
        return ()
    prints = [_fingerprint(memo, v.architecture) for v in variants]
    return calibration.relevant(prints, engine)


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
    static_order = sorted(
        range(len(out)),
        key=lambda i: (
            -out[i].candidate.precision.weight_bits,
            -out[i].candidate.kv.bits,
            TIER_ORDER[out[i].candidate.tier],
            out[i].candidate.pool.name,
            out[i].candidate.gpus,
            out[i].candidate.variant.name or "",
            out[i].candidate.precision.id,
            out[i].candidate.kv.id,
        ),
    )
    for order, i in enumerate(static_order):
        out[i].order = order
    for b in out:  # ``candidate_rank_key`` after cost and GPUs, for no running placement
        c = b.candidate
        b.rank_tail = (
            -c.precision.weight_bits,
            -c.kv.bits,
            TIER_ORDER.get(c.tier, 9),
            True,
            c.pool.name,
            c.gpus,
            c.variant.name or "",
            c.precision.id,
            c.kv.id,
        )
    return shapes.put(key, _Shape(list(groups.values()), out))


def _evaluate(
    b: _Base, r: Requirements, replicas: int, for_demand: int, check: bool = True
) -> Evaluation:
    e = Evaluation(
        b.candidate,
        b.memory,
        b.speed,
        b.loss,
        b.offload,
        b.resident,
        b.host_bytes,
        replicas,
        for_demand,
        b.per_replica,
        b.per_replica * replicas,
    )
    if check:
        e.rejections = check_all(e, r)
    return e


_Row = tuple[int, int, int]
"""A ranked candidate, light: (``_Base.index``, replicas, replicas for the demand)."""


def _evaluate_all(
    shape: _Shape, r: Requirements
) -> tuple[list[_Row], dict[int, Evaluation], list[tuple[str, int]], float | None]:
    """Every check on every candidate (the rules as ``feasibility``'s predicates, asked once per
    group for what a group shares; the check functions then explain the few candidates people
    see): the feasible candidates, as rows; per pool without one, its nearest miss, evaluated
    and explained (by ``_Base.index``, in pool order); the survivors of each stage; the naive
    plan's cost.

    Nearest miss: the candidate that got furthest through the stages; among those, the one
    closest to passing the stage it failed (needed ÷ available memory for DoesNotFit, estimate
    ÷ SLO for TooSlow), then the fewest failed stages, the cheapest, the static order. Groups
    failing an earlier stage than a candidate the pool already has are counted in bulk."""
    demand, floor, ceiling = r.demand_tokens_per_second, r.min_replicas, r.max_replicas
    disk = 1 if r.offload_to_disk else 0
    stages = len(STAGES)
    firsts = [0] * (stages + 1)
    kept: list[_Row] = []
    nearest: dict[str, tuple[tuple, _Base, int, int]] = {}
    naive: list[float | None] = [None, None]  # cheapest plain bf16 that fits: fast, any

    def members(g: _Group, group_first: int, passed: int) -> None:
        plain = g.plain and group_first > 1  # allowed and supported
        for b in g.members:
            if demand > 0:
                for_demand = math.ceil(demand / b.tps - 1e-9) if b.tps > 0 else 10**9
            else:
                for_demand = 0
            replicas = for_demand if for_demand > floor else floor
            if ceiling is not None and replicas > ceiling:
                replicas = ceiling
            fits = b.fits[disk]
            fast = meets_slo(b.ttft, b.tpot, for_demand, r)
            first = group_first if group_first < 3 else 3 if not fits else 4 if not fast else stages
            firsts[first] += 1
            per_hour = b.per_replica * replicas
            if plain and fits:
                if fast and (naive[0] is None or per_hour < naive[0]):
                    naive[0] = per_hour
                if naive[1] is None or per_hour < naive[1]:
                    naive[1] = per_hour
            if first == stages:
                kept.append((b.index, replicas, for_demand))
                nearest[g.pool] = ((-stages,), b, replicas, for_demand)
                continue
            best = nearest.get(g.pool)
            if best is not None and -first > best[0][0]:
                continue
            if first == 3:
                miss = b.excess[disk]
            elif first == 4:
                miss = slo_excess(b.ttft, b.tpot, for_demand, r)
            else:
                miss = 0.0
            closeness = (-first, miss, 5 - (passed + fits + fast), per_hour, b.order)
            if best is None or closeness < best[0]:
                nearest[g.pool] = (closeness, b, replicas, for_demand)

    judged = shape.judge(r)
    for g in judged.passing:
        members(g, 3, 3)
    for pool, buckets in judged.failing:
        for first, count, groups in buckets:
            best = nearest.get(pool)
            if best is not None and best[0][0] < -first:
                firsts[first] += count  # the pool has a candidate further along
                continue
            for gi, passed in groups:
                members(shape.groups[gi], first, passed)
    misses = {
        b.index: _evaluate(b, r, replicas, for_demand)
        for _, (closeness, b, replicas, for_demand) in sorted(nearest.items())
        if closeness[0] != -stages
    }
    steps = [("candidates", judged.total)]
    steps += [(name, sum(firsts[i + 1 :])) for i, (name, _) in enumerate(STAGES)]
    steps.append(("have free capacity", 0))
    return kept, misses, steps, naive[0] if naive[0] is not None else naive[1]


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
        tuple(problem.reason for problem in problems),  # variants refused, listed in the plan
        r,
        current_key,
        applicable,
        tuple((p.variant, p.code, p.reason) for p in problems),
    )
    found = memo.get(key)
    if found is None:
        shape = _bases(variants, r, cluster, applicable)
        kept, misses, steps, naive = _evaluate_all(shape, r)
        ranking = _rank(shape, kept, misses, r, current)
        found = memo.put(key, _Static(r, ranking, problems, naive, steps))
    return found


# --- deciding --------------------------------------------------------------------------------


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def _calibration_status(
    e: Evaluation, engine: str, calibration: Calibration | None, memo: dict
) -> CalibrationStatus | None:
    """Which profile describes the chosen candidate, and what of it was applied (the same
    factors on memory and speed: both come from that one profile)."""
    c = e.candidate
    if c.tier == "cpu" or c.pool.gpu is None:
        return None
    architecture = _fingerprint(memo, c.variant.architecture)
    key = ProfileKey(architecture, c.pool.gpu.id, c.precision.id, c.kv.id, engine, c.gpus, c.tier)
    applied = factors_of(e.speed) or factors_of(e.memory)
    f = applied or (calibration.factors(key) if calibration is not None else Factors(key.name))
    return CalibrationStatus(
        profile=f.profile,
        architecture=architecture,
        samples=f.samples if applied else 0,
        decode_factor=_round(applied.decode, 4) if applied else None,
        prefill_factor=_round(applied.prefill, 4) if applied else None,
        memory_factor=_round(applied.memory, 4) if applied else None,
        message=f.message,
    )


def _estimate_status(
    e: Evaluation, calibration: CalibrationStatus | None = None, lora_slots: Any = None
) -> EstimateStatus:
    m, s, arch = e.memory, e.speed, e.candidate.variant.architecture
    per_gpu = m.total_bytes if e.candidate.tier == "cpu" else m.total_bytes_per_gpu
    return EstimateStatus(
        parameters=int(arch.total_parameters),
        active_parameters=int(arch.active_parameters),
        weights_bytes=m.weights_bytes,
        weights_source=weights_source(arch, e.candidate.precision, e.candidate.variant.native),
        kv_cache_bytes=m.kv_cache_bytes,
        state_bytes=m.state_bytes,
        activation_bytes=m.activation_bytes,
        adapter_bytes=m.adapter_bytes or None,
        adapter_host_bytes=(lora_slots.host_bytes or None) if lora_slots is not None else None,
        overhead_bytes=m.overhead_bytes,
        total_bytes=m.total_bytes,
        total_bytes_per_gpu=per_gpu,
        time_to_first_token_ms=_round(s.time_to_first_token_ms, 1),
        time_per_output_token_ms=_round(s.time_per_output_token_ms, 2),
        output_tokens_per_second_per_replica=_round(s.output_tokens_per_second_per_replica, 1),
        calibration=calibration,
    )


CPU_ASSUMED = "CPU speed assumed: instance type not in the catalogue"


def _assumed_cpu(c: Any) -> bool:
    """Whether ``c`` serves on CPUs sized by the generic constants (``inventory``)."""
    return c.tier == "cpu" and getattr(c.pool.instance, "cpu", None) == GENERIC_CPU


def _alternative(e: Evaluation, code: str, reason: str, memo: dict) -> Alternative:
    """The Alternative for ``e`` losing for ``reason``: one object per distinct value."""
    return _alternative_of(e.candidate, e.replicas, e.per_hour, code, reason, memo)


def _alternative_at(ranking: Ranking, i: int, why: Any, memo: dict) -> Alternative:
    """``_alternative`` for the ranking's i-th candidate, read from its row (no Evaluation)."""
    ranked = ranking.ranked
    if isinstance(ranked, _Ranked):
        at, replicas, _ = ranked.rows[i]
        b = ranked.bases[at]
        return _alternative_of(
            b.candidate, replicas, b.per_replica * replicas, why.code, why.message, memo
        )
    return _alternative(ranked[i], why.code, why.message, memo)  # pragma: no cover


def _alternative_of(
    c: Any, replicas: int, per_hour: float, code: str, reason: str, memo: dict
) -> Alternative:
    if _assumed_cpu(c):
        reason = f"{reason} ({CPU_ASSUMED})"
    fields = (
        c.pool.name,
        c.pool.gpu_name,
        c.precision.id,
        c.kv.id,
        c.tier,
        c.variant.name,
        c.gpus,
        replicas,
        round(per_hour, 4),
        reason,
        code,
    )
    built = _table(memo, "alternative", ALTERNATIVES_KEPT)
    found = built.get(fields)
    if found is None:
        found = built.put(
            fields, Alternative(**dict(zip(_ALTERNATIVE_FIELDS, fields, strict=True)))
        )
    return found


_ALTERNATIVE_FIELDS = (
    "pool",
    "gpu_model",
    "precision",
    "kv_cache_dtype",
    "tier",
    "variant",
    "gpus_per_replica",
    "replicas",
    "per_hour",
    "reason",
    "code",
)


def _what(e: Evaluation) -> str:
    c = e.candidate
    variant = f"{c.variant.name} " if c.variant.name else ""
    if c.tier == "cpu":
        node = c.pool.instance.id if c.pool.instance is not None else "CPU"
        where = f"{e.replicas} × {node} node"
        if _assumed_cpu(c):
            where += f" ({CPU_ASSUMED})"
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


def _decide(
    request: DeploymentRequest, cluster: Cluster, consume: bool, choice: int | None = None
) -> Plan:
    """The plan for ``request``: its cheapest feasible candidate with room, or ``choice`` (a
    ranking index the batch solver picked, ``batch``) when that has room; a cheaper one with
    room that the choice passed over is listed first among the alternatives, with why. A base
    with LoRA adapters is decided with them (``lora``), without a batch choice."""
    if request.lora is None and lora.has_adapters(request):
        return lora.decide(request, lambda r: _decide(r, cluster, consume), _separately(cluster))
    try:
        static = _static(request, cluster)
    except _Invalid as error:
        return Plan(request.namespace, request.name, "Invalid", message=str(error))
    ranking = static.ranking
    chosen, full = _room_answers(ranking, cluster, request.full_pools)
    if choice is None and request.target is not None:
        choice = _target_index(ranking, request.target)
    passed_over = None
    if choice is not None and choice not in full and choice != chosen:
        passed_over, chosen = chosen, choice
    alts = _alternatives(ranking, chosen, full, cluster.memo)
    if passed_over is not None:
        alts.insert(
            0,
            _passed_over(
                ranking.ranked[passed_over], ranking.ranked[chosen], request, cluster.memo
            ),
        )
    allowed = static.requirements.pools
    alts += [
        Alternative(pool=x.name, reason=x.reason, code=x.code)
        for x in cluster.excluded
        if not allowed or x.name in allowed
    ]
    alts += static.variant_problems
    # rules that only restate the spec come last: the options worth reading come first
    alts.sort(key=lambda a: a.code == "PoolNotAllowed")
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
    held = request.current  # a re-plan keeps the nodes it holds where they still fit
    prefer = (held.nodes or ()) if held is not None and held.pool == c.pool.name else ()
    nodes = capacity.place(
        c.gpus, e.resident_bytes_per_gpu, e.replicas, owner=request.owner, prefer=prefer
    )
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
        gpu_memory_source=c.pool.gpu_memory_source if c.gpus else None,
        usable_gpu_memory_bytes=usable_gpu_bytes(c.pool.gpu_memory_bytes) if c.gpus else None,
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
        estimate=_estimate_status(
            e, _calibration_status(e, r.engine, request.calibration, cluster.memo), request.lora
        ),
        cost=cost,
        alternatives=tuple(alts),
        message=message,
        funnel=tuple(steps),
    )


_WHY = "why"
"""``PoolCapacity.answers`` holds, per room key, whether it has room now and, under
(``_WHY``, key), the NoCapacity rejection: emptied whenever the pool's room changes."""


def _room_answers(
    ranking: Ranking, cluster: Cluster, full_pools: frozenset[str]
) -> tuple[int | None, Full]:
    """``choose.cheapest``, pool by pool: the first feasible candidate with room, and the ones
    without (``choose.Full``: per pool its keys without room and its first index with room).
    Each has-room answer is kept on the pool's ``answers`` (shared by every ranking, until the
    pool's room changes); a NoCapacity rejection is built only when a plan shows it."""
    by_room = ranking.by_room
    chosen: int | None = None
    full_keys: dict[str, set[tuple]] = {}
    first_free: dict[str, int | None] = {}
    count = 0
    for pool, keys in ranking.room_by_pool.items():
        if pool in full_pools:  # this deployment's pods stayed unschedulable there
            full_keys[pool] = set(keys)
            first_free[pool] = None
            count += sum(len(by_room[key]) for key in keys)
            continue
        capacity = cluster.capacity(pool)
        answers = capacity.answers
        first: int | None = None
        lacking = None
        for key in keys:
            ok = answers.get(key)
            if ok is None:
                _, gpus, resident, replicas = key
                ok = answers[key] = has_room(capacity, gpus, resident, replicas)
            if ok:
                at = by_room[key][0]
                if first is None or at < first:
                    first = at
            else:
                if lacking is None:
                    lacking = full_keys[pool] = set()
                lacking.add(key)
                count += len(by_room[key])
        first_free[pool] = first
        if first is not None and (chosen is None or first < chosen):
            chosen = first

    def why(key: tuple, i: int) -> Any:
        pool, gpus, resident, replicas = key
        capacity = cluster.capacity(pool)
        cpu_only = ranking.ranked.candidate_at(i).pool.cpu_only
        if pool in full_pools:
            return no_room(pool, cpu_only, gpus, resident, replicas, capacity, full_pools)
        answers = capacity.answers
        wkey = (_WHY, key)
        found = answers.get(wkey)
        if found is None:
            found = answers[wkey] = no_room(pool, cpu_only, gpus, resident, replicas, capacity)
        return found

    return chosen, Full(ranking, full_keys, first_free, count, why)


def _alternatives(
    ranking: Ranking, chosen: int | None, full: Full, memo: dict
) -> list[Alternative]:
    """``choose.alternative_indices`` as Alternatives, in the same order, with what does not
    change from one deployment of a spec to the next kept on the ranking: a pool's first
    candidate with room, MoreExpensive, by candidate and the chosen one's cost
    (``ALTERNATIVES_PER_RANKING``), and the nearest misses. The runners-up (a few) and each
    NoCapacity (its text follows the room) are worked out each time."""
    ranked = ranking.ranked
    if not isinstance(ranked, _Ranked):  # pragma: no cover - the planner's rankings are _Ranked
        return [
            _alternative_at(ranking, i, why, memo)
            for i, why in alternative_indices(ranking, chosen, full)
        ]
    winner_cost = None if chosen is None else ranked.per_hour_at(chosen)
    cache = ranking.room_memo

    def build(i: int, why: Any) -> Alternative:
        return _alternative_at(ranking, i, why, memo)

    def more_expensive(i: int) -> Any:
        cost = ranked.per_hour_at(i)
        more = cost - winner_cost  # type: ignore[operator]
        if more < 5e-7:
            return Rejection("MoreExpensive", f"${cost:.2f}/h, same cost; lost the tie-break")
        return Rejection(
            "MoreExpensive", f"${cost:.2f}/h, ${more:.2f}/h more than the chosen placement"
        )

    def kind(i: int) -> tuple:
        c = ranked.candidate_at(i)
        return (c.pool.name, c.precision.id, c.tier, c.variant.name)

    picked: dict[int, Alternative] = {}
    seen = set() if chosen is None else {kind(chosen)}
    feasible = ranking.feasible
    start = 0 if chosen is None else bisect.bisect_right(feasible, chosen)
    runners = 0
    for i in feasible[start:]:
        if runners >= RUNNERS_UP:
            break
        if i in full:
            continue
        k = kind(i)
        if k not in seen:
            seen.add(k)
            picked[i] = build(i, more_expensive(i))
            runners += 1
    chosen_pool = None if chosen is None else ranked.candidate_at(chosen).pool.name
    built = cache.get(("built",))
    if built is None or len(built) > ALTERNATIVES_PER_RANKING:
        built = cache[("built",)] = {}
    for pool, indices in ranking.feasible_by_pool.items():
        if pool == chosen_pool:
            continue
        best = full.first_free(pool, indices)
        if best is None:  # no room in the pool: its first feasible one, NoCapacity
            best = indices[0]
            if best not in picked:
                picked[best] = build(best, full[best])
            continue
        alt = built.get((best, winner_cost))
        if alt is None:
            alt = built[(best, winner_cost)] = build(best, more_expensive(best))
        if best not in picked:
            picked[best] = alt
    nearest = cache.get(("nearest",))
    if nearest is None:
        nearest = cache[("nearest",)] = [
            (pool, i, build(i, min(ranked[i].rejections, key=stage_of)))
            for pool, i in ranking.nearest_by_pool.items()
        ]
    for pool, i, alt in nearest:
        if pool != chosen_pool and i not in picked:
            picked[i] = alt
    return [picked[i] for i in sorted(picked)]


def _separately(cluster: Cluster) -> Any:
    """Plans that take no room: what one deployment per fine-tune would cost (``lora``), each
    priced as if the base's own room were free (it has just taken it; a batch may have given
    the rest away), so that the comparison does not depend on how full the cluster is."""
    return lambda request: _decide(
        request, _released(cluster, request.owner, in_place=False), consume=False
    )


def _target_index(ranking: Ranking, target: PlacementStatus) -> int | None:
    """The ranking index of the feasible candidate that is ``target``, replicas included."""
    ranked = ranking.ranked
    for i in ranking.feasible:
        if isinstance(ranked, _Ranked):
            at, replicas, _ = ranked.rows[i]
            c = ranked.bases[at].candidate
        else:  # pragma: no cover - the planner's rankings are _Ranked
            c, replicas = ranked[i].candidate, ranked[i].replicas
        if replicas == target.replicas and is_current(c, target):
            return i
    return None


def _passed_over(
    cheaper: Evaluation, chosen: Evaluation, request: DeploymentRequest, memo: dict
) -> Alternative:
    """Why the batch took ``chosen`` over a cheaper candidate that had room: the running
    placement stays (the saving is below the consolidation threshold), or the room is left to
    another deployment of the batch that could not be placed without it."""
    saving = chosen.per_hour - cheaper.per_hour
    share = saving / chosen.per_hour if chosen.per_hour > 0 else 0.0
    if request.current is not None and is_current(chosen.candidate, request.current):
        code = "KeptRunning"
        reason = (
            f"${cheaper.per_hour:.2f}/h, saves ${saving:.2f}/h ({share:.0%}), not more than the "
            "consolidation threshold: the running placement stays"
        )
    else:
        code = "ReservedForBatch"
        reason = (
            f"${cheaper.per_hour:.2f}/h, ${saving:.2f}/h less, but its room places another "
            "deployment of the batch"
        )
    return _alternative(cheaper, code, reason, memo)


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

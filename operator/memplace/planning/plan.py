"""The planner's one entry point: a deployment and a cluster in, a ``Plan`` out.

``plan_deployment`` decides one ModelDeployment against the cluster as it is; ``plan_cluster``
decides many in a fixed order (namespace, name), each taking the room it is given, so that when
the cheapest pool fills up the next deployment goes to the next pool. Both are pure: no I/O, no
clock, no Kubernetes; the operator applies the result (``Plan.status_fields``) and ``memplace
plan`` prints it. Same input, byte-identical output.

The steps, one module each, in the order ``decide._decide`` runs them (kube-scheduler's
framework reads the same way: filter, score, then bind to one node):

1. ``sizing``: the model and its variants as architectures (inline config, resolved
   config.json, checkpoint headers, else ``parameters``), or why the spec is Invalid;
2. ``grouping``: every candidate (``candidates``) with its memory, speed, cost per replica and
   fit, once per shape and per hardware class of pools, in groups that share what the first
   checks read;
3. ``evaluation`` (filter): every check (``feasibility``) on every candidate, the funnel, the
   nearest miss per pool;
4. ``ranking`` (score): the feasible candidates cheapest first (``choose``'s tie-breaks),
   memoised per spec with everything else free capacity does not change;
5. ``room`` (choose): the first ranked candidate whose pool has room now
   (``inventory.PoolCapacity``);
6. ``explain``: the status fields, alternatives with one reason each, the message.

``memo`` holds the bounded tables that make 2–4 run once per shape or spec rather than once per
deployment; ``plan_types`` the request and plan records. Batch: ``batch.plan_batch`` decides
many deployments together (a solver over the candidates ranked here, ``solve``) and builds each
plan with ``decide._decide`` given its choice; the greedy ``plan_cluster`` stays as its
fallback and as ``--strategy greedy``.
"""

from __future__ import annotations

from .decide import plan_cluster, plan_deployment
from .plan_types import DeploymentRequest, Plan

__all__ = ["DeploymentRequest", "Plan", "plan_cluster", "plan_deployment"]

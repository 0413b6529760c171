"""The pure move decisions (``moves``): when a re-plan moves, waits, or applies in place."""

from __future__ import annotations

import datetime

import pytest

from memplace.api import PlacementStatus
from memplace.operator import moves

NOW = datetime.datetime(2026, 12, 1, 12, 0, tzinfo=datetime.UTC)
HOUR = 3600.0


def placement(**overrides) -> PlacementStatus:
    values = {"pool": "dear", "precision": "bf16", "tier": "gpu", "gpusPerReplica": 1,
              "replicas": 1}
    return PlacementStatus.model_validate({**values, **overrides})


def deployment(ready: int, replicas: int = 1, generation: int = 1, observed: int = 1) -> dict:
    return {"metadata": {"name": "summarizer", "generation": generation},
            "spec": {"replicas": replicas},
            "status": {"observedGeneration": observed, "readyReplicas": ready}}


def decide(new, *, status=None, running=None, serving=None, trigger="capacity changed",
           now=NOW):
    return moves.decide(status or {}, placement() if running is None else running, new,
                        deployment(1) if serving is None else serving, trigger=trigger,
                        now=now, interval_seconds=HOUR).verdict


def test_a_change_of_pool_precision_tier_or_gpus_is_a_move_and_of_replicas_is_not():
    old = placement()
    assert not moves.is_move(old, placement(replicas=5))
    for change in ({"pool": "cheap"}, {"precision": "fp8"}, {"tier": "offload"},
                   {"gpusPerReplica": 2}, {"variant": "small"}):
        assert moves.is_move(old, placement(**change)), change


def test_the_first_placement_and_a_scale_apply_in_place():
    assert moves.decide({}, None, placement(pool="cheap"), None, trigger="spec", now=NOW,
                        interval_seconds=HOUR).verdict == "apply"
    assert decide(placement(replicas=3)) == "apply"


def test_a_serving_deployment_moves_and_one_with_no_ready_replica_is_replaced_in_place():
    assert decide(placement(pool="cheap")) == "start"
    assert decide(placement(pool="cheap"), serving=deployment(0)) == "apply"


def test_the_rate_limit_holds_until_the_interval_has_passed():
    last = {"lastMoveTime": "2026-12-01T11:30:00Z"}
    assert decide(placement(pool="cheap"), status=last) == "defer"
    later = NOW + datetime.timedelta(minutes=30)
    assert decide(placement(pool="cheap"), status=last, now=later) == "start"
    message = moves.decide(last, placement(), placement(pool="cheap"), deployment(1),
                           trigger="x", now=NOW, interval_seconds=HOUR).message
    assert "2026-12-01T12:30:00Z" in message


def test_a_restart_never_starts_a_move():
    assert decide(placement(pool="cheap"), trigger=moves.RESTART) == "keep"
    assert decide(placement(replicas=2), trigger=moves.RESTART) == "apply"


def test_one_move_at_a_time():
    move = {"toDeployment": "summarizer-1", "placement": placement(pool="cheap").to_wire()}
    status = {"move": move}
    assert decide(placement(pool="cheap", replicas=2), status=status) == "continue"
    assert decide(placement(), status=status) == "cancel"
    assert decide(placement(pool="third"), status=status) == "wait"
    assert decide(placement(), status={"move": {"placement": {"pool": 3}}}) == "cancel"
    switched = {**deployment(1), "metadata": {"name": "summarizer-1", "generation": 1}}
    assert decide(placement(), status=status, serving=switched) == "wait"  # never cancel it


def test_ready_means_every_replica_of_the_current_generation():
    assert moves.ready(deployment(2, replicas=2))
    assert not moves.ready(deployment(1, replicas=2))
    assert not moves.ready(deployment(2, replicas=2, generation=2, observed=1))
    assert not moves.ready(None)


@pytest.mark.parametrize(("successor", "stuck", "minutes", "action"), [
    (deployment(1), [], 1, "complete"),
    (deployment(0), [], 1, "wait"),
    (None, [], 1, "wait"),  # created, not indexed yet
    (deployment(0), ["cheap"], 1, "abandon"),
    (deployment(0), [], 61, "abandon"),
    (None, [], 61, "abandon"),
])
def test_a_move_in_flight_completes_when_ready_and_is_abandoned_when_stuck_or_late(
    successor, stuck, minutes, action
):
    move = {"toDeployment": "summarizer-1", "startedAt": "2026-12-01T12:00:00Z"}
    step = moves.next_step(move, successor, stuck,
                           now=NOW + datetime.timedelta(minutes=minutes), timeout_seconds=HOUR)
    assert step.action == action


def test_an_unreadable_start_time_counts_as_timed_out():
    step = moves.next_step({"startedAt": "yesterday"}, deployment(0), [], now=NOW,
                           timeout_seconds=HOUR)
    assert step.action == "abandon"


def test_completing_makes_the_successor_s_plan_the_running_one():
    move = {"placement": placement(pool="cheap").to_wire(), "estimate": {"totalBytes": 1},
            "cost": {"perHour": 1.5}, "toDeployment": "x", "fromDeployment": "y"}
    fields = moves.completed(move, NOW)
    assert fields["placement"]["pool"] == "cheap" and fields["cost"] == {"perHour": 1.5}
    assert fields["move"] is None and fields["lastMoveTime"] == "2026-12-01T12:00:00Z"


def test_a_move_in_flight_holds_room_for_both_deployments_and_none_once_it_ends():
    from memplace.operator import handlers, inputs

    running = {"phase": "Ready", "placement": placement().to_wire()}
    moving = {**running, "move": {"placement": placement(pool="cheap").to_wire(),
                                  "estimate": {"totalBytesPerGpu": 2**30}}}
    held = handlers.placed(namespace="ml", name="s", status=moving)
    assert set(held) == {("ml", "s"), inputs.successor_key(("ml", "s"))}
    assert held[("ml", "s/successor")].placement.pool == "cheap"
    assert held[("ml", "s/successor")].estimate.total_bytes_per_gpu == 2**30
    assert set(handlers.placed(namespace="ml", name="s", status=running)) == {("ml", "s")}


def test_a_deferred_move_is_re_planned_once_the_interval_has_passed():
    deferred = {"lastMoveTime": "2026-12-01T11:30:00Z",
                "conditions": [{"type": "Placed", "status": "True", "reason": "MoveDeferred"}]}
    assert not moves.deferral_over(deferred, HOUR, NOW)
    assert moves.deferral_over(deferred, HOUR, NOW + datetime.timedelta(minutes=30))
    placed = {**deferred, "conditions": [{"type": "Placed", "status": "True", "reason": "Placed"}]}
    assert not moves.deferral_over(placed, HOUR, NOW + datetime.timedelta(hours=2))

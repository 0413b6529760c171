"""status: conditions and the status patch; pure."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from memplace.operator import status

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
T1 = T0 + timedelta(minutes=5)
PLACED = {"phase": "Placed", "placement": {"pool": "a100", "precision": "fp8", "tier": "gpu",
                                           "gpusPerReplica": 1, "replicas": 1},
          "estimate": {"totalBytesPerGpu": 1}, "cost": {"perHour": 1.0}, "alternatives": None,
          "message": "fp8 on a100"}
NOT_READY = status.Readiness(False, "Unavailable", "0/1 replicas available")
READY = status.Readiness(True, "Available", "1/1 replicas available")


def by_type(patch) -> dict:
    return {c["type"]: c for c in patch["conditions"]}


def test_an_unchanged_condition_keeps_its_last_transition_time():
    first = status.set_condition([], "Ready", False, "Unavailable", "0/1", generation=1, now=T0)
    again = status.set_condition(first, "Ready", False, "Unavailable", "0/1 still", generation=2,
                                 now=T1)
    assert again[0]["lastTransitionTime"] == "2026-01-01T12:00:00Z"
    assert again[0]["message"] == "0/1 still" and again[0]["observedGeneration"] == 2


def test_a_flipped_condition_moves_its_last_transition_time():
    first = status.set_condition([], "Ready", False, "Unavailable", "0/1", generation=1, now=T0)
    flipped = status.set_condition(first, "Ready", True, "Available", "1/1", generation=1, now=T1)
    assert flipped[0]["lastTransitionTime"] == "2026-01-01T12:05:00Z"
    assert flipped[0]["status"] == "True"


def test_placed_sets_fields_and_all_three_conditions():
    patch = status.status_patch(None, status.Outcome("placed", PLACED), NOT_READY, generation=3,
                                now=T0)
    assert patch["phase"] == "Placed" and patch["observedGeneration"] == 3
    assert patch["placement"]["pool"] == "a100"
    conditions = by_type(patch)
    assert conditions["Valid"]["status"] == "True"
    assert conditions["Placed"]["status"] == "True"
    assert conditions["Ready"]["status"] == "False"
    assert all(c["observedGeneration"] == 3 for c in conditions.values())


def test_ready_deployment_makes_the_phase_ready():
    patch = status.status_patch(None, status.Outcome("placed", PLACED), READY, generation=1)
    assert patch["phase"] == "Ready"


def test_unschedulable_clears_the_placement():
    fields = {"phase": "Unschedulable", "placement": None, "message": "nothing fits"}
    before = status.status_patch(None, status.Outcome("placed", PLACED), READY, generation=1,
                                 now=T0)
    patch = status.status_patch(before, status.Outcome("unschedulable", fields), NOT_READY,
                                generation=2, now=T1)
    assert patch["phase"] == "Unschedulable" and patch["placement"] is None
    conditions = by_type(patch)
    assert conditions["Placed"]["status"] == "False"
    assert conditions["Placed"]["lastTransitionTime"] == "2026-01-01T12:05:00Z"
    assert conditions["Valid"]["lastTransitionTime"] == "2026-01-01T12:00:00Z"


def test_invalid_marks_valid_false_with_the_reason():
    fields = {"phase": "Invalid", "message": "unknown model_type 'mystery'"}
    patch = status.status_patch(None, status.Outcome("invalid", fields, reason="Invalid"),
                                NOT_READY, generation=1)
    assert patch["phase"] == "Invalid"
    assert by_type(patch)["Valid"] == {**by_type(patch)["Valid"], "status": "False",
                                       "reason": "Invalid",
                                       "message": "unknown model_type 'mystery'"}


def test_kept_leaves_the_running_placement_alone():
    before = status.status_patch(None, status.Outcome("placed", PLACED), READY, generation=1,
                                 now=T0)
    failed = {"phase": "Unschedulable", "alternatives": [{"pool": "a100", "reason": "TooSlow"}]}
    patch = status.status_patch(before, status.Outcome("kept", failed, message="kept"), READY,
                                generation=2, now=T1)
    assert "placement" not in patch and "estimate" not in patch and "cost" not in patch
    assert patch["phase"] == "Ready" and patch["observedGeneration"] == 2
    assert patch["alternatives"] == failed["alternatives"]
    placed = by_type(patch)["Placed"]
    assert placed["reason"] == "PlacementKept" and placed["status"] == "True"
    assert placed["lastTransitionTime"] == "2026-01-01T12:00:00Z"


def test_readiness_from_the_deployment():
    assert not status.readiness(None).ready
    rolling = {"metadata": {"generation": 2}, "spec": {"replicas": 1},
               "status": {"observedGeneration": 1, "availableReplicas": 1}}
    assert status.readiness(rolling).reason == "Progressing"
    done = {"metadata": {"generation": 2}, "spec": {"replicas": 2},
            "status": {"observedGeneration": 2, "availableReplicas": 2}}
    assert status.readiness(done).ready


def test_a_deployment_waiting_for_an_input_is_pending_and_says_for_what():
    patch = status.pending_patch(None, "ConfigMap ml/qwen-config", generation=1, now=T0)
    assert patch["phase"] == "Pending" and patch["observedGeneration"] == 1
    assert patch["message"] == "waiting for ConfigMap ml/qwen-config"
    placed = by_type(patch)["Placed"]
    assert (placed["status"], placed["reason"]) == ("False", "Waiting")
    assert "ConfigMap ml/qwen-config" in placed["message"]
    assert by_type(patch)["Ready"]["status"] == "False"


def test_a_running_deployment_waiting_for_an_input_keeps_its_phase_and_placement():
    running = status.status_patch(None, status.Outcome("placed", PLACED), READY, generation=1,
                                  now=T0)
    patch = status.pending_patch(running, "ConfigMap ml/new-config", generation=2, now=T1)
    assert "phase" not in patch and "placement" not in patch
    assert "waiting for ConfigMap ml/new-config" in patch["message"]
    assert "running placement is kept" in patch["message"]
    placed = by_type(patch)["Placed"]
    assert placed["status"] == "True" and placed["reason"] == "Waiting"
    assert placed["lastTransitionTime"] == "2026-01-01T12:00:00Z"

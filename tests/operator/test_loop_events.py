"""The Replanned message's before and after, the muted events, and what counts as a kept re-plan."""

from __future__ import annotations

import asyncio

import kopf

from memplace.operator import calibrate, events

GIB = 1024**3
OLD = {"precision": "bf16", "tier": "gpu", "pool": "a100", "replicas": 1, "gpusPerReplica": 1}
PREVIOUS = {
    "placement": OLD,
    "estimate": {"totalBytesPerGpu": 9.8 * GIB, "timePerOutputTokenMs": 39.46,
                 "timeToFirstTokenMs": 182.4},
    "cost": {"perHour": 3.75},
}
NEW = {
    "placement": {**OLD, "gpusPerReplica": 2},
    "estimate": {"totalBytesPerGpu": 5.2 * GIB, "timePerOutputTokenMs": 21.04},
    "cost": {"perHour": 7.5},
}
WHY = "TPOT 118.4 ms > SLO 80 ms (calibrated from 5 samples): re-planning"


def test_the_replanned_message_gives_memory_cost_and_latency_before_and_after():
    message = events.replanned_message(PREVIOUS, OLD, NEW, WHY)
    assert message == (
        f"{WHY}: before: bf16 gpu on a100: 1 x 1 GPU, 9.8 GiB/GPU, $3.75/h, TPOT 39.5 ms, "
        "TTFT 182 ms -> after: bf16 gpu on a100: 1 x 2 GPU, 5.2 GiB/GPU, $7.50/h, TPOT 21.0 ms"
    )


def test_a_previous_status_without_estimate_or_cost_still_gives_the_shape():
    message = events.replanned_message({}, OLD, NEW, "capacity changed")
    assert message.startswith("capacity changed: before: bf16 gpu on a100: 1 x 1 GPU -> after:")


def test_replanned_reads_the_before_from_the_status_of_the_object_planned(monkeypatch):
    posted: list[tuple[str, str]] = []
    monkeypatch.setattr(kopf, "info", lambda body, reason, message: posted.append(
        (reason, message)))
    events.replanned({"status": PREVIOUS}, OLD, NEW, WHY)
    assert posted == [("Replanned", events.replanned_message(PREVIOUS, OLD, NEW, WHY))]
    assert "$3.75/h, TPOT 39.5 ms" in posted[0][1]


def test_a_muted_reason_is_not_posted_inside_the_block_only(monkeypatch):
    posted: list[str] = []
    monkeypatch.setattr(kopf, "warn", lambda body, reason, message: posted.append(reason))
    monkeypatch.setattr(kopf, "info", lambda body, reason, message: posted.append(reason))
    with events.muted("PlacementKept"):
        events.placement_kept({}, OLD, "generation 2: nothing fits")
        events.invalid({}, "bad")  # another reason still goes out
        events.replanned({}, OLD, NEW, WHY)
    events.placement_kept({}, OLD, "generation 2: nothing fits")
    assert posted == ["Invalid", "Replanned", "PlacementKept"]


async def test_muting_is_per_task(monkeypatch):
    posted: list[str] = []
    monkeypatch.setattr(kopf, "warn", lambda body, reason, message: posted.append(reason))
    started = asyncio.Event()

    async def quiet() -> None:
        with events.muted("PlacementKept"):
            started.set()
            await asyncio.sleep(0.01)
            events.placement_kept({}, OLD, "quiet")

    async def loud() -> None:
        await started.wait()
        events.placement_kept({}, OLD, "loud")

    await asyncio.gather(quiet(), loud())
    assert posted == ["PlacementKept"]


def _placed(reason: str) -> list[dict]:
    return [{"type": "Ready", "status": "True", "reason": "Available"},
            {"type": "Placed", "status": "True", "reason": reason}]


def test_a_replan_kept_the_placement_when_its_placed_reason_is_placement_kept():
    assert calibrate.kept({}, {"conditions": _placed("PlacementKept")})
    # nothing new to write: the status already says it was kept
    assert calibrate.kept({"conditions": _placed("PlacementKept")}, {})
    assert not calibrate.kept({"conditions": _placed("PlacementKept")},
                              {"conditions": _placed("Moving")})
    assert not calibrate.kept({}, {"conditions": _placed("Placed")})
    assert not calibrate.kept({}, {})
